import pytest

from dphpe_core import make_config

from dphpe_core import intervals, results
from dphpe_core.grid import GRIDS, MAP_PARTS, grid_configs, map_only_hashes
from dphpe_core.sweep import mark_parts, run_sweep, write_summary


def test_the_embedded_grid_covers_every_cell_of_the_papers_grid_with_its_seeds():
    configs = GRIDS["embedded"].configs("embedded", cost=False)
    n = make_config("embedded").n_private
    main = [c for c in configs if c.method != "nonprivate" and c.n_private == n
            and (c.method != "fdp" or c.fdp_public == "independent")]
    cells = {(c.strategy, c.method, c.clip_norm, c.epsilon) for c in main}
    assert cells == {(s, m, c, e) for s in ("finetune", "full") for m in ("dpsgd", "pdp", "fdp", "hybrid")
                     for c in (0.01, 0.1, 1.0) for e in (0.2, 0.4, 0.6, 0.8)}
    seeds = {}
    for c in main:
        seeds.setdefault((c.strategy, c.method, c.clip_norm, c.epsilon), set()).add(c.seed)
    for (strategy, _, _, eps), s in seeds.items():        # the rule: 3 seeds for every finetuning
        want = 3 if strategy == "finetune" or eps == 0.8 else 1   # cell, 1 (3 at epsilon 0.8) for full
        assert len(s) == want, (strategy, eps, s)
    assert {(c.blurred_only, c.strategy) for c in configs if c.method == "nonprivate"} == \
        {(b, s) for b in (False, True) for s in ("finetune", "full", "scratch")}
    assert {c.fdp_public for c in configs if c.method == "fdp"} == {"independent", "same-batch", "public-set"}
    assert len({c.hash() for c in configs}) == len(configs)


def test_the_epsilon_axis_is_the_headline_cell_below_the_grid_under_pld_and_apart_from_the_grid():
    g = GRIDS["embedded"]
    cost = g.cost_configs("embedded")
    assert min(g.cost_epsilons) < min(g.epsilons) and max(g.cost_epsilons) == min(g.epsilons)
    assert {(c.strategy, c.n_private, c.fdp_public, c.blurred_only) for c in cost} == {("finetune", 22000, "independent", False)}
    assert {(c.method, c.epsilon, c.clip_norm, c.seed) for c in cost} == {
        (m, e, k, s) for m in g.methods for e in g.cost_epsilons for k in g.cost_clip_norms for s in (0, 1, 2)}
    for c in cost:   # DP-SGD and PDP-SGD read the accountant; feature DP and the hybrid are PLD anyway
        assert c.accountant == "pld"
    main = {c.hash() for c in g.configs("embedded", cost=False)}
    only = map_only_hashes("embedded")
    assert {c.hash() for c in cost} - main <= only
    assert len({c.hash() for c in cost} & main) == 12                     # FDP, hybrid at 0.2: shared
    apart = {c.hash() for c in grid_configs("embedded", "paper-schedule")}      # the paper's schedule: its own sweep
    assert {c.hash() for c in grid_configs("embedded")} == main | (only - apart) and apart <= only
    assert only == {c.hash() for c in g.map_configs("embedded", separate=True)} - main


def test_the_public_view_axis_varies_only_the_blur_of_the_methods_that_read_it():
    g = GRIDS["embedded"]
    view = g.view_configs("embedded")
    preset = make_config("embedded").blur_sigma_256
    assert g.view_sigmas and preset not in g.view_sigmas and min(g.view_sigmas) > 0
    base = [c for c in view if c.method == "nonprivate"]
    assert {(c.blurred_only, c.strategy) for c in base} == {(True, "finetune")}
    assert {(c.blur_sigma_256, c.seed) for c in base} == {(s, k) for s in g.view_sigmas for k in (0, 1, 2)}
    private = [c for c in view if c.method != "nonprivate"]
    assert {c.method for c in private} == {"fdp", "hybrid"} and {c.epsilon for c in private} == {max(g.epsilons)}
    assert {(c.blur_sigma_256, c.clip_norm, c.seed) for c in private} == {
        (s, k, d) for s in g.view_sigmas for k in g.cost_clip_norms for d in (0, 1, 2)}
    # the blur is part of those runs' identity, and of no run that does not read it
    assert len({c.hash() for c in view}) == len(view)
    dp = make_config("embedded", method="dpsgd")
    assert dp.replace(blur_sigma_256=2.5).hash() == dp.hash()


def test_the_optimizer_axis_and_the_paper_cells_hold_the_values_chosen_on_public_data():
    from dphpe_core import tuning_optimizers
    g = GRIDS["embedded"]
    chosen = tuning_optimizers.read_optimizer_tuning("embedded")["chosen"]
    assert g.optimizer_cells and {o for o, _, _, _ in g.optimizer_cells} == set(tuning_optimizers.OPTIMIZER_LRS)
    # every optimizer at every epsilon the tuning chose a rate for: the headline cell and the paper cells
    assert {(o, e) for o, e, _, _ in g.optimizer_cells} == {
        (o, e) for o in tuning_optimizers.OPTIMIZER_LRS for e in tuning_optimizers.axis_epsilons("embedded")}
    for optimizer, eps, sigma, lr in g.optimizer_cells:         # each at the rate the stand-in chose for it
        assert chosen[optimizer][f"{eps:g}"] == lr
        assert (eps, sigma) in g.paper_cells or (eps == max(g.epsilons) and sigma == make_config("embedded").blur_sigma_256)
    for c in g.optimizer_configs("embedded"):
        assert c.method in g.optimizer_methods and c.strategy == "finetune"
        assert c.accountant == ("rdp" if c.epsilon in g.epsilons else "pld")
    for c in g.paper_cell_configs("embedded"):
        assert (c.epsilon, c.blur_sigma_256) in g.paper_cells and c.accountant == "pld"


def test_the_regime_runs_repeat_the_headline_cell_at_smaller_n():
    configs = grid_configs("embedded")
    g = GRIDS["embedded"]
    for n in g.regime_n:
        at_n = [c for c in configs if c.n_private == n]
        assert {c.method for c in at_n} == {"nonprivate", "dpsgd", "pdp", "fdp", "hybrid"}
        private = [c for c in at_n if c.method != "nonprivate"]
        assert {(c.strategy, c.epsilon) for c in private} == {("finetune", 0.8)}
        assert {c.clip_norm for c in private} == set(g.clip_norms) and {c.seed for c in at_n} == {0, 1, 2}


def test_unknown_preset_has_no_grid():
    with pytest.raises(ValueError, match="no grid for preset"):
        grid_configs("nope")


def test_sweep_runs_in_parallel_resumes_and_summarises(smoke_cfg, tmp_path):
    configs = [smoke_cfg.replace(results_dir=str(tmp_path), method=m, epsilon=2.0) for m in ("nonprivate", "dpsgd")]
    runs = run_sweep(configs, jobs=2, progress=False)
    assert [r.config_hash for r in runs] == [c.hash() for c in configs]
    stamps = [results.run_path(c).stat().st_mtime_ns for c in configs]
    again = run_sweep(configs, jobs=2, progress=False)                  # nothing left to run
    assert again == runs and stamps == [results.run_path(c).stat().st_mtime_ns for c in configs]
    df = results.read_summary(write_summary(runs, tmp_path / "summary.csv"))
    assert list(df.columns) == [*results.COLUMNS, *MAP_PARTS, "map_only", "Method"] and len(df) == 2
    private = df[df.method == "dpsgd"].iloc[0]
    assert private.epsilon_spent <= 2.0 and private.pckh_mean == pytest.approx(runs[1].pckh["Mean"])
    assert df[df.method == "nonprivate"].epsilon.isna().all()


def test_the_sweep_starts_the_longest_runs_first(smoke_cfg, tmp_path, monkeypatch):
    from dphpe_core import sweep as sweep_mod
    from dphpe_core.config import Config
    started = []
    monkeypatch.setattr(sweep_mod, "_run_one",
                        lambda cfg_dict, threads, fresh: started.append(Config.from_dict(cfg_dict)) or {})
    configs = [smoke_cfg.replace(results_dir=str(tmp_path), method=m, strategy=s)
               for s in ("finetune", "full") for m in ("nonprivate", "dpsgd", "hybrid")]
    with pytest.raises(FileNotFoundError):          # the fake runs write no record
        run_sweep(configs, jobs=1, progress=False)
    assert sorted(c.hash() for c in started) == sorted(c.hash() for c in configs)
    costs = [sweep_mod.relative_cost(c) for c in started]
    assert costs == sorted(costs, reverse=True) and len(set(costs)) == len(costs)
    assert (started[0].method, started[0].strategy) == ("hybrid", "full")
    assert (started[-1].method, started[-1].strategy) == ("nonprivate", "finetune")
    # a schedule of more epochs at a smaller batch costs more, and more than its epochs alone say
    own = make_config("embedded", method="dpsgd")
    paper = own.replace(expected_batch_size=32, epochs=25, lr_decay_epoch=20)
    assert sweep_mod.relative_cost(paper) > 25 * sweep_mod.relative_cost(own)


def test_the_papers_numbers_are_kept_as_published():
    paper = results.paper_results()
    head = paper.query("strategy == 'finetune' and method == 'hybrid' and clip_norm == 0.1 and epsilon == 0.8")
    assert head.pckh_mean.tolist() == [82.61]
    base = paper.query("strategy == 'finetune' and method == 'nonprivate' and not blurred_only").pckh_mean.iloc[0]
    low = paper.query("strategy == 'finetune' and method == 'dpsgd' and clip_norm == 0.01 and epsilon == 0.2")
    assert round(intervals.gap_recovery(82.61, low.pckh_mean.iloc[0], base), 2) == 0.74   # "recovers 73%"
    assert len(paper) == 6 + 2 * 3 * 4 * 4 - 1                       # one cell is missing from the figure


def test_the_papers_numbers_match_the_reference_text():
    from conftest import REPO
    ref = REPO.parent / "shared" / "reference" / "PAPER.md"
    if not ref.is_file():
        pytest.skip(f"{ref} is absent (it exists only on the project's machines)")
    text = ref.read_text()
    for v in results.paper_results().pckh_mean:
        assert f"{v:g}" in text or f"{v:.1f}" in text or f"{v:.2f}" in text, v


def test_the_notebooks_summary_reads_records_and_trains_only_what_is_missing(smoke_cfg, tmp_path, monkeypatch):
    from dphpe_core import sweep as sweep_mod
    from dphpe_core.config import Config
    configs = [smoke_cfg.replace(results_dir=str(tmp_path), method=m, epsilon=2.0) for m in ("nonprivate", "dpsgd")]
    monkeypatch.setattr(sweep_mod, "grid_configs",
                        lambda preset, grid="study", **o: [c.replace(**o) for c in configs] if grid == "study" else [])
    first = sweep_mod.study_summary("smoke", results_dir=str(tmp_path), progress=False)    # nothing stored: trains
    path = tmp_path / "smoke" / "summary.csv"
    assert path.is_file() and sorted(first.method) == ["dpsgd", "nonprivate"]

    def no_training(*a, **k):
        raise AssertionError("trained a run that has a record")
    monkeypatch.setattr(sweep_mod, "_run_one", no_training)
    path.unlink()                                   # a fresh clone: records, no summary
    again = sweep_mod.study_summary("smoke", results_dir=str(tmp_path), progress=False)
    assert again.pckh_mean.tolist() == first.pckh_mean.tolist()

    gone = results.run_path(configs[1])
    kept = gone.read_bytes()
    gone.unlink()
    path.unlink()
    started = []

    def restore(cfg_dict, threads, fresh):
        started.append(Config.from_dict(cfg_dict).hash())
        gone.write_bytes(kept)
        return {}
    monkeypatch.setattr(sweep_mod, "_run_one", restore)
    sweep_mod.study_summary("smoke", results_dir=str(tmp_path), progress=False)
    assert started == [configs[1].hash()]
    # a separate grid (the paper's schedule) trains only its own runs; the summary holds both grids' stored runs
    monkeypatch.setattr(sweep_mod, "grid_configs", lambda preset, grid="study", **o: [
        c.replace(**o) for c in (configs[:1] if grid == "study" else configs[1:])])
    monkeypatch.setattr(sweep_mod, "_run_one", no_training)
    for grid in ("paper-schedule", "study"):
        path = sweep_mod.sweep("smoke", grid=grid, progress=False, results_dir=str(tmp_path))
        assert sorted(results.read_summary(path).method) == ["dpsgd", "nonprivate"]


def test_main_grid_leaves_out_the_runs_only_the_regime_map_holds():
    import pandas as pd
    g = GRIDS["embedded"]
    shared = next(c for c in g.cost_configs("embedded") if c.method == "fdp" and c.epsilon == 0.2)
    only = next(c for c in g.cost_configs("embedded") if c.method == "dpsgd" and c.epsilon == 0.2)
    rows = [dict(preset="embedded", method=c.method, n_private=c.n_private, fdp_public=c.fdp_public, config_hash=c.hash())
            for c in (shared, only)]
    marked = mark_parts(pd.DataFrame(rows))
    assert list(marked.cost_axis) == [True, True] and list(marked.map_only) == [False, True]
    kept = results.main_grid(marked)
    assert list(kept.config_hash) == [shared.hash()]


def test_cost_axis_takes_each_methods_better_c_and_the_cost_against_the_nonprivate_mean():
    import pandas as pd
    from dphpe_core import regime
    g = GRIDS["embedded"]
    rows = [dict(preset="embedded", method="nonprivate", strategy="finetune", blurred_only=b, n_private=22000,
                 pckh_mean=v, config_hash=f"np{b}{v}") for b, v in ((False, 68.0), (False, 70.0), (True, 15.0))]
    for c in g.cost_configs("embedded"):
        if c.method == "dpsgd" and c.epsilon in (0.2, 0.002):
            score = (60.0 if c.epsilon == 0.2 else 40.0) + (2.0 if c.clip_norm == 0.1 else 0.0) + c.seed
            rows.append(dict(preset="embedded", method="dpsgd", strategy="finetune", blurred_only=False, n_private=22000,
                             epsilon=c.epsilon, clip_norm=c.clip_norm, seed=c.seed, pckh_mean=score, config_hash=c.hash()))
    axis = regime.cost_axis(mark_parts(pd.DataFrame(rows))).set_index("epsilon")
    assert list(axis.clip_norm) == [0.1, 0.1] and axis.loc[0.002, "mean"] == 43.0 and axis.loc[0.002, "n"] == 3
    assert axis.loc[0.002, "cost_pct"] == pytest.approx(100 * (69.0 - 43.0) / 69.0)
    assert axis.public_only.iloc[0] == 15.0 and axis.accountant.iloc[0] == "pld"
    table = axis.reset_index()
    assert regime.cost_reached(table, 30.0) == 0.002 and regime.cost_reached(table, 50.0) != regime.cost_reached(table, 50.0)
    assert regime.cost_reached_text(table, 50.0).startswith("no epsilon run here")


def test_the_schedule_axis_is_the_headline_cell_at_each_schedule_and_the_papers_runs_apart():
    import dataclasses
    from dphpe_core.grid import Schedule
    g = GRIDS["embedded"]
    assert g.schedules and g.schedule_clip_norm in g.clip_norms and set(g.schedule_epsilons) <= set(g.epsilons)
    paper = make_config("paper")
    assert any((s.expected_batch_size, s.epochs, s.lr_decay_epoch, s.separate) ==
               (paper.expected_batch_size, paper.epochs, paper.lr_decay_epoch, True) for s in g.schedules)
    every = ("nonprivate", "dpsgd", "pdp", "fdp", "hybrid")
    s = dataclasses.replace(g.schedules[0], lr=1e-3, subspace_interval=0.1, methods=every, separate=False)
    apart = dataclasses.replace(g.schedules[-1], lr=1e-3, subspace_interval=None, methods=("nonprivate", "dpsgd"),
                                epsilons=None, extra=())
    g2 = dataclasses.replace(g, schedules=(s, apart))
    configs = g2.schedule_configs("embedded", separate=False)
    own = make_config("embedded")
    today = [c for c in configs if (c.expected_batch_size, c.epochs) == (own.expected_batch_size, own.epochs)]
    # the preset's own schedule is the axis' first point: the grid's own runs at that cell
    assert {c.hash() for c in today} <= {c.hash() for c in g.configs("embedded", cost=False)}
    assert len(today) == len(g.seeds["finetune"]) * (1 + len(g.methods) * len(g.schedule_epsilons))
    configs = [c for c in configs if c not in today]
    assert {(c.strategy, c.clip_norm, c.accountant, c.expected_batch_size, c.epochs, c.lr, c.subspace_interval)
            for c in configs} == {("finetune", g.schedule_clip_norm, "rdp", s.expected_batch_size, s.epochs, 1e-3, 0.1)}
    private = [c for c in configs if c.method != "nonprivate"]
    assert sorted((c.method, c.epsilon, c.seed) for c in private) == sorted(
        (m, e, k) for m in every[1:] for e in g.schedule_epsilons for k in s.seeds)
    assert len(configs) - len(private) == len(s.seeds)              # the non-private run: once per seed
    # the paper's schedule: its own sweep, not make book's; the regime map marks it
    sep = g2.schedule_configs("embedded", separate=True)
    assert {(c.expected_batch_size, c.epochs) for c in sep} == {(32, 25)} and len(sep) == 1 + len(g.schedule_epsilons)
    hashes = {c.hash() for c in g2.configs("embedded")}
    assert {c.hash() for c in configs} <= hashes and not {c.hash() for c in sep} & hashes
    assert {c.hash() for c in sep} <= {c.hash() for c in g2.map_parts("embedded")["schedule_axis"]}
    part = dataclasses.replace(apart, epsilons=(0.8,))           # a schedule whose epsilon 0.2 is not run yet
    assert {c.epsilon for c in dataclasses.replace(g, schedules=(part,)).schedule_configs("embedded", separate=True)
            if c.method == "dpsgd"} == {0.8}
    extra = dataclasses.replace(part, extra=(("fdp", 0.8),))      # FDP run at one epsilon so far, beyond the product
    assert sorted((c.method, c.epsilon) for c in dataclasses.replace(g, schedules=(extra,)).schedule_configs(
        "embedded", separate=True)) == [("dpsgd", 0.8), ("fdp", 0.8), ("nonprivate", max(g.epsilons))]
    with pytest.raises(ValueError, match="extra run 'nonprivate' is not a private method; expected one of dpsgd"):
        Schedule("x", 64, 2, 2, 1e-3, None, (0,), extra=(("nonprivate", 0.8),))
    with pytest.raises(ValueError, match="listed before the value it needs"):
        Schedule("x", 64, 2, 2, 1e-3, None, (0,), extra=(("hybrid", 0.8),))
    with pytest.raises(ValueError, match="listed before the value it needs"):
        Schedule("x", 64, 2, 2, None, None, (0,), methods=("dpsgd",))
    with pytest.raises(ValueError, match="listed before the value it needs"):
        Schedule("x", 64, 2, 2, 1e-3, None, (0,), methods=("pdp",))
    with pytest.raises(ValueError, match=r"unknown grid 'nope'; expected one of \['study', 'paper-schedule'\]"):
        grid_configs("embedded", "nope")


@pytest.mark.parametrize("preset", sorted(GRIDS))
def test_the_schedule_axis_first_point_adds_no_run_to_any_grid(preset):
    g = GRIDS[preset]
    if not g.schedules:
        pytest.skip(f"the {preset} grid has no schedule axis")
    own = g.preset_schedule(make_config(preset))
    today = [c for c in g.schedule_configs(preset) if (c.expected_batch_size, c.epochs) == (own.expected_batch_size, own.epochs)]
    assert today and {c.hash() for c in today} <= {c.hash() for c in g.configs(preset, cost=False)}
