"""The benchmarks' own checks (their figures are printed, never asserted as timings)."""

import pytest
import torch

from dphpe_core import make_config
from dphpe_core.bench_gpu import gpu_check, stand_in


def test_gpu_check_refuses_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        gpu_check()


@pytest.mark.parametrize("preset, size, params", [("paper", (256, 192), 5_000_000), ("embedded", (64, 48), 100_000)])
def test_the_stand_in_builds_the_presets_model_without_data_caches_or_downloads(tmp_path, preset, size, params):
    from dphpe_core.start import build_model
    cfg = make_config(preset, **stand_in(preset, tmp_path), cache_dir=str(tmp_path / "cache"))
    model = build_model(cfg)                  # from the saved random start: no pretraining, no checkpoint
    assert (cfg.model_size, (cfg.input_h, cfg.input_w), cfg.dataset) == (make_config(preset).model_size, size, "synthpose")
    assert sum(p.numel() for p in model.parameters()) > params
    assert cfg.n_private == 2048 and cfg.n_public >= cfg.subspace_m
    assert not (tmp_path / "cache").exists()


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh runs it there)")
def test_cuda_clipped_sums_equal_the_cpus():
    from dphpe_core.bench_gpu import cuda_matches_cpu
    assert cuda_matches_cpu() < 1e-9


@pytest.mark.skipif(__import__("dphpe_core.loop", fromlist=["x"]).allocated_bytes() is None, reason="needs glibc")
def test_peak_memory_sees_a_tensor_allocated_and_freed_inside_the_block():
    from dphpe_core.bench import PeakMemory
    with PeakMemory() as big:
        x = torch.ones(64, 2**20)                 # 256 MB
        float(x.sum())
        del x
    with PeakMemory() as small:
        float(torch.ones(1024).sum())
    assert 250 < big.peak_mb < 300 and small.peak_mb < 10


def test_bench_times_every_method_for_each_strategy(smoke_cfg, tmp_path, capsys):
    import json

    from dphpe_core.cli import main
    main(["bench", "--preset", "smoke", "--steps", "1", "--warmup", "0", "--set", f"cache_dir={smoke_cfg.cache_dir}",
          "--json", str(tmp_path / "b.json")])
    out = json.loads((tmp_path / "b.json").read_text())
    assert [r["strategy"] for r in out["runs"]] == ["finetune", "full"]
    methods = ["nonprivate", "dpsgd", "pdp", "fdp", "hybrid"]
    for run in out["runs"]:
        assert list(run["step_s"]) == methods and run["ratio"]["nonprivate"] == 1.0
        assert set(run["peak_mb"]) == set(methods) and all(v >= 0 for v in run["peak_mb"].values())
    printed = capsys.readouterr().out
    assert printed.count("images/s") == 2 and "peak MB" in printed


def test_gpu_check_reports_each_timing_and_stops_each_strategy_at_the_first_out_of_memory(monkeypatch, tmp_path, capsys):
    """The loop of the GPU script, without a GPU: timings stand in for bench_steps, and batch 128
    of the paper's full finetuning runs out of memory."""
    import json

    from dphpe_core import bench_gpu
    from dphpe_core.cli import main
    calls = []

    def fake_steps(preset, *, steps, device, strategy, expected_batch_size=256, **overrides):
        calls.append((preset, strategy, expected_batch_size, torch.backends.cuda.matmul.allow_tf32))
        if (preset, strategy, expected_batch_size) == ("paper", "full", 128):
            raise torch.cuda.OutOfMemoryError("fake")
        t = {"nonprivate": 0.1, "dpsgd": 0.12}
        return {"preset": preset, "device": device, "batch": expected_batch_size, "threads": 1, "input": "a",
                "model": "m", "strategy": strategy, "step_s": t, "images_per_s": {m: 1 / s for m, s in t.items()}}

    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "get_device_name", lambda i=0: "Fake GPU")
    monkeypatch.setattr(torch.cuda, "empty_cache", lambda: None)
    monkeypatch.setattr(bench_gpu, "cuda_matches_cpu", lambda: 1e-15)
    monkeypatch.setattr(bench_gpu, "bench_steps", fake_steps)
    tf32_before = torch.backends.cuda.matmul.allow_tf32
    main(["bench-gpu", "--batches", "32,64,128,256", "--tf32", "--json", str(tmp_path / "g.json")])
    assert [c[:3] for c in calls] == [("embedded", "finetune", 256), ("embedded", "full", 256),
                                      ("paper", "finetune", 32), ("paper", "finetune", 64), ("paper", "finetune", 128),
                                      ("paper", "finetune", 256), ("paper", "full", 32), ("paper", "full", 64),
                                      ("paper", "full", 128)]
    assert all(c[3] for c in calls) and torch.backends.cuda.matmul.allow_tf32 == tf32_before
    out = json.loads((tmp_path / "g.json").read_text())
    assert out["tf32"] and out["device"] == "Fake GPU" and len(out["embedded"]) == 2
    assert out["paper"][-1] == {"preset": "paper", "strategy": "full", "batch": 128, "out_of_memory": True}
    printed = capsys.readouterr().out
    assert printed.count("images/s") == 8 and "paper, full, batch 128: out of memory" in printed
    with pytest.raises(SystemExit, match="not \\['coco'\\]"):
        main(["bench-gpu", "--presets", "paper,coco"])


def test_gpu_figures_are_read_from_the_gpu_check_files_by_hand(tmp_path):
    import json

    from dphpe_core.bench_gpu import gpu_run_figures, gpu_table

    def run(strategy, batch, nonprivate_s, dpsgd_s, tf32=False):
        t = {"nonprivate": nonprivate_s, "dpsgd": dpsgd_s}
        return {"strategy": strategy, "batch": batch, "tf32": tf32, "step_s": t,
                "images_per_s": {m: batch / s for m, s in t.items()}, "ratio": {m: s / nonprivate_s for m, s in t.items()},
                "peak_mb": {"nonprivate": 1024.0, "dpsgd": 2048.0}}
    fp32 = {"device": "Fake GPU", "date": "2026-11-30", "relative_difference_cuda_vs_cpu": 3e-15, "embedded": [],
            "paper": [run("finetune", 32, 0.016, 0.032), run("finetune", 64, 0.032, 0.040),
                      run("full", 32, 0.032, 0.064), {"strategy": "full", "batch": 64, "out_of_memory": True}]}
    tf32 = dict(fp32, relative_difference_cuda_vs_cpu=2e-15, paper=[run("finetune", 64, 0.016, 0.020, tf32=True)])
    (tmp_path / "a.json").write_text(json.dumps(fp32))
    (tmp_path / "b.json").write_text(json.dumps(tf32))
    table = gpu_table(sorted(tmp_path.glob("*.json")))
    assert len(table) == 8 and set(table.batch) == {32, 64}        # the out-of-memory run is no row
    assert table[table.Method == "DP-SGD"]["peak memory (GB)"].eq(2.0).all()
    f = gpu_run_figures(table, batch=32, epochs=25, crops=24_000)
    assert f["device"] == "one Fake GPU (2026-11-30)" and f["exactness"] == 2e-15
    assert f["dpsgd_ips_finetune"] == 1000 and f["nonprivate_ips_finetune"] == 2000
    assert f["dpsgd_min_finetune"] == 10                            # 25 x 24,000 crops at 1,000 per second
    assert (f["dpsgd_best_batch_finetune"], f["dpsgd_best_ips_finetune"], f["dpsgd_best_min_finetune"]) == (64, 1600, 6.25)
    assert f["dpsgd_best_ratio_finetune"] == 1.25
    assert (f["dpsgd_ips_full"], f["dpsgd_best_batch_full"]) == (500, 32)
    assert (f["tf32_batch"], f["tf32_gain"]) == (64, 2.0)
    with pytest.raises(ValueError, match="no DP-SGD full timing at batch 64"):
        gpu_run_figures(table, batch=64, epochs=25, crops=24_000)
