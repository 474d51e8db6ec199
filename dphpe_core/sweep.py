"""The study's grid of runs: configs from a preset's grid, run through `load_or_train` (cached by
config hash, so resumable), in parallel processes, summarised in results/<preset>/summary.csv.

    dphpe sweep --preset embedded --jobs 2

Each preset names its grid (`GRIDS`): methods x epsilon x C x strategies with the seeds each
strategy gets (and extra seeds at the largest epsilon), the non-private baselines (raw and
blurred-only crops, per strategy), the other public sources of feature DP, the regime runs (the
headline cell, finetuning at the largest epsilon, every C and method, non-private beside it, again at
smaller private training sets, told apart by `n_private`) and the epsilon axis of the regime map
(`cost_configs`: the headline cell at epsilons down to where privacy costs DP-SGD what it costs in
the paper, every method at `cost_clip_norms`, the finetuning seeds, accounted by `cost_accountant`).
"""

from __future__ import annotations

import functools
import os
import sys
import time
from dataclasses import dataclass
from pathlib import Path

from .config import Config, make_config
from .methods import METHODS, NONPRIVATE, PRIVATE_METHODS, PROJECTING, REFERENCE


MAP_PARTS = ("cost_axis", "view_axis", "paper_cell", "optimizer_axis")     # the summary's columns (mark_parts)


@dataclass(frozen=True)
class Grid:
    """What a preset's study runs."""
    epsilons: tuple[float, ...]
    clip_norms: tuple[float, ...]
    strategies: tuple[str, ...]
    seeds: dict[str, tuple[int, ...]]            # per strategy: the seeds of every private cell
    extra_seeds: dict[str, tuple[int, ...]]      # per strategy: more seeds at the largest epsilon, every C
    baseline_seeds: dict[str, tuple[int, ...]]   # non-private, raw and blurred-only, per strategy
    fdp_clip_norm: float                         # the other public sources (the method table's other_sources,
    fdp_publics: tuple[str, ...] = ("same-batch", "public-set")   # those listed here): finetuning, this C,
                                                                  # every epsilon, the first seed
    regime_n: tuple[int, ...] = ()               # smaller private sets for the headline cell
    methods: tuple[str, ...] = PRIVATE_METHODS
    # the regime map's epsilon axis: finetuning at these epsilons and clipping norms, every method, the
    # finetuning seeds. PLD for every method: below epsilon 0.02 Opacus' RDP bound is mostly its conversion
    # (2.5 to 7 times the exact epsilon at 86 steps), which would hand DP-SGD and PDP-SGD more noise than
    # feature DP and the hybrid (PLD already) at the same nominal epsilon
    cost_epsilons: tuple[float, ...] = ()
    cost_clip_norms: tuple[float, ...] = ()
    cost_accountant: str = "pld"
    # the public-view axis: blur strengths (blur_sigma_256) beside the preset's, from the paper's towards one
    # that leaves the crops recognisable: the blurred-only baseline (the finetuning baseline seeds), and feature
    # DP and the hybrid at the headline cell (the largest epsilon, cost_clip_norms, the finetuning seeds)
    view_sigmas: tuple[float, ...] = ()
    # the paper-equivalent cells, (epsilon, blur_sigma_256): where DP-SGD's cost and the blurred-only ratio are
    # nearest the paper's (regime.paper_cells chooses them from the two axes' records; a test checks that the
    # grid's are among them: one not listed has no records yet). Every method, cost_clip_norms, the finetuning
    # seeds, accounted by cost_accountant
    paper_cells: tuple[tuple[float, float], ...] = ()
    # the optimizer axis, (optimizer, epsilon, blur_sigma_256, lr): optimizer_methods at that cell under that
    # optimizer, its lr chosen on public data (tuning.tune_optimizers; a test checks they agree), cost_clip_norms,
    # the finetuning seeds; the grid's accountant at the grid's epsilons, else cost_accountant
    optimizer_cells: tuple[tuple[str, float, float, float], ...] = ()
    optimizer_methods: tuple[str, ...] = (REFERENCE, *PROJECTING)   # is projection's gain the optimizer's?

    def configs(self, preset: str, *, cost: bool = True, **overrides) -> list[Config]:
        """Every config of the grid, each once, in a stable order (`cost=False`: without the epsilon axis)."""
        base = make_config(preset, **overrides)
        out: dict[str, Config] = {}
        top = max(self.epsilons)

        def add(**changes):
            cfg = base.replace(**changes)
            out.setdefault(cfg.hash(), cfg)

        for strategy, seeds in self.baseline_seeds.items():
            for blurred in (False, True):
                for seed in seeds:
                    add(method=NONPRIVATE, strategy=strategy, blurred_only=blurred, seed=seed)
        for strategy in self.strategies:
            for clip in self.clip_norms:
                for method in self.methods:
                    for eps in self.epsilons:
                        extra = self.extra_seeds.get(strategy, ()) if eps == top else ()
                        for seed in self.seeds[strategy] + extra:
                            add(method=method, strategy=strategy, clip_norm=clip, epsilon=eps, seed=seed)
        for method, source in ((m, s) for m, p in METHODS.items() for s in p.other_sources if s in self.fdp_publics):
            for eps in self.epsilons:
                add(method=method, fdp_public=source, strategy="finetune", clip_norm=self.fdp_clip_norm, epsilon=eps,
                    seed=self.seeds["finetune"][0])
        for n in self.regime_n:
            seeds = self.seeds["finetune"] + self.extra_seeds.get("finetune", ())
            for seed in seeds:
                add(method=NONPRIVATE, strategy="finetune", n_private=n, seed=seed)
                for clip in self.clip_norms:
                    for method in self.methods:
                        add(method=method, strategy="finetune", n_private=n, clip_norm=clip, epsilon=top, seed=seed)
        for cfg in self.map_configs(preset, **overrides) if cost else ():
            out.setdefault(cfg.hash(), cfg)
        return list(out.values())

    def map_parts(self, preset: str, **overrides) -> dict[str, list[Config]]:
        """The regime map's parts by the summary's column names (MAP_PARTS): epsilon axis, public view,
        paper cells, optimizer axis."""
        parts = (self.cost_configs, self.view_configs, self.paper_cell_configs, self.optimizer_configs)
        return {name: part(preset, **overrides) for name, part in zip(MAP_PARTS, parts)}

    def map_configs(self, preset: str, **overrides) -> list[Config]:
        """Every run of the regime map's parts, each once."""
        out = {}
        for configs in self.map_parts(preset, **overrides).values():
            for cfg in configs:
                out.setdefault(cfg.hash(), cfg)
        return list(out.values())

    def _cell(self, base: Config, methods, **changes) -> list[Config]:
        return [base.replace(method=m, strategy="finetune", clip_norm=clip, seed=seed, **changes)
                for m in methods for clip in self.cost_clip_norms for seed in self.seeds["finetune"]]

    def view_configs(self, preset: str, **overrides) -> list[Config]:
        """The public-view axis (see the fields above)."""
        base = make_config(preset, **overrides)
        out = []
        for sigma in self.view_sigmas:
            out += [base.replace(method=NONPRIVATE, strategy="finetune", blurred_only=True, blur_sigma_256=sigma,
                                 seed=seed) for seed in self.baseline_seeds.get("finetune", ())]
            out += self._cell(base, [m for m in self.methods if METHODS[m].public_gradient],
                              epsilon=max(self.epsilons), blur_sigma_256=sigma)
        return out

    def paper_cell_configs(self, preset: str, **overrides) -> list[Config]:
        """The paper-equivalent cells (see the fields above)."""
        base = make_config(preset, **overrides)
        return [c for eps, sigma in self.paper_cells
                for c in self._cell(base, self.methods, epsilon=eps, blur_sigma_256=sigma, accountant=self.cost_accountant)]

    def optimizer_configs(self, preset: str, **overrides) -> list[Config]:
        """The optimizer axis (see the fields above)."""
        base = make_config(preset, **overrides)
        return [c for opt, eps, sigma, lr in self.optimizer_cells
                for c in self._cell(base, self.optimizer_methods, epsilon=eps, blur_sigma_256=sigma, optimizer=opt,
                                    lr=lr, accountant=base.accountant if eps in self.epsilons else self.cost_accountant)]

    def cost_configs(self, preset: str, **overrides) -> list[Config]:
        """The epsilon axis of the regime map (see the fields above), each config once."""
        base = make_config(preset, **overrides)
        out = {}
        for eps in self.cost_epsilons:
            for clip in self.cost_clip_norms:
                for method in self.methods:
                    for seed in self.seeds["finetune"]:
                        cfg = base.replace(method=method, strategy="finetune", clip_norm=clip, epsilon=eps, seed=seed,
                                           accountant=self.cost_accountant)
                        out.setdefault(cfg.hash(), cfg)
        return list(out.values())


PAPER_GRID = dict(epsilons=(0.2, 0.4, 0.6, 0.8), clip_norms=(0.01, 0.1, 1.0), strategies=("finetune", "full"))
GRIDS: dict[str, Grid] = {
    "smoke": Grid(epsilons=(0.4, 0.8), clip_norms=(0.1,), strategies=("finetune",), seeds={"finetune": (0,)},
                  extra_seeds={}, baseline_seeds={"finetune": (0,)}, fdp_clip_norm=0.1, fdp_publics=(), regime_n=(48,),
                  cost_epsilons=(0.2,), cost_clip_norms=(0.1,), view_sigmas=(5.0,), paper_cells=((0.2, 5.0),),
                  optimizer_cells=(("adamw", 0.8, 10.0, 3e-3), ("sgd", 0.8, 10.0, 0.03))),
    # every finetuning cell at 3 seeds; full finetuning at 1, and 3 at epsilon 0.8; the regime at
    # 2,000 (the earlier study's size) and 5,500 private crops beside the preset's 22,000; the epsilon axis
    # from the grid's smallest epsilon down, log-spaced, to where DP-SGD loses 30% of the non-private score
    # (measured: 33% at 0.002, 19% at 0.01), a 1-2-5 ladder (0.1 to come); the public view at the paper's
    # blur (sigma 10 at 256 px, 2.5 px on our crops), 5 and 2.5 at 256 px (0.6 px, a crop plainly recognisable; a seed-0 probe
    # of the blurred-only model: 37.8 and 65.3 against 15.8 at the paper's); the paper-equivalent cells and
    # the optimizer axis as the tests say (chosen from the records and on public data)
    "embedded": Grid(**PAPER_GRID, seeds={"finetune": (0, 1, 2), "full": (0,)}, extra_seeds={"full": (1, 2)},
                     baseline_seeds={"finetune": (0, 1, 2), "full": (0, 1, 2), "scratch": (0,)}, fdp_clip_norm=0.1,
                     regime_n=(2000, 5500), cost_epsilons=(0.2, 0.05, 0.02, 0.01, 0.005, 0.002),
                     cost_clip_norms=(0.01, 0.1), view_sigmas=(5.0, 2.5), paper_cells=((0.02, 2.5), (0.005, 2.5)),
                     optimizer_cells=(("adamw", 0.8, 10.0, 3e-3), ("sgd", 0.8, 10.0, 0.03))),
    "paper": Grid(**PAPER_GRID, seeds={"finetune": (0,), "full": (0,)}, extra_seeds={},
                  baseline_seeds={"finetune": (0,), "full": (0,), "scratch": (0,)}, fdp_clip_norm=0.1),
}


@functools.lru_cache(maxsize=None)
def map_only_hashes(preset: str) -> frozenset[str]:
    """The hashes of the regime map's runs that no other part of the preset's grid holds (the
    paper's grid, the findings and the tuning tables leave them out; results.main_grid)."""
    grid = GRIDS[preset]
    return frozenset({c.hash() for c in grid.map_configs(preset)} - {c.hash() for c in grid.configs(preset, cost=False)})



def grid_configs(preset: str, **overrides) -> list[Config]:
    if preset not in GRIDS:
        raise ValueError(f"no grid for preset {preset!r}; expected one of {sorted(GRIDS)}")
    return GRIDS[preset].configs(preset, **overrides)


def _run_one(cfg_dict: dict, threads: int, fresh: bool = False) -> dict:
    import torch

    from .train import load_or_train
    torch.set_num_threads(threads)
    cfg = Config.from_dict(cfg_dict)
    r = load_or_train(cfg, progress=False, fresh=fresh)
    return {"pckh": r.pckh["Mean"], "wall_s": r.wall_s}


def relative_cost(cfg: Config) -> float:
    """A run's expected cost in non-private finetuning runs (per private crop, method, strategy): the
    sweep starts the longest runs first, so that no process is left with a long run after the other
    has finished, and weighs the time left by it."""
    size = cfg.n_private / 1000 if cfg.dataset == "synthpose" else 1.0
    return METHODS[cfg.method].cost * (1.0 if cfg.strategy == "finetune" else 2.0) * size


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


def sweep(preset: str, *, jobs: int = 1, progress: bool = True, fresh: bool = False, **overrides) -> Path:
    """The preset's whole grid, then results/<preset>/summary.csv; returns its path."""
    configs = grid_configs(preset, **overrides)
    runs = run_sweep(configs, jobs=jobs, progress=progress, fresh=fresh)
    return write_summary(runs, Path(configs[0].results_dir) / preset / "summary.csv")


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
