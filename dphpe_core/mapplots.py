"""The regime map's figures (regime.py's tables drawn): PCKh against epsilon with DP-SGD's cost beside it,
against the public view's blurred-only share, and under each optimizer; the paper's setting marked where it
can be placed on the axis.

    python -c "from dphpe_core import mapplots"   # used by notebooks/28_regime.ipynb
"""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd

from .methods import NONPRIVATE, REFERENCE


def cost_axis(axis: pd.DataFrame, *, paper_costs: dict[float, float] | None = None):
    """The regime map's epsilon axis (regime.cost_axis): PCKh@0.5 against epsilon on a log axis, per
    method at its best C with 95% intervals over seeds, the non-private line, and the blurred-only
    baseline (what feature DP keeps at epsilon = 0) as the leftmost point; on the right, DP-SGD's cost
    as a share of the non-private score, with the paper's costs (`paper_costs`, {epsilon: %}) marked."""
    fig, (ax, cx) = plt.subplots(1, 2, figsize=(11, 3.8), gridspec_kw={"width_ratios": [1.6, 1]})
    eps = sorted(axis.epsilon.unique())
    zero = eps[0] / 3                               # where epsilon = 0 sits on the log axis
    for name, rows in axis.groupby("Method", sort=False):
        rows = rows.sort_values("epsilon")
        ax.errorbar(rows.epsilon, rows["mean"], yerr=rows.ci95.fillna(0), marker="o", ms=4, capsize=3, label=name)
    ax.axhline(axis.nonprivate.iloc[0], color="k", lw=1, ls="--", label="non-private")
    ax.plot([zero], [axis.public_only.iloc[0]], marker="D", color="grey", ls="", label="blurred only (epsilon 0)")
    ax.set_xscale("log")
    ax.set_xticks([zero, *eps], ["0", *[f"{e:g}" for e in eps]], fontsize=8)
    ax.minorticks_off()
    ax.set(xlabel=f"epsilon ({axis.accountant.iloc[0].upper()} accountant for every method)", ylabel="PCKh@0.5 (%)")
    ax.legend(fontsize=8, loc="lower right")
    dp = axis[axis.method == REFERENCE].sort_values("epsilon")
    cx.plot(dp.epsilon, dp.cost_pct, marker="o", label="DP-SGD, this study")
    for e, c in (paper_costs or {}).items():
        cx.axhline(c, color="grey", lw=0.8, ls=":")
        cx.annotate(f"paper, epsilon {e:g}: {c:.1f}%", (eps[-1], c), fontsize=7, ha="right", va="bottom")
    cx.set_xscale("log")
    cx.set(xlabel="epsilon", ylabel="DP-SGD's cost (% of non-private)")
    cx.legend(fontsize=8)
    fig.tight_layout()
    return fig


def view_axis(view: pd.DataFrame, *, paper_ratio: float, dpsgd: float | None = None):
    """The regime map's public-view axis (regime.view_axis): PCKh@0.5 of the blurred-only baseline and
    of feature DP and the hybrid at their best C against the baseline's share of the non-private score,
    one point per blur strength with 95% intervals over seeds, the paper's share marked, and DP-SGD at
    the same epsilon (`dpsgd`, it reads no blur) and the non-private model as lines."""
    fig, ax = plt.subplots(figsize=(7.5, 3.8))
    for name, rows in view.groupby("Method", sort=False):
        rows = rows.sort_values("ratio")
        ax.errorbar(rows.ratio, rows["mean"], yerr=rows.ci95.fillna(0), marker="o", ms=4, capsize=3, label=name)
    ax.axhline(view.nonprivate.iloc[0], color="k", lw=1, ls="--", label="non-private")
    if dpsgd is not None:
        ax.axhline(dpsgd, color="grey", lw=1, ls="-.", label="DP-SGD (reads no blur)")
    ax.axvline(paper_ratio, color="grey", lw=0.8, ls=":")
    ax.set_xlim(0, 1)
    ax.annotate(f"paper: {paper_ratio:.2f}", (paper_ratio, ax.get_ylim()[1]), fontsize=7, ha="right", va="top",
                rotation=90)
    top = ax.secondary_xaxis("top")
    ticks = view.drop_duplicates("ratio").sort_values("ratio")
    top.set_xticks(ticks.ratio, [f"{s:g}" for s in ticks.blur_px], fontsize=7)
    top.set_xlabel("blur sigma (px)", fontsize=8)
    ax.set(xlabel="blurred-only score / non-private score", ylabel="PCKh@0.5 (%)")
    ax.legend(fontsize=8, loc="lower right")
    fig.tight_layout()
    return fig


def optimizer_axis(axis: pd.DataFrame):
    """The regime map's optimizer axis (regime.optimizer_axis): per epsilon of the axis, each method's
    PCKh@0.5 at its best C under AdamW and under SGD with momentum, with 95% intervals over seeds."""
    eps = sorted(axis.epsilon.unique(), reverse=True)
    fig, axes = plt.subplots(1, len(eps), figsize=(3.6 * len(eps), 3.6), sharey=True, squeeze=False)
    methods = list(dict.fromkeys(axis.Method))
    for ax, e in zip(axes[0], eps):
        at = axis[axis.epsilon == e]
        for j, (opt, rows) in enumerate(at.groupby("optimizer", sort=True)):
            rows = rows.set_index("Method").reindex(methods)
            x = np.arange(len(methods)) + (j - 0.5) * 0.3
            ax.errorbar(x, rows["mean"], yerr=rows.ci95.fillna(0), marker="os"[j % 2], ls="", capsize=3,
                        label=f"{opt} (lr {rows.lr.dropna().iloc[0]:g})" if rows.lr.notna().any() else opt)
        ax.set_xticks(range(len(methods)), methods, fontsize=8)
        ax.set_title(f"epsilon {e:g}", fontsize=9)
        ax.legend(fontsize=7)
    axes[0][0].set_ylabel("PCKh@0.5 (%)")
    fig.tight_layout()
    return fig


def n_axis(reg: pd.DataFrame, *, paper_nxe: float):
    """The N axis (regime.regime_table): PCKh@0.5 against N x epsilon per method with 95% intervals, and the
    points each method gains on DP-SGD, on log axes, the paper's N x epsilon marked; one colour per method
    in both panels."""
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.6))
    for i, (name, rows) in enumerate(reg.groupby("Method", sort=False)):
        axes[0].errorbar(rows.n_x_epsilon, rows["mean"], yerr=rows.ci95.fillna(0), marker="o", ms=4, capsize=3,
                         label=name, color=f"C{i}")
        if rows.points.notna().any():
            axes[1].plot(rows.n_x_epsilon, rows.points, marker="o", label=name, color=f"C{i}")
    for ax in axes:
        ax.set_xscale("log")
        ax.axvline(paper_nxe, ls="--", color="grey", lw=1)
        ax.set_xlabel("N x epsilon (private crops x epsilon)")
    axes[0].set_ylabel("PCKh@0.5 (%)")
    axes[1].set_ylabel("points gained on DP-SGD")
    axes[1].axhline(0, color="k", lw=0.8)
    axes[0].legend(fontsize=8)
    fig.tight_layout()
    return fig


def schedule_axis(axis: pd.DataFrame, *, paper_steps: int):
    """The schedule axis (regime.schedule_axis): per epsilon, each method's PCKh@0.5 against a run's steps (log
    axis; the expected batch and epochs on the top axis) with 95% intervals over seeds, the paper's steps
    marked; one colour per method in every panel."""
    eps = sorted(axis.epsilon.unique(), reverse=True)
    fig, axes = plt.subplots(1, len(eps), figsize=(4.6 * len(eps), 3.8), sharey=True, squeeze=False)
    colours = {m: f"C{i}" for i, m in enumerate(dict.fromkeys(axis.Method))}
    ticks = axis.drop_duplicates("steps").sort_values("steps")
    for ax, e in zip(axes[0], eps):
        for name, rows in axis[axis.epsilon == e].groupby("Method", sort=False):
            rows = rows.sort_values("steps")
            ax.errorbar(rows.steps, rows["mean"], yerr=rows.ci95.fillna(0), marker="o", ms=4, capsize=3, label=name,
                        color=colours[name], ls="--" if rows.method.iloc[0] == NONPRIVATE else "-")
        ax.set_xscale("log")
        ax.axvline(paper_steps, ls=":", color="grey", lw=1)
        ax.annotate(f"paper: {paper_steps:,} steps", (paper_steps, ax.get_ylim()[0]), fontsize=7, ha="right",
                    va="bottom", rotation=90)
        top = ax.secondary_xaxis("top")
        top.set_xticks(ticks.steps, [f"{b} x {n}" for b, n in zip(ticks.batch_size, ticks.epochs)], fontsize=7)
        top.set_xlabel("expected batch x epochs", fontsize=8)
        ax.set_title(f"epsilon {e:g}", fontsize=9)
        ax.set_xlabel("steps of a run")
    axes[0][0].set_ylabel("PCKh@0.5 (%)")
    axes[0][0].legend(fontsize=7, loc="lower left")
    fig.tight_layout()
    return fig
