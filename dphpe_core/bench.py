"""Benchmarks that print figures (never timed assertions in tests).

    dphpe bench-data --n 4096 --workers 2

`bench_synthpose` measures SynthPose rendering throughput (crops per second) without touching
the disk cache: once in one process and once with `workers` processes, from a cold start (the
worker processes and their texture banks included).
"""

from __future__ import annotations

import os
import platform
import time

from .methods import METHODS, NONPRIVATE
from .synthpose import render_split


def bench_synthpose(n: int = 4096, *, height: int = 128, width: int = 96, workers: int = 0, seed: int = 0) -> dict:
    workers = workers or os.cpu_count() or 1
    out = {"n": n, "size": f"{height}x{width}", "cpus": os.cpu_count(), "machine": platform.processor() or platform.machine()}
    for label, w in (("single_process", 1), (f"{workers}_workers", workers)):
        t = time.perf_counter()
        render_split("private", n, height=height, width=width, seed=seed, workers=w)
        dt = time.perf_counter() - t
        out[label] = {"seconds": round(dt, 3), "crops_per_s": round(n / dt, 1)}
    return out


class PeakMemory:
    """The peak of the C allocator's live bytes while the block runs, above where it started (MB):
    a thread samples `loop.allocated_bytes` every `every` seconds (torch's kernels release the GIL).
    On a CPU this stands in for CUDA's peak-memory counter; off glibc it reports None."""

    def __init__(self, every: float = 0.0005):
        import threading
        self.every, self.peak_mb, self._stop = every, None, threading.Event()

    def _watch(self, start: int) -> None:
        from .loop import allocated_bytes
        top = start
        while not self._stop.is_set():
            top = max(top, allocated_bytes())
            self._stop.wait(self.every)
        self.peak_mb = (max(top, allocated_bytes()) - start) / 2**20

    def __enter__(self):
        import threading

        from .loop import allocated_bytes
        start = allocated_bytes()
        self._thread = threading.Thread(target=self._watch, args=(start,), daemon=True) if start is not None else None
        if self._thread:
            self._thread.start()
        return self

    def __exit__(self, *exc):
        self._stop.set()
        if self._thread:
            self._thread.join()


def bench_steps(preset: str = "embedded", *, steps: int = 20, warmup: int = 3,
                methods=tuple(METHODS), **overrides) -> dict:
    """Time one optimizer step (public preparation, forward, backward, privatisation, update) per
    method on the same model start, data and batch of expected_batch_size crops, in one process,
    the methods interleaved; the median over `steps` steps after `warmup`. Also the subspace
    refresh (the first projecting method) and each method's peak memory during a step (CUDA's counter on a GPU; on a CPU
    the C allocator's peak above the step's start, `PeakMemory`, sampled on the last step)."""
    import statistics

    import torch

    from .config import make_config
    from .data import build_data, collate
    from .mechanisms import make_optimizer
    from .persample import per_sample_gradients
    from .start import build_model
    from .loop import keep_freed_memory, resolve_device
    cfg = make_config(preset, **overrides)
    device = resolve_device(cfg)
    if device.type == "cpu":                  # as fit() does
        keep_freed_memory()
    data = build_data(cfg)
    batch = {k: v.to(device) if torch.is_tensor(v) else v
             for k, v in collate(data.private_train.batch(range(cfg.expected_batch_size))).items()}
    spe = max(1, round(len(data.private_train) / cfg.expected_batch_size))
    mechs = {}
    for m in methods:
        c = cfg.replace(method=m)
        mechs[m] = make_optimizer(c, build_model(c).to(device), private_set=data.private_train,
                                  public_set=data.public, steps_per_epoch=spe, device=device)
    times = {m: [] for m in methods}
    peak = {}
    sync = torch.cuda.synchronize if device.type == "cuda" else (lambda: None)
    for i in range(warmup + steps):
        for m, mech in mechs.items():
            if device.type == "cuda":
                torch.cuda.reset_peak_memory_stats()
            sync()
            watch = PeakMemory() if device.type == "cpu" and i == warmup + steps - 1 else None
            if watch:                         # from the state between steps: last step's buffers freed
                mech.optimizer.zero_grad(set_to_none=True)
                watch.__enter__()
            t = time.perf_counter()
            mech.step(batch, physical=cfg.max_physical_batch_size)     # the training loop's own step
            sync()
            if i >= warmup:
                times[m].append(time.perf_counter() - t)
            if watch:
                watch.__exit__(None, None, None)
                if watch.peak_mb is not None:
                    peak[m] = watch.peak_mb
            if device.type == "cuda":
                peak[m] = max(peak.get(m, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    step_s = {m: statistics.median(v) for m, v in times.items()}
    out = {"preset": preset, "device": str(device), "batch": cfg.expected_batch_size, "threads": torch.get_num_threads(),
           "input": f"{cfg.input_h}x{cfg.input_w}", "model": cfg.model_size, "strategy": cfg.strategy,
           "step_s": step_s, "images_per_s": {m: cfg.expected_batch_size / s for m, s in step_s.items()},
           "peak_mb": peak or None, "peak_kind": "cuda allocated" if device.type == "cuda" else "cpu allocated, above the step's start"}
    if NONPRIVATE in step_s:
        out["ratio"] = {m: s / step_s[NONPRIVATE] for m, s in step_s.items()}
    projecting = [m for m in mechs if METHODS[m].project]
    if projecting:
        mech = mechs[projecting[0]]
        params = mech.optimizer.params
        public = {k: v.to(device) if torch.is_tensor(v) else v
                  for k, v in collate(data.public.batch(range(cfg.subspace_m))).items()}
        sync()
        t = time.perf_counter()
        mech.optimizer.subspace.refresh(per_sample_gradients(mech.model, public, params,
                                                             physical=cfg.max_physical_batch_size))
        sync()
        out["subspace_refresh_s"] = time.perf_counter() - t
        # at the preset's schedule (a rebuild every `every` steps of its run), per step and as a share of
        # the timed pdp step, which includes the rebuilds that fell in it
        out["subspace_every"] = every = mech.privacy["subspace"]["every"]
        out["subspace_refresh_per_step_s"] = out["subspace_refresh_s"] / every
        out["refresh_share_of_step"] = out["subspace_refresh_per_step_s"] / step_s[projecting[0]]
    for mech in mechs.values():
        if hasattr(mech.model, "remove_hooks"):
            mech.model.remove_hooks()
    return out


def format_steps(result: dict) -> str:
    lines = [f"{result['preset']} on {result['device']} ({result['threads']} threads), batch {result['batch']}, "
             f"{result['input']}, model {result['model']}, {result['strategy']}; peak: {result.get('peak_kind', '')}",
             f"{'method':<11}{'step (ms)':>11}{'ratio':>8}{'images/s':>10}{'peak MB':>9}"]
    for m, s in result["step_s"].items():
        peak = (result.get("peak_mb") or {}).get(m)
        lines.append(f"{m:<11}{1000 * s:>11.1f}{result.get('ratio', {}).get(m, float('nan')):>8.2f}"
                     f"{result['images_per_s'][m]:>10.0f}{'' if peak is None else f'{peak:9.0f}'}")
    if "subspace_refresh_s" in result:
        every = result.get("subspace_every", 1)
        lines.append(f"subspace rebuild: {1000 * result['subspace_refresh_s']:.0f} ms, every {every} step(s) at the "
                     f"preset's schedule: {1000 * result['subspace_refresh_s'] / every:.0f} ms per step, "
                     f"{100 * result['refresh_share_of_step']:.1f}% of a pdp step")
    return "\n".join(lines)


def rebuild_table(runs: list[dict]):
    """Per strategy: what one rebuild of PDP-SGD's subspace costs (m per-sample public gradients and the
    eigendecomposition), how often the preset's schedule rebuilds, and its cost per step, in ms and as a
    share of the timed PDP-SGD step (which includes the rebuilds)."""
    import pandas as pd
    rows = [{"strategy": r["strategy"], "rebuild (ms)": 1000 * r["subspace_refresh_s"],
             "every (steps)": r.get("subspace_every", 1),
             "per step (ms)": 1000 * r["subspace_refresh_s"] / r.get("subspace_every", 1),
             "share of a PDP-SGD step": r["refresh_share_of_step"]} for r in runs if "subspace_refresh_s" in r]
    return pd.DataFrame(rows).set_index("strategy") if rows else pd.DataFrame()


def rebuild_sentence(table) -> str:
    """The rebuild's cost in words, from rebuild_table (what the cost chapter says)."""
    if table.empty or "finetune" not in table.index:
        return "No step benchmark of the subspace rebuild yet: `dphpe bench` measures it."
    f = table.loc["finetune"]
    text = (f"One rebuild takes {f['rebuild (ms)']:.0f} ms in finetuning; the preset's schedule rebuilds every "
            f"{int(f['every (steps)'])} step(s), so rebuilding is {100 * f['share of a PDP-SGD step']:.0f}% of a "
            f"PDP-SGD step")
    if "full" in table.index:
        text += (f" ({100 * table.loc['full', 'share of a PDP-SGD step']:.0f}% in full finetuning, where the basis "
                 f"spans every parameter)")
    return text + "."


def bench_strategies(preset: str = "embedded", *, strategies=("finetune", "full"), **kwargs) -> dict:
    """bench_steps for each strategy, in one process, one after the other: {"runs": [...]}."""
    return {"preset": preset, "runs": [bench_steps(preset, strategy=s, **kwargs) for s in strategies]}




def read_steps(path) -> tuple:
    """A stored `dphpe bench --json` file: its runs (one per strategy; None where there is no file) and one
    row per strategy and method (step time, ratio to non-private, images per second, peak memory)."""
    import json
    from pathlib import Path

    import pandas as pd
    path = Path(path)
    if not path.is_file():
        return None, None
    bench = json.loads(path.read_text())
    runs = bench.get("runs", [bench])           # an older `dphpe bench` wrote one strategy, without "runs"
    from .methods import METHOD_NAMES
    steps = pd.DataFrame([{"strategy": run["strategy"], "method": METHOD_NAMES[m], "step (ms)": 1000 * s,
                           "ratio to non-private": run["ratio"][m], "images/s": run["images_per_s"][m],
                           "peak memory (MB)": (run.get("peak_mb") or {}).get(m)}
                          for run in runs for m, s in run["step_s"].items()])
    return runs, steps.set_index(["strategy", "method"]).round(2)


def wall_times(runs) -> tuple:
    """Median wall time per method over the study's runs, and the cost chapter's ratios: the slowest run
    against its cell's median, and the headline method's and the reference's median over the non-private."""
    from .methods import HEADLINE, METHOD_NAMES, REFERENCE
    per_method = runs.groupby("Method").wall_s.median()
    cell_median = runs.groupby(["Method", "strategy"]).wall_s.transform("median")
    base = per_method[METHOD_NAMES[NONPRIVATE]]
    return per_method.round(1).to_frame("median wall time (s)"), {
        "cost_slowest": float((runs.wall_s / cell_median).max()),
        "cost_ratio_hybrid": float(per_method.get(METHOD_NAMES[HEADLINE], float("nan")) / base),
        "cost_ratio_dpsgd": float(per_method.get(METHOD_NAMES[REFERENCE], float("nan")) / base)}
