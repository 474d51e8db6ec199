"""The regime map's figures draw what their tables say (checked on the artists they draw)."""

import matplotlib

matplotlib.use("Agg")
import pandas as pd
import pytest

from dphpe_core import mapplots


def test_cost_axis_draws_every_method_the_baselines_and_the_papers_costs():
    axis = pd.DataFrame([dict(method=m, Method=m.upper(), epsilon=e, mean=v, ci95=1.0, nonprivate=68.0,
                              public_only=15.0, accountant="pld", cost_pct=100 * (68 - v) / 68)
                         for m in ("dpsgd", "fdp") for e, v in ((0.2, 64.0), (0.01, 50.0))])
    fig = mapplots.cost_axis(axis, paper_costs={0.8: 12.5, 0.2: 28.5})
    left, right = fig.axes
    labels = left.get_legend_handles_labels()[1]
    assert {"DPSGD", "FDP", "non-private", "blurred only (epsilon 0)"} <= set(labels)
    assert left.get_xscale() == "log" and "0" in [t.get_text() for t in left.get_xticklabels()]
    [line] = [l for l in right.get_lines() if l.get_label() == "DP-SGD, this study"]
    assert list(line.get_ydata()) == pytest.approx([100 * 18 / 68, 100 * 4 / 68])
    assert sum("paper, epsilon" in t.get_text() for t in right.texts) == 2


def test_view_axis_puts_each_blur_at_its_ratio_and_marks_the_paper():
    view = pd.DataFrame([dict(Method=m, method=m, ratio=r, blur_px=s, mean=v + r, ci95=0.5, nonprivate=68.0)
                         for m, v in (("Blurred-only", 10.0), ("FDP", 60.0)) for r, s in ((0.2, 2.5), (0.9, 0.6))])
    fig = mapplots.view_axis(view, paper_ratio=0.94, dpsgd=64.0)
    ax = fig.axes[0]
    labels = ax.get_legend_handles_labels()[1]
    assert {"Blurred-only", "FDP", "non-private", "DP-SGD (reads no blur)"} <= set(labels)
    [fdp] = [c for c in ax.containers if c.get_label() == "FDP"]
    assert list(fdp.lines[0].get_xdata()) == [0.2, 0.9] and list(fdp.lines[0].get_ydata()) == [60.2, 60.9]
    assert any(t.get_text() == "paper: 0.94" for t in ax.texts)


def test_optimizer_axis_draws_one_panel_per_epsilon_and_both_optimizers():
    axis = pd.DataFrame([dict(Method=m, optimizer=o, epsilon=e, lr=lr, mean=50.0 + i, ci95=1.0)
                         for e in (0.8, 0.02) for o, lr in (("adamw", 3e-3), ("sgd", 0.1))
                         for i, m in enumerate(("DP-SGD", "PDP-SGD"))])
    fig = mapplots.optimizer_axis(axis)
    assert [a.get_title() for a in fig.axes] == ["epsilon 0.8", "epsilon 0.02"]
    labels = fig.axes[0].get_legend_handles_labels()[1]
    assert labels == ["adamw (lr 0.003)", "sgd (lr 0.1)"]


def test_schedule_axis_draws_each_method_against_steps_per_epsilon_and_marks_the_papers_steps():
    axis = pd.DataFrame([dict(method=m, Method=m.upper(), epsilon=e, steps=s, batch_size=b, epochs=n, mean=v - s / 1000,
                              ci95=1.0)
                         for m, v in (("nonprivate", 70.0), ("dpsgd", 60.0)) for e in (0.8, 0.2)
                         for s, b, n in ((86, 256, 1), (17200, 32, 25))])
    fig = mapplots.schedule_axis(axis, paper_steps=17375)
    panels = [a for a in fig.axes if a.get_title()]
    assert [a.get_title() for a in panels] == ["epsilon 0.8", "epsilon 0.2"]
    for ax in panels:
        assert ax.get_xscale() == "log" and any("paper: 17,375 steps" == t.get_text() for t in ax.texts)
        [dp] = [c for c in ax.containers if c.get_label() == "DPSGD"]
        assert list(dp.lines[0].get_xdata()) == [86, 17200] and list(dp.lines[0].get_ydata()) == pytest.approx([59.914, 42.8])
    [top] = panels[0].child_axes                                   # the secondary axis: batch x epochs
    assert [t.get_text() for t in top.get_xticklabels()] == ["256 x 1", "32 x 25"]
