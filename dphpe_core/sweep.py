"""The study's runs: a list of configs (grid.py's) through `load_or_train` (cached by config hash, so
resumable), in parallel processes, longest first, with progress; summarised in
results/<preset>/summary.csv with each run's part of the grid marked.

    dphpe sweep --preset embedded --jobs 2
"""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

from .config import Config, make_config
from .grid import GRIDS, MAP_PARTS, grid_configs, map_only_hashes
from .methods import METHODS


def _run_one(cfg_dict: dict, threads: int, fresh: bool = False) -> dict:
    import torch

    from .train import load_or_train
    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict)
    r = load_or_train(cfg, progress=False, fresh=fresh)
    return {"pckh": r.pckh["Mean"], "wall_s": r.wall_s}


def relative_cost(cfg: Config) -> float:
    """A run's expected cost in non-private finetuning runs (per private crop, method, strategy, schedule): the
    sweep starts the longest runs first, so that no process is left with a long run after the other
    has finished, and weighs the time left by it."""
    size = cfg.n_private / 1000 if cfg.dataset == "synthpose" else 1.0
    # an epoch at a smaller batch costs more (fixed costs per step): about the square root of the ratio
    # (dphpe bench, DP-SGD at batch 32, 128 and 256, bench/README.md)
    schedule = cfg.epochs * max(1.0, 256 / cfg.expected_batch_size) ** 0.5
    return METHODS[cfg.method].cost * (1.0 if cfg.strategy == "finetune" else 2.0) * size * schedule


def describe(cfg: Config) -> str:
    """A run in a few words, for progress lines."""
    what = f"{cfg.method}/{cfg.strategy}"
    if METHODS[cfg.method].private:
        what += f" eps={cfg.epsilon:g} C={cfg.clip_norm:g}"
        if METHODS[cfg.method].public_gradient and cfg.fdp_public != "independent":
            what += f" public={cfg.fdp_public}"
    if cfg.blurred_only:
        what += " blurred"
    return f"{what} seed={cfg.seed} N={cfg.n_private}"


def _clock(seconds: float) -> str:
    s = int(round(seconds))
    return f"{s // 3600}:{s % 3600 // 60:02d}:{s % 60:02d}"


class SweepProgress:
    """Runs done, the runs in flight and the time left (weighted by `relative_cost`): a tqdm bar on a
    terminal, else one line per finished run (a log file stays readable)."""

    def __init__(self, todo: list[Config], total: int, *, jobs: int, enabled: bool):
        self.cost_left = sum(relative_cost(c) for c in todo)
        self.cost_done, self.done, self.n, self.total = 0.0, total - len(todo), len(todo), total
        self.enabled, self.t0 = enabled, time.perf_counter()
        self.bar = None
        if not todo:                          # nothing to train: the caller says what was reused
            enabled = self.enabled = False
        if enabled and sys.stderr.isatty():
            from tqdm.auto import tqdm
            self.bar = tqdm(total=total, initial=self.done, desc=f"sweep ({jobs} jobs)", unit="run")
        elif enabled:
            print(f"sweep: {len(todo)} of {total} runs to train ({total - len(todo)} stored), {jobs} at a time",
                  flush=True)

    def start(self, running: list[Config]) -> None:
        if self.bar is not None:
            self.bar.set_postfix_str(" | ".join(describe(c) for c in running)[:120])

    def finish(self, cfg: Config, out: dict) -> None:
        self.done += 1
        self.cost_done += relative_cost(cfg)
        self.cost_left -= relative_cost(cfg)
        elapsed = time.perf_counter() - self.t0
        left = elapsed / self.cost_done * max(self.cost_left, 0.0)
        if self.bar is not None:
            self.bar.update()
            self.bar.set_description(f"sweep, ~{_clock(left)} left")
        elif self.enabled:
            print(f"[{self.done}/{self.total}] {describe(cfg)}: PCKh@0.5 {out['pckh']:.1f} in {out['wall_s']:.0f} s; "
                  f"elapsed {_clock(elapsed)}, ~{_clock(left)} left", flush=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()


def run_sweep(configs: list[Config], *, jobs: int = 1, progress: bool = True, fresh: bool = False,
              threads: int | None = None) -> list:
    """Run every config not stored yet (load_or_train; with `fresh` every config, and the pretrained
    starts, again), `jobs` processes at a time, longest first, each with `threads` torch threads (default:
    the cores shared out); all records."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from . import results
    from .data import build_data
    from .start import pretrain_key, pretrained_state
    todo = sorted((c for c in configs if fresh or not results.run_path(c).is_file()), key=relative_cost, reverse=True)
    for folder in {results.run_path(c).parent for c in todo}:     # before hours of training, not after
        results.check_writable(folder)
    # shared inputs first, once, in this process: the data caches and each pretrained start
    for c in {(c.n_private, c.n_public, c.n_val, c.input_h, c.input_w): c for c in todo}.values():
        build_data(c)
    starts = {pretrain_key(c): c for c in todo if c.strategy != "scratch" and not c.pretrained_path}
    for c in starts.values():
        pretrained_state(c, progress=progress, fresh=fresh)
    report = SweepProgress(todo, len(configs), jobs=jobs, enabled=progress)
    threads = threads or max(1, (os.cpu_count() or 1) // max(1, jobs))
    if jobs <= 1:
        for c in todo:
            report.start([c])
            report.finish(c, _run_one(c.to_dict(), threads, fresh))
    else:
        import multiprocessing
        # spawned, not forked: this process may have started CUDA (the pretrained start on a GPU), and a
        # forked child cannot use it; spawned workers also inherit no thread pools or locks
        with ProcessPoolExecutor(max_workers=jobs, mp_context=multiprocessing.get_context("spawn")) as pool:
            futures = {pool.submit(_run_one, c.to_dict(), threads, fresh): c for c in todo}
            report.start(todo[:jobs])
            for f in as_completed(futures):
                report.finish(futures[f], f.result())
    report.close()
    return [results.load(results.run_path(c)) for c in configs]


def mark_parts(frame):
    """`frame` (results.summary_frame) with the regime map's parts marked by config hash: one column per
    part (MAP_PARTS: a run of the epsilon axis, the public-view axis, a paper-equivalent cell, the
    optimizer axis) and `map_only` (a run no part of the paper's grid holds: results.main_grid leaves it out)."""
    frame = frame.copy()
    marks = {name: set() for name in (*MAP_PARTS, "map_only")}
    for preset in set(frame.preset) & set(GRIDS):
        for name, configs in GRIDS[preset].map_parts(preset).items():
            marks[name] |= {c.hash() for c in configs}
        marks["map_only"] |= map_only_hashes(preset)
    for name, hashes in marks.items():
        frame[name] = frame.config_hash.isin(hashes)
    return frame


def write_summary(runs: list, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .results import summary_frame
    mark_parts(summary_frame(runs)).to_csv(path, index=False)
    return path


def sweep(preset: str, *, grid: str = "study", jobs: int = 1, progress: bool = True, fresh: bool = False,
          **overrides) -> Path:
    """The preset's `grid` (grid.GRID_NAMES), then results/<preset>/summary.csv; returns its path. The summary
    holds the study's runs and every stored run of the separate schedules (the paper's: their own sweep)."""
    from . import results
    runs = run_sweep(grid_configs(preset, grid, **overrides), jobs=jobs, progress=progress, fresh=fresh)
    others = grid_configs(preset, "paper-schedule" if grid == "study" else "study", **overrides)
    stored = [results.load(results.run_path(c)) for c in others if results.run_path(c).is_file()]
    return write_summary(runs + stored, Path(make_config(preset, **overrides).results_dir) / preset / "summary.csv")


def study_summary(preset: str, *, results_dir: str = "results", progress: bool = True, regime_map: bool = False,
                  **overrides):
    """The study's summary for the notebooks (results.read_summary): results/<preset>/summary.csv as the
    sweep wrote it, or, where there is none (a fresh clone, a Colab runtime), one built from the run
    records under results_dir (the committed ones for the embedded study), every run of the grid that
    has no record trained first on the configured device (`overrides`, e.g. device='cuda'). The runs only
    the regime map holds are left out (results.paper_grid) unless `regime_map`."""
    from . import results
    path = Path(results_dir) / preset / "summary.csv"
    if not path.is_file():
        configs = grid_configs(preset, results_dir=results_dir, **overrides)
        missing = [c for c in configs if not results.run_path(c).is_file()]
        if missing:
            print(f"{len(missing)} of the {len(configs)} runs of the {preset} study have no record under "
                  f"{results_dir}: training them now ({sum(map(relative_cost, missing)):.0f} non-private-finetuning-run "
                  f"equivalents; `dphpe bench` gives a step's time here).", flush=True)
        path = sweep(preset, progress=progress, results_dir=results_dir, **overrides)
    frame = results.read_summary(path)
    return frame if regime_map else results.paper_grid(frame)
