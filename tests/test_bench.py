"""The benchmarks' own checks (their figures are printed, never asserted as timings)."""

import pytest
import torch

from dphpe_core import make_config
from dphpe_core.bench import gpu_check, paper_stand_in


def test_gpu_check_refuses_without_cuda():
    if torch.cuda.is_available():
        pytest.skip("a CUDA device is present")
    with pytest.raises(ValueError, match="needs a CUDA device"):
        gpu_check()


def test_the_paper_stand_in_builds_the_papers_model_without_data_or_downloads(tmp_path):
    from dphpe_core.start import build_model
    cfg = make_config("paper", **paper_stand_in(tmp_path))
    model = build_model(cfg)
    assert (cfg.model_size, cfg.input_h, cfg.input_w, cfg.dataset) == ("5m", 256, 192, "synthpose")
    assert sum(p.numel() for p in model.parameters()) > 5_000_000


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA device (bench/gpu_check.sh runs it there)")
def test_cuda_clipped_sums_equal_the_cpus():
    from dphpe_core.bench import cuda_matches_cpu
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
