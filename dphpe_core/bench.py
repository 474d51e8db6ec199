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
