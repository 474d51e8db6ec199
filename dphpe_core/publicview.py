"""What the public view alone gives: the blurred-only baseline beside the methods that draw on it, and
feature DP's public sources.

    python -c "from dphpe_core import publicview; help(publicview.public_only_comparison)"

The blurred-only model is trained without privacy on the blurred crops and their labels: exactly what
feature DP calls public, and nothing private. It is feature DP at epsilon = 0, so a method that uses the
public view has won something from the private crops only where it beats this baseline.
"""

from __future__ import annotations

import math

from .findings import difference
from .grid import GRIDS
from .intervals import ci95, ci_text
from .methods import METHOD_NAMES, METHODS, NONPRIVATE
from .results import at_full_size, main_grid, paper_grid


# -- the public-only baseline ------------------------------------------------------------------------
# The blurred-only model is trained without privacy on the blurred crops and their labels: exactly what
# feature DP calls public, and nothing private. It is feature DP at epsilon = 0.
PUBLIC_VIEW_METHODS = tuple(m for m, p in METHODS.items() if p.public_gradient)


def blurred_only(frame) -> dict:
    """{strategy: PCKh@0.5 values of the blurred-only baseline} of a summary or of paper_results()."""
    rows = paper_grid(frame[(frame.method == NONPRIVATE) & frame.blurred_only.astype(bool)])
    if "n_private" in rows:
        rows = rows[rows.n_private == frame.n_private.max()]
    return {s: g.pckh_mean.tolist() for s, g in rows.groupby("strategy")}


def with_public_only(stats, frame, *, by=("strategy", "clip_norm", "Method")):
    """`stats` (one row per curve `by` and epsilon, with mean and ci95) with an epsilon = 0 point on
    every feature-DP and hybrid curve: the blurred-only baseline of its strategy, from `frame` (the
    summary the stats came from, or paper_results())."""
    import pandas as pd
    base = blurred_only(frame)
    names = [METHOD_NAMES[m] for m in PUBLIC_VIEW_METHODS]
    curves = stats[stats.Method.isin(names) & stats.strategy.isin(base)][list(by)].drop_duplicates()
    points = [dict(row, epsilon=0.0, mean=sum(b) / len(b), n=len(b), ci95=ci95(pd.Series(b).std(), len(b)))
              for row in curves.to_dict("records") for b in [base[row["strategy"]]]]
    return pd.concat([stats, pd.DataFrame(points)], ignore_index=True)


def paper_stats(paper):
    """The paper's private cells (paper_results()) shaped like seed_stats: one value each, no interval."""
    private = paper[paper.method != NONPRIVATE]
    return private.assign(Method=private.method.map(METHOD_NAMES), mean=private.pckh_mean, n=1,
                          ci95=float("nan"))[["strategy", "clip_norm", "Method", "method", "epsilon", "mean", "n",
                                              "ci95"]]


def public_only_comparison(frame, *, epsilon: float | None = None):
    """Per strategy: the blurred-only baseline and feature DP's and the hybrid's best cell (the C with the
    highest mean) at `epsilon` (the grid's largest), each with its mean, its 95% interval where there are
    seeds, and how far it sits above the baseline (with the interval of that difference)."""
    import pandas as pd
    base = blurred_only(frame)
    grid = main_grid(frame) if "fdp_public" in frame else frame[frame.method != NONPRIVATE]
    epsilon = float(grid.epsilon.max()) if epsilon is None else epsilon
    rows = []
    for strategy, b in base.items():
        at = grid[(grid.strategy == strategy) & (grid.epsilon == epsilon)]
        if at.empty:                  # a strategy trained without privacy only
            continue
        rows.append(dict(strategy=strategy, method=NONPRIVATE, what="blurred-only (epsilon 0)", clip_norm=None,
                         mean=sum(b) / len(b),
                         ci95=ci95(pd.Series(b).std(), len(b)), above=math.nan, above_ci95=math.nan))
        for method in PUBLIC_VIEW_METHODS:
            cell = at[at.method == method]
            if cell.empty:
                continue
            clip = cell.groupby("clip_norm").pckh_mean.mean().idxmax()
            vals = cell[cell.clip_norm == clip].pckh_mean.tolist()
            d, h = difference(vals, b)
            rows.append(dict(strategy=strategy, method=method, what=f"{METHOD_NAMES[method]} at epsilon {epsilon:g}",
                             clip_norm=clip,
                             mean=sum(vals) / len(vals), ci95=ci95(pd.Series(vals).std(), len(vals)),
                             above=d, above_ci95=h))
    return pd.DataFrame(rows)


def public_only_text(table) -> str:
    """public_only_comparison in a sentence per strategy: the baseline, then how far each method sits
    from it, in points with the 95% interval of the difference."""
    names = {"finetune": "in finetuning", "full": "in full finetuning", "scratch": "from scratch"}
    out = []
    for strategy, rows in table.groupby("strategy", sort=False):
        base = rows[rows.clip_norm.isna()].iloc[0]
        parts = [f"{METHODS[r.method].name} at its best C (C = {r.clip_norm:g}) sits {r.above:+.1f} points from it "
                 f"({ci_text(r.above_ci95)})" for r in rows[rows.clip_norm.notna()].itertuples()]
        out.append(f"{names.get(strategy, strategy).capitalize()}, the blurred-only baseline scores {base['mean']:.1f}; "
                   + " and ".join(parts) + ".")
    return " ".join(out)


def fdp_sources(df):
    """Feature DP's public-source comparison (the guarantees chapter): its runs in the finetuning cell
    where the grid runs every `fdp_public`, at C = the grid's `fdp_clip_norm`, the grid's epsilons."""
    sources = [m for m, p in METHODS.items() if p.other_sources]          # the methods run with every source
    fdp = at_full_size(df[df.method.isin(sources) & (df.strategy == "finetune")])
    fdp = paper_grid(fdp)
    clips = {GRIDS[p].fdp_clip_norm for p in set(fdp.preset) if p in GRIDS}
    return fdp[fdp.clip_norm.isin(clips)] if clips else fdp
