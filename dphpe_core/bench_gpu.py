"""The GPU path's benchmark: CUDA's clipped per-sample sums against the CPU's, then one step of every
method for the embedded preset and for the paper's model, from batch 32 up until memory runs out.

    bash bench/gpu_check.sh bench/gpu.json      # on a machine with a CUDA GPU

Neither data, nor checkpoints, nor cached starts are needed: SynthPose crops at each preset's input size
and a random start of its model stand in (`stand_in`). `gpu_table` and `gpu_run_figures` read the
saved figures for the cost chapter. The CPU's step benchmark is bench.py's.
"""

from __future__ import annotations

from pathlib import Path

from .bench import bench_steps, format_steps


def stand_in(preset: str, tmp_dir, *, n_private: int = 2048) -> dict:
    """Overrides that time a preset's model and input on a bare machine, with neither its data (MPII,
    COCO), nor a checkpoint, nor its cached pretrained start: SynthPose crops at the preset's input
    size, n_private of them (the step is timed on one batch; the sampling rate only sets sigma), and
    a random start of the preset's model saved to `tmp_dir`. The step's cost does not depend on the
    weights' values."""
    import torch

    from .config import make_config
    from .strategies import for_config
    cfg = make_config(preset)
    path = f"{tmp_dir}/random-{preset}.pt"
    torch.manual_seed(0)
    torch.save(for_config(cfg).state_dict(), path)
    return dict(dataset="synthpose", public_dataset="synthpose", n_private=n_private,
                n_public=max(512, cfg.subspace_m), n_val=64, pretrained_path=path, num_workers=0, delta=1e-5)


def cuda_matches_cpu(*, clip_norm: float = 0.1) -> float:
    """Largest relative difference between the clipped per-sample gradient sums of one smoke batch on
    CUDA and on the CPU, in float64 (the very code path the trainers use)."""
    import torch

    from .config import make_config
    from .data import build_data, collate
    from .persample import clipped_grad_sum
    from .strategies import for_config, set_strategy
    cfg = make_config("smoke", device="cpu")
    batch = collate(build_data(cfg).private_train.without_augmentation().batch(range(16)))
    torch.manual_seed(0)
    model = set_strategy(for_config(cfg), "full").double()
    tensors = {k: v.double() if torch.is_tensor(v) and v.is_floating_point() else v for k, v in batch.items()}
    cpu = clipped_grad_sum(model, tensors, clip_norm)
    gpu = clipped_grad_sum(model.cuda(), {k: v.cuda() if torch.is_tensor(v) else v for k, v in tensors.items()},
                           clip_norm)
    return max(float((gpu[k].cpu() - cpu[k]).abs().max() / cpu[k].abs().max().clamp_min(1e-30)) for k in cpu)


def gpu_check(*, batches=(32, 64, 128, 256, 512, 1024), steps: int = 10, tf32: bool = False,
              presets=("embedded", "paper"), report=None) -> dict:
    """What `bench/gpu_check.sh` prints: CUDA's clipped sums against the CPU's, then one step of every
    method for the embedded preset (its batch, both strategies) and for the paper's model at 256 x 192
    (batch 32 and up, until memory runs out), with images per second and peak memory.
    `report(out, run)` is called after the exactness check (run None) and after each timing, so that
    a caller can show or save what is done so far. `tf32` lets matrix products and convolutions round
    their inputs to TensorFloat-32 (faster on Ampere and later; not float32's rounding, so the
    study's runs leave it off)."""
    import tempfile
    from datetime import date

    import torch

    from .provenance import provenance
    if not torch.cuda.is_available():
        raise ValueError("gpu_check needs a CUDA device; none is available here")
    unknown = set(presets) - {"embedded", "paper"}
    if unknown:
        raise ValueError(f"gpu_check times the presets 'embedded' and 'paper'; not {sorted(unknown)}")
    report = report or (lambda out, run: None)
    out = {"device": torch.cuda.get_device_name(0), "torch": torch.__version__, "cuda": torch.version.cuda,
           "date": date.today().isoformat(), "provenance": provenance("cuda"), "tf32": tf32,
           "relative_difference_cuda_vs_cpu": cuda_matches_cpu(), "embedded": [], "paper": []}
    report(out, None)
    previous = torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32
    torch.backends.cuda.matmul.allow_tf32 = torch.backends.cudnn.allow_tf32 = tf32
    try:
        with tempfile.TemporaryDirectory() as tmp:
            for preset in presets:
                overrides = stand_in(preset, tmp)
                for strategy in ("finetune", "full"):
                    for b in (batches if preset == "paper" else (None,)):
                        size = {} if b is None else {"expected_batch_size": b}
                        try:
                            run = bench_steps(preset, steps=steps, device="cuda", strategy=strategy, **size, **overrides)
                        except torch.cuda.OutOfMemoryError:
                            torch.cuda.empty_cache()
                            out[preset].append({"preset": preset, "strategy": strategy, "batch": b, "out_of_memory": True})
                            report(out, out[preset][-1])
                            break
                        run["tf32"] = tf32
                        out[preset].append(run)
                        report(out, run)
    finally:
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = previous
    return out


def gpu_table(paths):
    """One row per (file, preset, strategy, batch, method) of `dphpe bench-gpu` JSON files: step time,
    images per second, ratio to non-private and peak memory; runs that ran out of memory are left
    out (the largest batch that fit is the last row of its strategy)."""
    import json

    import pandas as pd

    from .results import METHOD_NAMES
    rows = []
    for path in paths:
        g = json.loads(Path(path).read_text())
        for preset in ("embedded", "paper"):
            for run in g[preset]:
                if run.get("out_of_memory"):
                    continue
                for m, s in run["step_s"].items():
                    rows.append({"device": g["device"], "date": g.get("date"), "TF32": bool(run.get("tf32", False)),
                                 "preset": preset, "strategy": run["strategy"], "batch": run["batch"],
                                 "Method": METHOD_NAMES[m], "step (ms)": 1000 * s, "images/s": run["images_per_s"][m],
                                 "ratio to non-private": run["ratio"][m], "peak memory (GB)": run["peak_mb"][m] / 1024,
                                 "exactness": g["relative_difference_cuda_vs_cpu"]})
    return pd.DataFrame(rows)


def gpu_run_figures(table, *, batch: int, epochs: int, crops: int) -> dict:
    """What the book says of a GPU table (float32 rows, the paper's model): per strategy, DP-SGD's
    and non-private's images per second at `batch`, the minutes of steps of one run of `epochs`
    epochs over `crops` crops at that batch, and the same at DP-SGD's fastest batch; the TF32 gain
    of DP-SGD finetuning at the largest batch timed with TF32, where there is one."""
    paper = table[(table.preset == "paper") & ~table.TF32]
    if paper.empty:
        raise ValueError("no float32 timing of the paper's model in this table")

    def ips(frame, method, strategy, b):
        row = frame[(frame.Method == method) & (frame.strategy == strategy) & (frame.batch == b)]
        if row.empty:
            raise ValueError(f"no {method} {strategy} timing at batch {b}")
        return float(row["images/s"].iloc[0])

    minutes = lambda images_per_s: epochs * crops / images_per_s / 60
    out = {"device": f"one {paper.device.iloc[0]}" + (f" ({paper.date.iloc[0]})" if paper.date.iloc[0] else ""),
           "exactness": float(table.exactness.min()), "batch": batch, "epochs": epochs}
    for strategy in ("finetune", "full"):
        dpsgd = ips(paper, "DP-SGD", strategy, batch)
        best = paper[(paper.Method == "DP-SGD") & (paper.strategy == strategy)].sort_values("images/s").iloc[-1]
        out.update({f"dpsgd_ips_{strategy}": dpsgd, f"nonprivate_ips_{strategy}": ips(paper, "Non-private", strategy, batch),
                    f"dpsgd_min_{strategy}": minutes(dpsgd), f"dpsgd_best_ips_{strategy}": float(best["images/s"]),
                    f"dpsgd_best_batch_{strategy}": int(best.batch), f"dpsgd_best_min_{strategy}": minutes(float(best["images/s"])),
                    f"dpsgd_best_ratio_{strategy}": float(best["ratio to non-private"])})
    tf32 = table[(table.preset == "paper") & table.TF32 & (table.strategy == "finetune")]
    if not tf32.empty:
        b = int(tf32.batch.max())
        out.update(tf32_batch=b, tf32_gain=ips(tf32, "DP-SGD", "finetune", b) / ips(paper, "DP-SGD", "finetune", b))
    return out


def printing_report(json_path=None):
    """A `report` for gpu_check that prints each figure as it comes and, with `json_path`, saves all so far."""
    import json

    def report(result, run):
        if run is None:
            print(f"{result['device']} (torch {result['torch']}, CUDA {result['cuda']}): clipped per-sample sums, "
                  f"CUDA against CPU (float64, smoke model): largest relative difference "
                  f"{result['relative_difference_cuda_vs_cpu']:.2e}", flush=True)
        elif run.get("out_of_memory"):
            print(f"{run['preset']}, {run['strategy']}, batch {run['batch']}: out of memory", flush=True)
        else:
            print(format_steps(run) + ("\n(TF32 on)" if run["tf32"] else "") + "\n", flush=True)
        if json_path:
            Path(json_path).parent.mkdir(parents=True, exist_ok=True)
            Path(json_path).write_text(json.dumps(result, indent=1))
    return report


def gpu_figure(gpu):
    """The paper's model on a GPU (float32): images per second against batch size, per method and strategy."""
    import seaborn as sns
    paper = gpu[(~gpu.TF32) & (gpu.preset == "paper")]
    grid = sns.relplot(paper, x="batch", y="images/s", hue="Method", col="strategy", kind="line", marker="o",
                       height=3.2, aspect=1.2)
    grid.set(xscale="log", yscale="log")
    batches = sorted(paper.batch.unique())
    for ax in grid.axes.flat:
        ax.set_xticks(batches, [str(b) for b in batches])
    grid.set_axis_labels("batch size", "images per second")
    return grid.figure


def gpu_throughput(gpu):
    """Images per second per preset, strategy and batch (float32), methods in the table's order, with
    DP-SGD's peak memory."""
    from .methods import METHOD_NAMES, REFERENCE
    fp32 = gpu[~gpu.TF32]
    table = fp32.pivot_table(index=["preset", "strategy", "batch"], columns="Method", values="images/s", aggfunc="first")
    table = table[[m for m in METHOD_NAMES.values() if m in table.columns]]
    name = METHOD_NAMES[REFERENCE]
    peak = fp32[fp32.Method == name].set_index(["preset", "strategy", "batch"])["peak memory (GB)"]
    return table.join(peak.rename(f"{name} peak memory (GB)")).round(1)
