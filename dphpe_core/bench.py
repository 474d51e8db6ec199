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


def bench_steps(preset: str = "embedded", *, steps: int = 20, warmup: int = 3,
                methods=("nonprivate", "dpsgd", "pdp", "fdp", "hybrid"), **overrides) -> dict:
    """Time one optimizer step (public preparation, forward, backward, privatisation, update) per
    method on the same model start, data and batch of expected_batch_size crops, in one process,
    the methods interleaved; the median over `steps` steps after `warmup`. Also the subspace
    refresh (pdp) and, on CUDA, each method's peak memory."""
    import statistics

    import torch

    from .config import make_config
    from .data import build_data, collate
    from .mechanisms import make_optimizer, per_sample_gradients, per_sample_loss
    from .start import build_model
    from .loop import resolve_device
    cfg = make_config(preset, **overrides)
    device = resolve_device(cfg)
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
            t = time.perf_counter()
            mech.optimizer.zero_grad(set_to_none=True)
            if mech.prepare is not None:
                mech.prepare(batch)
            losses = per_sample_loss(mech.model, batch)
            (losses.sum() if mech.sum_loss else losses.mean()).backward()
            mech.optimizer.step()
            sync()
            if i >= warmup:
                times[m].append(time.perf_counter() - t)
            if device.type == "cuda":
                peak[m] = max(peak.get(m, 0.0), torch.cuda.max_memory_allocated() / 2**20)
    step_s = {m: statistics.median(v) for m, v in times.items()}
    out = {"preset": preset, "device": str(device), "batch": cfg.expected_batch_size, "threads": torch.get_num_threads(),
           "input": f"{cfg.input_h}x{cfg.input_w}", "model": cfg.model_size, "strategy": cfg.strategy,
           "step_s": step_s, "images_per_s": {m: cfg.expected_batch_size / s for m, s in step_s.items()},
           "peak_mb": peak or None}
    if "nonprivate" in step_s:
        out["ratio"] = {m: s / step_s["nonprivate"] for m, s in step_s.items()}
    if "pdp" in mechs:
        mech = mechs["pdp"]
        params = mech.optimizer.params
        public = {k: v.to(device) if torch.is_tensor(v) else v
                  for k, v in collate(data.public.batch(range(cfg.subspace_m))).items()}
        sync()
        t = time.perf_counter()
        mech.optimizer.subspace.refresh(per_sample_gradients(mech.model, public, params,
                                                             physical=cfg.max_physical_batch_size))
        sync()
        out["subspace_refresh_s"] = time.perf_counter() - t
        out["refresh_share_of_step"] = out["subspace_refresh_s"] / cfg.subspace_every / step_s["pdp"]
    for mech in mechs.values():
        if hasattr(mech.model, "remove_hooks"):
            mech.model.remove_hooks()
    return out


def format_steps(result: dict) -> str:
    lines = [f"{result['preset']} on {result['device']} ({result['threads']} threads), batch {result['batch']}, "
             f"{result['input']}, model {result['model']}, {result['strategy']}",
             f"{'method':<11}{'step (ms)':>11}{'ratio':>8}{'images/s':>10}{'peak MB':>9}"]
    for m, s in result["step_s"].items():
        peak = (result.get("peak_mb") or {}).get(m)
        lines.append(f"{m:<11}{1000 * s:>11.1f}{result.get('ratio', {}).get(m, float('nan')):>8.2f}"
                     f"{result['images_per_s'][m]:>10.0f}{'' if peak is None else f'{peak:9.0f}'}")
    if "subspace_refresh_s" in result:
        lines.append(f"subspace refresh: {1000 * result['subspace_refresh_s']:.0f} ms "
                     f"({100 * result['refresh_share_of_step']:.1f}% of a pdp step, amortised)")
    return "\n".join(lines)
