"""The study's grid of runs: configs from a preset's grid, run through `load_or_train` (cached by
config hash, so resumable), in parallel processes, summarised in results/<preset>/summary.csv.

    dphpe sweep --preset embedded --jobs 2

Each preset names its grid (`GRIDS`): methods x epsilon x C x strategies x seeds, plus extra
seeds in the cells where the book draws confidence intervals, the non-private baselines (raw and
blurred-only crops, per strategy) and the three public sources of feature DP.
"""

from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

from .config import Config, make_config

PRIVATE_METHODS = ("dpsgd", "pdp", "fdp", "hybrid")


@dataclass(frozen=True)
class Grid:
    """What a preset's study runs."""
    epsilons: tuple[float, ...]
    clip_norms: tuple[float, ...]
    strategies: tuple[str, ...]
    seeds: tuple[int, ...]                 # every private cell
    ci_seeds: tuple[int, ...]              # extra seeds where the book draws confidence intervals ...
    ci_clip_norm: float                    # ... for every method and epsilon at this C
    ci_strategy: str                       # ... and this strategy
    baseline_strategies: tuple[str, ...]   # non-private, raw and blurred-only
    methods: tuple[str, ...] = PRIVATE_METHODS
    fdp_publics: tuple[str, ...] = ("independent", "same-batch", "public-set")   # at the CI cell, seeds only

    def configs(self, preset: str, **overrides) -> list[Config]:
        """Every config of the grid, each once, in a stable order."""
        base = make_config(preset, **overrides)
        out: dict[str, Config] = {}

        def add(**changes):
            cfg = base.replace(**changes)
            out.setdefault(cfg.hash(), cfg)

        for strategy in self.baseline_strategies:
            for blurred in (False, True):
                for seed in self.seeds + (self.ci_seeds if strategy == self.ci_strategy else ()):
                    add(method="nonprivate", strategy=strategy, blurred_only=blurred, seed=seed)
        for strategy in self.strategies:
            for clip in self.clip_norms:
                ci = strategy == self.ci_strategy and clip == self.ci_clip_norm
                for method in self.methods:
                    for eps in self.epsilons:
                        for seed in self.seeds + (self.ci_seeds if ci else ()):
                            add(method=method, strategy=strategy, clip_norm=clip, epsilon=eps, seed=seed)
        for source in self.fdp_publics:
            for eps in self.epsilons:
                for seed in self.seeds:
                    add(method="fdp", fdp_public=source, strategy=self.ci_strategy, clip_norm=self.ci_clip_norm,
                        epsilon=eps, seed=seed)
        return list(out.values())


PAPER_GRID = dict(epsilons=(0.2, 0.4, 0.6, 0.8), clip_norms=(0.01, 0.1, 1.0), strategies=("finetune", "full"))
GRIDS: dict[str, Grid] = {
    "smoke": Grid(epsilons=(0.4, 0.8), clip_norms=(0.1,), strategies=("finetune",), seeds=(0,), ci_seeds=(),
                  ci_clip_norm=0.1, ci_strategy="finetune", baseline_strategies=("finetune",)),
    "embedded": Grid(**PAPER_GRID, seeds=(0,), ci_seeds=(1, 2), ci_clip_norm=0.1, ci_strategy="finetune",
                     baseline_strategies=("finetune", "full", "scratch")),
    "paper": Grid(**PAPER_GRID, seeds=(0,), ci_seeds=(), ci_clip_norm=0.1, ci_strategy="finetune",
                  baseline_strategies=("finetune", "full", "scratch")),
}


def grid_configs(preset: str, **overrides) -> list[Config]:
    if preset not in GRIDS:
        raise ValueError(f"no grid for preset {preset!r}; expected one of {sorted(GRIDS)}")
    return GRIDS[preset].configs(preset, **overrides)


def _run_one(cfg_dict: dict, threads: int) -> str:
    import torch

    from . import results
    from .train import load_or_train
    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict)
    load_or_train(cfg, progress=False)
    return str(results.run_path(cfg))


# Step time of each method relative to a non-private step (`dphpe bench`, embedded, rounded).
_METHOD_COST = {"nonprivate": 1.0, "dpsgd": 1.6, "pdp": 1.8, "fdp": 2.8, "hybrid": 3.0}


def relative_cost(cfg: Config) -> float:
    """A run's expected cost in non-private finetuning runs: the sweep starts the longest runs
    first, so that no process is left with a long run after the other has finished."""
    return _METHOD_COST[cfg.method] * (1.0 if cfg.strategy == "finetune" else 2.0)


def run_sweep(configs: list[Config], *, jobs: int = 1, progress: bool = True) -> list:
    """Run every config not stored yet (load_or_train), `jobs` processes at a time; all records."""
    from concurrent.futures import ProcessPoolExecutor, as_completed

    from tqdm.auto import tqdm

    from . import results
    from .data import build_data
    from .train import _pretrain_key, pretrained_state
    todo = sorted((c for c in configs if not results.run_path(c).is_file()), key=relative_cost, reverse=True)
    # shared inputs first, once, in this process: the data caches and each pretrained start
    if todo:
        build_data(todo[0])
    starts = {_pretrain_key(c): c for c in todo if c.strategy != "scratch" and not c.pretrained_path}
    for c in starts.values():
        pretrained_state(c, progress=progress)
    bar = tqdm(total=len(configs), initial=len(configs) - len(todo), desc=f"sweep ({jobs} jobs)", unit="run",
               disable=not progress)
    if jobs <= 1:
        for c in todo:
            _run_one(c.to_dict(), max(1, os.cpu_count() or 1))
            bar.update()
    else:
        threads = max(1, (os.cpu_count() or 1) // jobs)
        with ProcessPoolExecutor(max_workers=jobs) as pool:
            futures = [pool.submit(_run_one, c.to_dict(), threads) for c in todo]
            for f in as_completed(futures):
                f.result()
                bar.update()
    bar.close()
    return [results.load(results.run_path(c)) for c in configs]


def write_summary(runs: list, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    from .results import summary_frame
    summary_frame(runs).to_csv(path, index=False)
    return path


def sweep(preset: str, *, jobs: int = 1, progress: bool = True, **overrides) -> Path:
    """The preset's whole grid, then results/<preset>/summary.csv; returns its path."""
    configs = grid_configs(preset, **overrides)
    runs = run_sweep(configs, jobs=jobs, progress=progress)
    return write_summary(runs, Path(configs[0].results_dir) / preset / "summary.csv")
