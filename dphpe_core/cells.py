"""The paper-equivalent cells: where DP-SGD loses what it loses in the paper (at the paper's epsilon 0.8
and 0.2), at the blur whose blurred-only ratio is nearest the paper's, chosen from the records of the
regime map's axes (regime.py), never from a formula; every method's runs there, beside the paper's
numbers, and the paper's four findings checked again there (findings.check).

    python -c "from dphpe_core import cells, results; print(cells.paper_cells(results.read_summary('results/embedded/summary.csv'), results.paper_results()))"

Calibrating on DP-SGD's cost and the blurred-only ratio uses only the paper's baselines; what projection,
feature DP and the hybrid win back (the claims under test) plays no part in the choice.
"""

from __future__ import annotations

from .methods import METHOD_NAMES, NONPRIVATE, REFERENCE
from .regime import PAPER_CELL_EPSILONS, best_clip_stats, cost_axis, paper_cost, paper_view_ratio, view_axis


def paper_cells(df, paper):
    """Per epsilon of the paper (PAPER_CELL_EPSILONS): DP-SGD's cost there (`paper_cost`), the level of
    our epsilon axis whose DP-SGD cost is nearest it (`epsilon`, `cost_pct`), and the blur of the
    public-view axis whose blurred-only ratio is nearest the paper's (`blur_sigma_256`, `ratio`,
    `paper_ratio`). Measured, not derived: the cells are chosen from the records of the two axes, and
    only the paper's baselines (DP-SGD and the blurred-only model) enter the choice."""
    import pandas as pd
    costs, target = paper_cost(paper), paper_view_ratio(paper)
    axis, view = cost_axis(df), view_axis(df)
    if axis.empty or view.empty:
        return pd.DataFrame()
    dp = axis[axis.method == REFERENCE].reset_index(drop=True)
    base = view[view.method == NONPRIVATE].reset_index(drop=True)
    near = base.loc[(base.ratio - target).abs().idxmin()]
    rows = []
    for e in PAPER_CELL_EPSILONS:
        at = dp.loc[(dp.cost_pct - costs[e]).abs().idxmin()]
        rows.append(dict(paper_epsilon=e, paper_cost=costs[e], epsilon=at.epsilon, cost_pct=at.cost_pct,
                         blur_sigma_256=near.blur_sigma_256, blur_px=near.blur_px, ratio=near.ratio, paper_ratio=target))
    return pd.DataFrame(rows)


def paper_cells_table(cells):
    """paper_cells' frame for the book: indexed by the paper's epsilon, its columns in words."""
    names = {"paper_cost": "paper's DP-SGD cost (%)", "epsilon": "our epsilon", "cost_pct": "our DP-SGD cost (%)",
             "blur_px": "blur sigma (px)", "ratio": "blurred-only share", "paper_ratio": "paper's share"}
    if cells.empty:
        return cells
    return cells.set_index("paper_epsilon").rename_axis("paper's epsilon")[list(names)].rename(columns=names).round(3)


def paper_cell_runs(df):
    """The runs of the grid's paper-equivalent cells (the summary's `paper_cell` column) as a grid of
    their own: findings.check(paper_cell_runs(summary)) checks the four findings there."""
    runs = df[df.paper_cell.astype(bool)] if "paper_cell" in df else df.iloc[:0]
    return runs.assign(map_only=False)


def paper_cell_table(df):
    """Every method at each paper-equivalent cell: its best C, mean, 95% interval and seeds."""
    import pandas as pd
    runs = paper_cell_runs(df)
    rows = []
    for (eps, method), cell in runs.groupby(["epsilon", "method"]):
        best = best_clip_stats(cell)
        rows.append(dict(epsilon=eps, method=method, Method=METHOD_NAMES[method], clip_norm=best.clip_norm,
                         lr=float(cell[cell.clip_norm == best.clip_norm].lr.iloc[0]),
                         mean=best["mean"], n=int(best.n), ci95=best.ci95))
    return pd.DataFrame(rows)


def paper_cell_comparison(df, paper):
    """Every method at each paper-equivalent cell (paper_cell_table), beside the paper's own score at the
    epsilon the cell stands for (finetuning, the paper's best C), both as text: 'mean ± 95%'."""
    import pandas as pd

    from .intervals import mean_ci_text
    cells = paper_cells(df, paper)
    ours = paper_cell_table(df)
    if cells.empty or ours.empty:
        return pd.DataFrame()
    fin = paper[paper.strategy == "finetune"]
    view = view_axis(df)
    rows = []
    for cell in cells.itertuples():
        base = view[(view.method == NONPRIVATE) & (view.blur_sigma_256 == cell.blur_sigma_256)]
        theirs = fin[(fin.method == NONPRIVATE) & fin.blurred_only.astype(bool)].pckh_mean
        rows.append({"cell": f"eps {cell.epsilon:g} (paper's {cell.paper_epsilon:g})", "Method": "Blurred-only (epsilon 0)",
                     "ours (best C)": mean_ci_text(base)[0], "paper (best C)": f"{theirs.iloc[0]:.2f}"})
        at = ours[ours.epsilon == cell.epsilon]
        if at.empty:                   # a cell the grid does not run (yet)
            rows.pop()
            continue
        for r, text in zip(at.itertuples(), mean_ci_text(at)):
            theirs = fin[(fin.method == r.method) & (fin.epsilon == cell.paper_epsilon)].pckh_mean
            rows.append({"cell": f"eps {cell.epsilon:g} (paper's {cell.paper_epsilon:g})", "Method": r.Method,
                         "ours (best C)": f"{text} (C {r.clip_norm:g})",
                         "paper (best C)": f"{theirs.max():.2f}" if len(theirs) else "not reported"})
    return pd.DataFrame(rows, columns=["cell", "Method", "ours (best C)", "paper (best C)"]).set_index(["cell", "Method"])


def rate_pairs(df, *, optimizer: str = "adamw"):
    """Each method at each paper-equivalent cell at the grid's learning rate (paper_cell_table, as the paper
    keeps one rate: `lr`, `mean`, `ci95`, `n`) beside the same method at the same epsilon under `optimizer` at
    the rate chosen on the public stand-in for that epsilon (the optimizer axis' runs at the cell,
    regime.optimizer_axis: the same fields suffixed `_chosen`), each at its better C, with the chosen rate's
    points over the grid's and the 95% interval of the difference (findings.difference_from_stats). Methods the
    optimizer axis does not run (feature DP, the non-private model) are left out; so is a cell where both runs
    use one rate. Largest epsilon first."""
    from .findings import difference_from_stats
    from .regime import optimizer_axis
    import pandas as pd
    fields = ["epsilon", "method", "lr", "mean", "ci95", "n"]
    grid, opt = paper_cell_table(df), optimizer_axis(df)
    grid = grid if not grid.empty else pd.DataFrame(columns=fields + ["Method", "clip_norm"])
    chosen = opt[opt.optimizer == optimizer][fields] if not opt.empty else pd.DataFrame(columns=fields)
    pairs = grid.merge(chosen, on=["epsilon", "method"], suffixes=("", "_chosen"))
    pairs = pairs[pairs.lr != pairs.lr_chosen].sort_values(["epsilon", "method"], ascending=[False, True])
    diffs = [difference_from_stats((r.mean_chosen, r.ci95_chosen, r.n_chosen), (r.mean, r.ci95, r.n))
             for r in pairs.itertuples()]
    pairs["points"], pairs["points_ci"] = zip(*diffs) if diffs else ((), ())
    return pairs.reset_index(drop=True)


def rate_at_cells(df, *, optimizer: str = "adamw"):
    """rate_pairs as the book's table: per cell and method, both rates as 'mean ± 95% (lr)', the points of
    the chosen rate over the grid's ('+d ± h') and their verdict."""
    return _rate_table(rate_pairs(df, optimizer=optimizer))


def _rate_table(pairs):
    import pandas as pd

    from .findings import verdict
    from .intervals import mean_ci_text
    return pd.DataFrame({
        "cell": [f"eps {e:g}" for e in pairs.epsilon], "Method": list(pairs.Method),
        "grid's rate": [f"{t} ({lr:g})" for t, lr in zip(mean_ci_text(pairs), pairs.lr)],
        "rate chosen for the noise": [f"{t} ({lr:g})" for t, lr in
                                      zip(mean_ci_text(pairs, "mean_chosen", "ci95_chosen"), pairs.lr_chosen)],
        "points": [f"{d:+.1f}" + ("" if h != h else f" ± {h:.1f}") for d, h in zip(pairs.points, pairs.points_ci)],
        "verdict": [verdict(d, h) for d, h in zip(pairs.points, pairs.points_ci)]}).set_index(["cell", "Method"])


def rate_at_cells_numbers(df, *, optimizer: str = "adamw") -> dict:
    """The book's words for rate_pairs: `cells_rate` (rate_at_cells_text) and `cells_rate_costs`, DP-SGD's
    cost of privacy (% of the non-private mean, as regime.cost_axis gives it) at each cell at the grid's rate
    and at the rate chosen for the noise."""
    pairs, axis = rate_pairs(df, optimizer=optimizer), cost_axis(df)
    out = {"cells_rate": rate_at_cells_text(_rate_table(pairs))}
    dp = pairs[pairs.method == REFERENCE]
    if dp.empty or axis.empty:
        return {**out, "cells_rate_costs": "not measured"}
    nonprivate = float(axis.nonprivate.iloc[0])
    cost = lambda m: 100 * (nonprivate - m) / nonprivate
    out["cells_rate_costs"] = "; ".join(
        f"{cost(r.mean):.1f}% at the grid's rate and {cost(r.mean_chosen):.1f}% at the chosen one at epsilon {r.epsilon:g}"
        for r in dp.itertuples())
    return out


def rate_at_cells_text(table) -> str:
    """rate_at_cells in one sentence: where the rate chosen for the noise scores higher or lower than the
    grid's beyond seed noise, and where the seeds do not tell them apart."""
    if table.empty:
        return "No paper-equivalent cell has a run at a rate chosen for its noise."
    said = {"higher": [], "lower": [], "within seed noise": [], "one seed": []}
    for (cell, method), r in table.iterrows():
        said[r.verdict].append(f"{method} at {cell.replace('eps', 'epsilon')} ({r.points})")
    words = {"higher": "The rate chosen for the noise scores higher beyond seed noise for",
             "lower": "It scores lower beyond seed noise for",
             "within seed noise": "The seeds do not tell the two rates apart for",
             "one seed": "A single seed on one side leaves open"}
    return " ".join(f"{words[k]} {', '.join(v)}." for k, v in said.items() if v)


def findings_at_cells(df):
    """The paper's four findings under the seeds' rule (findings.check) on the nominal grid and on the
    paper-equivalent cells, side by side."""
    import pandas as pd

    from .findings import check
    nominal, cells = check(df), check(paper_cell_runs(df))
    return pd.DataFrame([{"finding": a["claim"], "nominal grid": f"{a['verdict']} ({a['higher']} of {a['cells']})",
                          "paper-equivalent cells": f"{b['verdict']} ({b['higher']} of {b['cells']})"}
                         for a, b in zip(nominal, cells)]).set_index("finding")


def cells_run_text(df, paper) -> str:
    """Which paper-equivalent cells the grid runs, in words, naming a chosen cell it does not run yet."""
    cells = paper_cells(df, paper)
    run = set(paper_cell_table(df).epsilon) if "paper_cell" in df else set()
    done = [f"epsilon {r.epsilon:g} (the paper's {r.paper_epsilon:g})" for r in cells.itertuples() if r.epsilon in run]
    todo = [f"epsilon {r.epsilon:g} (the paper's {r.paper_epsilon:g})" for r in cells.itertuples() if r.epsilon not in run]
    text = "The grid runs every method at " + (" and ".join(done) if done else "none of them") + "."
    if todo:
        text += (f" The cell at {' and '.join(todo)} is chosen but its feature-DP and hybrid runs are not made yet, so "
                 f"it is left out below.")
    return text
