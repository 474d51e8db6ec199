"""The regime map's tables pick what they say from synthetic summaries built on the grid's own configs."""

import math

import pandas as pd
import pytest

from dphpe_core import cells, regime
from dphpe_core.results import paper_results
from dphpe_core.grid import GRIDS
from dphpe_core.sweep import mark_parts

G = GRIDS["embedded"]


def _row(c, score):
    return dict(preset="embedded", method=c.method, strategy=c.strategy, blurred_only=c.blurred_only,
                n_private=c.n_private, fdp_public=c.fdp_public if c.method in ("fdp", "hybrid") else "",
                epsilon=c.epsilon if c.method != "nonprivate" else math.nan,
                clip_norm=c.clip_norm if c.method != "nonprivate" else math.nan,
                blur_sigma_256=c.blur_sigma_256, optimizer=c.optimizer, lr=c.lr, seed=c.seed, pckh_mean=score,
                config_hash=c.hash())


def _frame(score):
    """Every config of the grid with score(cfg) as its PCKh@0.5."""
    return mark_parts(pd.DataFrame([_row(c, score(c)) for c in G.configs("embedded")]))


def _score(c):
    if c.method == "nonprivate":       # the blurred-only share rises as the blur falls: 0.2 at 10, 1.0 at 0
        return 60.0 * (1 - 0.08 * c.blur_sigma_256) if c.blurred_only else 60.0 + c.seed - 1
    cost = {0.8: 2.0, 0.6: 2.5, 0.4: 3.0, 0.2: 4.0, 0.1: 5.0, 0.05: 6.0, 0.02: 8.0, 0.01: 12.0, 0.005: 17.0, 0.002: 25.0}[c.epsilon]
    bonus = 1.0 if c.clip_norm == 0.1 else 0.0
    public = 10.0 - c.blur_sigma_256 if c.method in ("fdp", "hybrid") else 0.0
    sgd = 3.0 if c.optimizer == "sgd" and c.method == "pdp" else 0.0
    return 60.0 - cost + bonus + public + sgd + 0.1 * c.seed


def test_view_axis_gives_each_blur_its_baseline_share_and_each_method_its_better_c():
    view = regime.view_axis(_frame(_score))
    assert sorted(view.blur_sigma_256.unique()) == sorted({10.0, *G.view_sigmas})
    base = view[view.method == "nonprivate"].set_index("blur_sigma_256")
    assert base.loc[10.0, "ratio"] == pytest.approx(0.2) and base.loc[2.5, "ratio"] == pytest.approx(0.8)
    assert base.loc[2.5, "blur_px"] == pytest.approx(0.625)
    fdp = view[view.method == "fdp"].set_index("blur_sigma_256")
    assert set(fdp.clip_norm) == {0.1} and fdp.loc[5.0, "mean"] == pytest.approx(60 - 2 + 1 + 5 + 0.1)
    assert (fdp.n == 3).all()


def test_paper_cells_match_dpsgds_cost_and_the_blurred_only_share_nearest_the_papers():
    picked = cells.paper_cells(_frame(_score), paper_results()).set_index("paper_epsilon")
    # DP-SGD's cost here: (60 - (60 - cost + 1.1)) / 60; the paper's 12.5% is nearest 8.9 points (0.01 -> 10.9
    # points, 18.2%; 0.02 -> 6.9, 11.5%), its 28.5% nearest 17 points (0.005 -> 15.9, 26.5%)
    assert picked.loc[0.8, "epsilon"] == 0.02 and picked.loc[0.2, "epsilon"] == 0.005
    assert set(picked.blur_sigma_256) == {2.5}            # share 0.8, the nearest to the paper's 0.936 on this axis
    assert picked.paper_ratio.iloc[0] == pytest.approx(83.61 / 89.36)


def test_optimizer_axis_gives_points_over_dpsgd_under_the_same_optimizer():
    axis = regime.optimizer_axis(_frame(_score))
    pdp = axis[(axis.method == "pdp")].set_index(["optimizer", "epsilon"])
    assert pdp.loc[("sgd", 0.8), "points"] == pytest.approx(3.0) and pdp.loc[("adamw", 0.8), "points"] == pytest.approx(0.0)
    assert axis[axis.method == "dpsgd"].points.isna().all()


def test_rate_at_cells_sets_each_cell_at_the_grids_rate_beside_adamw_at_the_rate_chosen_for_its_noise():
    grid_lr = G.configs("embedded")[0].lr

    def score(c):               # five points for AdamW at a rate other than the grid's, nothing else changes
        return _score(c) + (5.0 if c.optimizer == "adamw" and c.lr != grid_lr else 0.0)

    frame = _frame(score)
    table = cells.rate_at_cells(frame)
    assert list(table.index.get_level_values("cell").unique()) == ["eps 0.02", "eps 0.005"]       # the paper's 0.8 first
    assert set(table.index.get_level_values("Method")) == {"DP-SGD", "PDP-SGD", "Hybrid"}         # no FDP on that axis
    # the same seeds' spread (0.1 x seed) on both sides: +5.0, 95% half-width t(0.975, 4) x sqrt(2 x 0.01 / 3)
    assert set(table.points) == {"+5.0 ± 0.2"} and set(table.verdict) == {"higher"}
    dpsgd = table.loc[("eps 0.02", "DP-SGD")]
    assert dpsgd["grid's rate"].endswith(f"({grid_lr:g})") and not dpsgd["rate chosen for the noise"].endswith(f"({grid_lr:g})")
    numbers = cells.rate_at_cells_numbers(frame)
    assert numbers["cells_rate"].startswith("The rate chosen for the noise scores higher beyond seed noise for DP-SGD at epsilon 0.02 (+5.0")
    # DP-SGD's cost: non-private mean 60.0; the grid's rate at 0.02 scores 60 - 8 + 0.1 = 52.1 at C 0.01 and 53.1 at C 0.1
    assert numbers["cells_rate_costs"].startswith("11.5% at the grid's rate and 3.2% at the chosen one at epsilon 0.02")
    same = cells.rate_at_cells(_frame(_score))          # equal scores: the seeds cannot tell the rates apart
    assert set(same.verdict) == {"within seed noise"}


def test_findings_at_cells_checks_the_cells_apart_from_the_grid():
    table = cells.findings_at_cells(_frame(_score))
    assert len(table) == 4
    assert table.iloc[2]["paper-equivalent cells"].startswith("untested")       # finetuning only there


def test_view_table_has_a_column_per_blur_and_a_row_per_method():
    table = regime.view_table(regime.view_axis(_frame(_score)))
    assert list(table.index) == sorted(["Blurred-only", "FDP", "Hybrid"]) and len(table.columns) == 1 + len(G.view_sigmas)
    assert table.loc["Blurred-only", "2.50 px (0.20)"] == "12.0 ± 0.0"


def test_cells_run_text_names_the_cells_run_and_a_chosen_one_not_run():
    text = cells.cells_run_text(_frame(_score), paper_results())
    run = {e for e, _ in G.paper_cells}
    assert text.startswith("The grid runs every method at epsilon 0.02 (the paper's 0.8)")
    assert ("epsilon 0.005 (the paper's 0.2) is chosen but" in text) == (0.005 not in run)


def test_the_schedule_axis_groups_by_schedule_with_the_nonprivate_run_on_every_epsilon_and_gains_over_dpsgd(monkeypatch):
    import dataclasses
    import pandas as pd
    from dphpe_core import mapnumbers
    g = GRIDS["embedded"]
    c = g.schedule_clip_norm
    rows = []
    for batch, epochs, base in ((256, 1, 60.0), (32, 25, 50.0)):
        at = dict(batch_size=batch, epochs=epochs, wall_s=60.0 * epochs)
        for seed, jitter in enumerate((-1.0, 0.0, 1.0)):
            rows.append(dict(at, method="nonprivate", epsilon=None, clip_norm=None, seed=seed, v=70.0 + jitter))
            for eps, drop in ((0.8, 0.0), (0.2, 10.0)):
                rows.append(dict(at, method="dpsgd", epsilon=eps, clip_norm=c, seed=seed, v=base - drop + jitter))
                rows.append(dict(at, method="pdp", epsilon=eps, clip_norm=c, seed=seed, v=base - drop + 5.0 + jitter / 2,
                                 wall_s=at["wall_s"] * (2 + seed if eps == 0.2 else 1)))    # a run's time: its cell's mean
            rows.append(dict(at, method="dpsgd", epsilon=0.8, clip_norm=1.0, seed=seed, v=99.0))   # another C: not the axis'
    df = pd.DataFrame([dict(r, preset="embedded", n_private=22000, lr=1e-3, schedule_axis=True, pckh_mean=r.pop("v"))
                       for r in rows])
    axis = regime.schedule_axis(df)
    assert set(axis.steps) == {86, 25 * round(22000 / 32)} and set(axis.epsilon) == set(g.schedule_epsilons)
    at = axis.set_index(["epsilon", "steps", "method"])
    assert at.loc[(0.2, 86, "dpsgd"), "mean"] == 50.0 and at.loc[(0.2, 86, "nonprivate"), "mean"] == 70.0
    assert at.loc[(0.8, 86, "nonprivate"), "n"] == 3 and at.loc[(0.8, 86, "dpsgd"), "mean"] == 60.0     # C 1.0 left out
    assert at.loc[(0.8, 17200, "pdp"), "points"] == pytest.approx(5.0) and at.loc[(0.8, 17200, "pdp"), "points_ci"] > 0
    costs = mapnumbers.schedule_costs(axis)
    assert costs[(0.8, 86)] == pytest.approx(100 * (1 - 60 / 70)) and costs[(0.2, 17200)] == pytest.approx(100 * (1 - 40 / 70))
    numbers = mapnumbers.schedule_numbers(axis, "embedded")
    assert numbers["sched_long_steps"] == 17200 and numbers["sched_long_times"] == (
        "Non-private 25 min; DP-SGD 25 min at epsilon 0.8 and 25 min at 0.2; PDP-SGD 25 min at epsilon 0.8 and 75 min at 0.2")
    assert "PDP-SGD higher at epsilon 0.8 (+5.0 ± " in numbers["sched_gains"]
    # what is not run yet, per method and epsilon: a method run at one epsilon (extra) names only the other
    paper = dataclasses.replace(g.schedules[-1], methods=("dpsgd",), epsilons=(0.8, 0.2), extra=(("fdp", 0.8),))
    monkeypatch.setitem(GRIDS, "embedded", dataclasses.replace(g, schedules=(paper,)))
    assert mapnumbers.schedule_numbers(axis, "embedded")["sched_missing"] == (
        "Not run yet: at 32 x 25, Non-private, PDP-SGD, FDP at epsilon 0.2, Hybrid.")
    table = mapnumbers.schedule_table(axis)
    assert list(table.columns) == ["256 x 1 (86 steps)", "32 x 25 (17,200 steps)"]
    assert table.loc[(0.2, "DP-SGD"), "256 x 1 (86 steps)"].startswith("50.0 ± ")


def test_rankings_give_one_row_per_axis_point_with_private_methods_only():
    import pandas as pd
    from dphpe_core import mapnumbers
    rows = lambda **at: pd.DataFrame([dict(at, method=m, Method=m.upper(), mean=v, ci95=e, n=3) for m, v, e in
                                      (("nonprivate", 70.0, 1.0), ("dpsgd", 60.0, 1.0), ("pdp", 59.5, 1.0), ("hybrid", 50.0, 1.0))])
    reg = pd.concat([rows(n_private=2000), rows(n_private=22000)])
    table = mapnumbers.rankings(reg, rows(epsilon=0.02), pd.DataFrame(), rows(optimizer="sgd", epsilon=0.8),
                                rows(batch_size=32, epochs=25, epsilon=0.2))
    assert list(table.index) == [("N (private crops)", "2,000"), ("N (private crops)", "22,000"), ("epsilon", "0.02"),
                                 ("optimizer, epsilon", "sgd, 0.8"), ("schedule, epsilon", "32 x 25, 0.2")]
    assert set(table.iloc[:, 0]) == {"DPSGD ≈ PDP > HYBRID"}
    one_seed = pd.DataFrame(dict(Method=["A", "B"], mean=[60.0, 10.0], ci95=[float("nan"), 1.0], n=[1, 3]))
    assert mapnumbers.ranking_text(one_seed) == "A ≈ B"           # a single seed is never apart


def test_the_difference_from_stats_is_the_difference_of_the_values():
    from dphpe_core.findings import difference, difference_from_stats
    from dphpe_core.intervals import ci95
    import statistics
    for a, b in (([50.0, 52.0, 57.0], [40.0, 41.5, 42.0, 39.0]), ([1.0, 1.0], [0.0, 3.0, 5.0]), ([2.0], [1.0, 2.0])):
        stats = [(statistics.mean(x), ci95(statistics.stdev(x), len(x)) if len(x) > 1 else math.nan, len(x)) for x in (a, b)]
        want, got = difference(a, b), difference_from_stats(*stats)
        assert got[0] == pytest.approx(want[0]) and (got[1] == pytest.approx(want[1]) or math.isnan(want[1]) and math.isnan(got[1]))
