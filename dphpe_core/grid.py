"""The study's grid: every config a preset's book needs (`GRIDS`), the paper's grid and the regime map's
axes, each config once in a stable order.

    python -c "from dphpe_core.grid import grid_configs; print(len(grid_configs('embedded')))"

Each preset names its grid: methods x epsilon x C x strategies with the seeds each strategy gets (and
extra seeds at the largest epsilon), the non-private baselines (raw and blurred-only crops, per
strategy), the other public sources of feature DP, the regime runs (the headline cell, finetuning at the
largest epsilon, every C and method, non-private beside it, again at smaller private training sets, told
apart by `n_private`) and the regime map's parts (MAP_PARTS: the epsilon axis down to where privacy costs
DP-SGD what it costs in the paper, the public view's blur, the paper-equivalent cells, the optimizer).
Running them is sweep.py's.
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

from .config import Config, make_config
from .methods import METHODS, NONPRIVATE, PRIVATE_METHODS, PROJECTING, REFERENCE


MAP_PARTS = ("cost_axis", "view_axis", "paper_cell", "optimizer_axis", "schedule_axis")   # the summary's columns
GRID_NAMES = ("study", "paper-schedule")   # `dphpe sweep --grid`: make book's runs, or the paper's schedule's


@dataclass(frozen=True)
class Schedule:
    """One schedule of the schedule axis: the expected batch, the epochs and the epoch from which the lr is
    x0.1, with the lr and the rebuild interval chosen for it on public data (tuning_schedules; a test checks
    they agree), the seeds, and the methods run so far (a method not listed has no records at it yet), with
    `extra` for a private method run at only some of the epsilons.
    `separate`: run by `dphpe sweep --grid paper-schedule`, not by make book's sweep (hours on a CPU)."""
    name: str
    expected_batch_size: int
    epochs: int
    lr_decay_epoch: int
    lr: float | None                             # None: not chosen yet (no method listed)
    subspace_interval: float | None              # None: not chosen yet (no projecting method listed)
    seeds: tuple[int, ...]
    methods: tuple[str, ...] = ()
    separate: bool = False
    epsilons: tuple[float, ...] | None = None    # the private runs' epsilons so far (None: the grid's schedule_epsilons)
    extra: tuple[tuple[str, float], ...] = ()    # (private method, epsilon) run so far beyond methods x epsilons

    def __post_init__(self):
        listed = set(self.methods) | {m for m, _ in self.extra}
        if listed and self.lr is None or listed & set(PROJECTING) and self.subspace_interval is None:
            raise ValueError(f"schedule {self.name!r}: a method is listed before the value it needs was chosen")
        for method, _ in self.extra:
            if method not in METHODS or not METHODS[method].private:
                raise ValueError(f"schedule {self.name!r}: extra run {method!r} is not a private method; "
                                 f"expected one of {', '.join(PRIVATE_METHODS)}")

    def runs(self, epsilons: tuple[float, ...]) -> list[tuple[str, float | None]]:
        """The (method, epsilon) run so far, `epsilons` the grid's schedule_epsilons (None: the non-private run)."""
        return [(m, e) for m in self.methods
                for e in ((self.epsilons or epsilons) if METHODS[m].private else (None,))] + list(self.extra)

    def fields(self) -> dict:
        """The Config fields the schedule sets (lr and the interval included)."""
        out = dict(expected_batch_size=self.expected_batch_size, epochs=self.epochs, lr_decay_epoch=self.lr_decay_epoch,
                   lr=self.lr)
        return out if self.subspace_interval is None else {**out, "subspace_interval": self.subspace_interval}


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
    # nearest the paper's (cells.paper_cells chooses them from the two axes' records; a test checks that the
    # grid's are among them: one not listed has no records yet). Every method, cost_clip_norms, the finetuning
    # seeds, accounted by cost_accountant
    paper_cells: tuple[tuple[float, float], ...] = ()
    # the optimizer axis, (optimizer, epsilon, blur_sigma_256, lr): optimizer_methods at that cell under that
    # optimizer, its lr chosen on public data (tuning_optimizers.tune_optimizers; a test checks they agree), cost_clip_norms,
    # the finetuning seeds; the grid's accountant at the grid's epsilons, else cost_accountant
    optimizer_cells: tuple[tuple[str, float, float, float], ...] = ()
    optimizer_methods: tuple[str, ...] = (REFERENCE, *PROJECTING)   # is projection's gain the optimizer's?
    # the schedule axis: the headline cell (finetuning, these epsilons, this C, the grid's accountant) at other
    # schedules than the preset's (Schedule), from today's towards the paper's
    schedules: tuple[Schedule, ...] = ()
    schedule_epsilons: tuple[float, ...] = ()
    schedule_clip_norm: float = 0.01

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
        parts = (self.cost_configs, self.view_configs, self.paper_cell_configs, self.optimizer_configs,
                 self.schedule_configs)
        return {name: part(preset, **overrides) for name, part in zip(MAP_PARTS, parts)}

    def map_configs(self, preset: str, *, separate: bool = False, **overrides) -> list[Config]:
        """Every run of the regime map's parts, each once (`separate`: the separate schedules' too)."""
        parts = self.map_parts(preset, **overrides)
        if not separate:
            parts["schedule_axis"] = self.schedule_configs(preset, separate=False, **overrides)
        return list({cfg.hash(): cfg for configs in parts.values() for cfg in configs}.values())

    def preset_schedule(self, base: Config) -> Schedule:
        """The preset's own schedule as the axis' first point: its runs are the grid's own (the same hashes)."""
        return Schedule("preset", base.expected_batch_size, base.epochs, base.lr_decay_epoch, base.lr,
                        base.subspace_interval, self.seeds["finetune"], (NONPRIVATE, *self.methods))

    def schedule_configs(self, preset: str, *, separate: bool | None = None, **overrides) -> list[Config]:
        """The schedule axis (see the fields above): the preset's schedule (preset_schedule) and every other, or
        (`separate` True or False) those run by their own sweep or by make book's. The non-private run once per
        seed, the private ones per epsilon."""
        base = make_config(preset, **overrides)
        out = {}
        for s in (self.preset_schedule(base),) + self.schedules if self.schedules else ():
            if separate is not None and s.separate != separate:
                continue
            for method, eps in s.runs(self.schedule_epsilons):
                for seed in s.seeds:
                    cfg = base.replace(method=method, strategy="finetune", clip_norm=self.schedule_clip_norm,
                                       epsilon=max(self.epsilons) if eps is None else eps, seed=seed, **s.fields())
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
                  optimizer_cells=(("adamw", 0.8, 10.0, 3e-3), ("sgd", 0.8, 10.0, 0.03)),
                  schedules=(Schedule("b8x2", 8, 2, 2, None, None, (0,)),), schedule_epsilons=(0.8,),
                  schedule_clip_norm=0.1),
    # every finetuning cell at 3 seeds; full finetuning at 1, and 3 at epsilon 0.8; the regime at
    # 2,000 (the earlier study's size) and 5,500 private crops beside the preset's 22,000; the epsilon axis
    # from the grid's smallest epsilon down, log-spaced, to where DP-SGD loses 30% of the non-private score
    # (measured: 26% at 0.005, 33% at 0.002), a 1-2-5 ladder; the public view at the paper's
    # blur (sigma 10 at 256 px, 2.5 px on our crops), 5 and 2.5 at 256 px (0.6 px, a crop plainly recognisable; a seed-0 probe
    # of the blurred-only model: 37.8 and 65.3 against 15.8 at the paper's); the paper-equivalent cells and
    # the optimizer axis as the tests say (chosen from the records and on public data)
    "embedded": Grid(**PAPER_GRID, seeds={"finetune": (0, 1, 2), "full": (0,)}, extra_seeds={"full": (1, 2)},
                     baseline_seeds={"finetune": (0, 1, 2), "full": (0, 1, 2), "scratch": (0,)}, fdp_clip_norm=0.1,
                     regime_n=(2000, 5500), cost_epsilons=(0.2, 0.1, 0.05, 0.02, 0.01, 0.005, 0.002),
                     cost_clip_norms=(0.01, 0.1), view_sigmas=(5.0, 2.5), paper_cells=((0.02, 2.5), (0.005, 2.5)),
                     optimizer_cells=(("adamw", 0.8, 10.0, 3e-3), ("sgd", 0.8, 10.0, 0.03),
                                      ("adamw", 0.02, 2.5, 1e-3), ("sgd", 0.02, 2.5, 0.01),
                                      ("adamw", 0.005, 2.5, 3e-4), ("sgd", 0.005, 2.5, 0.01)),
                     schedules=(Schedule("b128x3", 128, 3, 2, 1e-3, 0.0, (0, 1, 2), methods=(NONPRIVATE, *PRIVATE_METHODS)),
                                Schedule("paper", 32, 25, 20, 1e-4, 0.0, (0,), methods=(NONPRIVATE, *PRIVATE_METHODS),
                                         separate=True)),
                     schedule_epsilons=(0.8, 0.2)),
    "paper": Grid(**PAPER_GRID, seeds={"finetune": (0,), "full": (0,)}, extra_seeds={},
                  baseline_seeds={"finetune": (0,), "full": (0,), "scratch": (0,)}, fdp_clip_norm=0.1),
}


@functools.lru_cache(maxsize=None)
def map_only_hashes(preset: str) -> frozenset[str]:
    """The hashes of the regime map's runs that no other part of the preset's grid holds (the
    paper's grid, the findings and the tuning tables leave them out; results.main_grid)."""
    grid = GRIDS[preset]
    return frozenset({c.hash() for c in grid.map_configs(preset, separate=True)} - {c.hash() for c in grid.configs(preset, cost=False)})


def grid_configs(preset: str, grid: str = "study", **overrides) -> list[Config]:
    """The runs of a preset's `grid` (GRID_NAMES): "study", what make book runs and reuses; "paper-schedule",
    the schedule axis' runs at the schedules run by their own sweep."""
    if preset not in GRIDS:
        raise ValueError(f"no grid for preset {preset!r}; expected one of {sorted(GRIDS)}")
    if grid not in GRID_NAMES:
        raise ValueError(f"unknown grid {grid!r}; expected one of {list(GRID_NAMES)}")
    if grid == "paper-schedule":
        return GRIDS[preset].schedule_configs(preset, separate=True, **overrides)
    return GRIDS[preset].configs(preset, **overrides)
