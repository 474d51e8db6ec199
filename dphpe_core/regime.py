"""The regime map: where privacy costs what it costs in the paper, and the paper's claims there.

    python -c "from dphpe_core import regime, results; print(regime.cost_axis(results.read_summary('results/embedded/summary.csv')))"

One table per axis that separates our setting from the paper's (grid.Grid's parts, marked in the
summary by sweep.mark_parts): the private training set N (`regime_table`), epsilon (`cost_axis`), the
public view's blur (`view_axis`), the optimizer (`optimizer_axis`) and the schedule (`schedule_axis`), and the paper-equivalent cells
(`paper_cells`: the epsilon where DP-SGD loses what it loses in the paper, at the blur whose
blurred-only ratio is nearest the paper's), where the four findings are checked again (`paper_cell_runs`
into findings.check). Every table takes each method at its best clipping norm by mean over seeds.
"""

from __future__ import annotations

import math

from .config import make_config
from .grid import GRIDS
from .methods import NONPRIVATE, REFERENCE
from .findings import difference, recovery
from .publicview import PUBLIC_VIEW_METHODS
from .results import METHOD_NAMES, at_full_size, paper_grid
from .intervals import ci95, seed_stats

PAPER_CELL_EPSILONS = (0.8, 0.2)      # the paper's epsilons whose DP-SGD costs the paper-equivalent cells match


def paper_cost(paper) -> dict[float, float]:
    """{epsilon: DP-SGD's cost in the paper, % of its non-private score}, finetuning, DP-SGD at its
    best C per epsilon (paper_results(): 12.5% at epsilon 0.8, 28.5% at 0.2).

    >>> from dphpe_core.results import paper_results
    >>> {e: round(c, 1) for e, c in paper_cost(paper_results()).items() if e in (0.2, 0.8)}
    {0.2: 28.5, 0.8: 12.5}
    """
    fin = paper[(paper.strategy == "finetune") & ~paper.blurred_only.astype(bool)]
    base = float(fin[fin.method == NONPRIVATE].pckh_mean.iloc[0])
    best = fin[fin.method == REFERENCE].groupby("epsilon").pckh_mean.max()
    return {float(e): 100 * (base - v) / base for e, v in best.items()}


def cost_reached(axis, share: float, *, method: str = REFERENCE) -> float:
    """The largest epsilon of the epsilon axis (cost_axis) at which `method` loses at least
    `share` % of the non-private score, nan where no measured epsilon does."""
    rows = axis[(axis.method == method) & (axis.cost_pct >= share)]
    return float(rows.epsilon.max()) if len(rows) else float("nan")


def cost_reached_text(axis, share: float, *, method: str = REFERENCE) -> str:
    """cost_reached in words: 'epsilon 0.01', or that no epsilon run reaches `share`."""
    e = cost_reached(axis, share, method=method)
    return f"epsilon {e:g}" if e == e else f"no epsilon run here (the smallest is {axis.epsilon.min():g})"


# -- the regime map's tables ---------------------------------------------------------------------

def best_clip_stats(runs):
    """seed_stats' row of the clipping norm with the highest mean over seeds in `runs`."""
    stats = seed_stats(runs, ["clip_norm"])
    return stats.loc[stats["mean"].idxmax()]


def cost_axis(df):
    """The regime map's epsilon axis: per method and epsilon (the preset's `cost_epsilons`), the best
    of the axis's clipping norms by mean over seeds (the rows the summary's `cost_axis` column marks), with its mean PCKh@0.5, 95% interval and seeds;
    DP-SGD's cost as a share of the non-private mean (`cost_pct`), and the blurred-only and
    non-private means beside them (`public_only`, `nonprivate`)."""
    import pandas as pd

    rows = []
    for preset in sorted(set(df.preset) & set(GRIDS)):
        grid = GRIDS[preset]
        runs = df[(df.preset == preset) & df.cost_axis.astype(bool)] if "cost_axis" in df else df.iloc[:0]
        base = at_full_size(paper_grid(df[(df.preset == preset) & (df.method == NONPRIVATE) & (df.strategy == "finetune")]))
        raw, blurred = base[~base.blurred_only].pckh_mean, base[base.blurred_only].pckh_mean
        for (method, eps), cell in runs.groupby(["method", "epsilon"]):
            best = best_clip_stats(cell)
            rows.append(dict(preset=preset, method=method, epsilon=eps, clip_norm=best.clip_norm, mean=best["mean"],
                             sd=best.sd, n=int(best.n), ci95=best.ci95, nonprivate=raw.mean(),
                             public_only=blurred.mean(), accountant=grid.cost_accountant))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["Method"] = out.method.map(METHOD_NAMES)
    out["cost_pct"] = 100 * (out.nonprivate - out["mean"]) / out.nonprivate
    return out.sort_values(["method", "epsilon"], ascending=[True, False]).reset_index(drop=True)


def regime_table(df, *, strategy: str = "finetune"):
    """The headline cell at every private training size N: per N and method (non-private included),
    the best C by mean over seeds, its mean PCKh@0.5, 95% interval and seeds, N x epsilon, the
    run's snr, and the gap it recovers at equal epsilon (against DP-SGD at its best C and the
    non-private model at the same N) under recovery()'s rule: `gap_recovery` nan and
    `recovery_text` the reason where DP-SGD's gap is within seed noise; `points`: its mean minus
    DP-SGD's at the same N."""
    import pandas as pd

    fin = df[(df.strategy == strategy) & ~df.blurred_only & (df.fdp_public.isin(["", "independent"]))]
    fin = paper_grid(fin)
    eps = fin.epsilon.max()
    rows, seeds = [], {}
    for n, at_n in fin.groupby("n_private"):
        base = at_n[at_n.method == NONPRIVATE].pckh_mean
        if base.empty:
            continue
        cell = at_n[(at_n.method != NONPRIVATE) & (at_n.epsilon == eps)]
        rows.append(dict(n_private=n, method=NONPRIVATE, clip_norm=None, mean=base.mean(), n=len(base),
                         ci95=ci95(base.std(), len(base)), snr=None))
        seeds[(n, NONPRIVATE)] = base.tolist()
        for method, runs in cell.groupby("method"):
            best = best_clip_stats(runs)
            at_best = runs[runs.clip_norm == best.clip_norm]
            rows.append(dict(n_private=n, method=method, clip_norm=best.clip_norm, mean=best["mean"], n=int(best.n),
                             ci95=best.ci95, snr=at_best.snr.mean()))
            seeds[(n, method)] = at_best.pckh_mean.tolist()
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    out["epsilon"] = eps
    out["n_x_epsilon"] = out.n_private * eps
    out["Method"] = out.method.map(METHOD_NAMES)
    recs = [recovery(seeds[(n, m)], seeds[(n, REFERENCE)], seeds[(n, NONPRIVATE)])
            if m not in (NONPRIVATE, REFERENCE) and (n, REFERENCE) in seeds else None
            for n, m in zip(out.n_private, out.method)]
    dpsgd = out[out.method == REFERENCE].set_index("n_private")["mean"]
    out["points"] = [m - dpsgd[n] if r else float("nan") for n, m, r in zip(out.n_private, out["mean"], recs)]
    out["gap_recovery"] = [r["recovery"] if r else float("nan") for r in recs]
    out["recovery_text"] = [r["text"] if r else "" for r in recs]
    return out


def cost_axis_clip_norms(preset: str) -> tuple[float, ...]:
    """The clipping norms of the preset's epsilon axis (grid.Grid.cost_clip_norms)."""
    return GRIDS[preset].cost_clip_norms


# -- the public-view axis --------------------------------------------------------------------------

def paper_view_ratio(paper) -> float:
    """The paper's blurred-only finetuning score over its non-private one (83.61 / 89.36).

    >>> from dphpe_core.results import paper_results
    >>> round(paper_view_ratio(paper_results()), 3)
    0.936
    """
    fin = paper[(paper.strategy == "finetune") & (paper.method == NONPRIVATE)]
    return float(fin[fin.blurred_only.astype(bool)].pckh_mean.iloc[0] / fin[~fin.blurred_only.astype(bool)].pckh_mean.iloc[0])


def _preset_runs(df, preset: str):
    """Finetuning runs of `preset` at its full size under its own optimizer and learning rate."""
    cfg = make_config(preset)
    at = at_full_size(df[(df.preset == preset) & (df.strategy == "finetune")])
    if "optimizer" in at:
        at = at[(at.optimizer == cfg.optimizer) & (at.lr == cfg.lr)]
    return at


def view_axis(df):
    """The public-view axis: per blur strength (blur_sigma_256, the preset's and the grid's view_sigmas;
    `blur_px` at the crops' size) the blurred-only baseline and feature DP's and the hybrid's best C of
    the axis's clipping norms at the grid's largest epsilon, each with mean, 95% interval and seeds,
    and the baseline's share of the non-private mean (`ratio`, on every row of its blur)."""
    import pandas as pd

    rows = []
    for preset in sorted(set(df.preset) & set(GRIDS)):
        grid, cfg = GRIDS[preset], make_config(preset)
        at = _preset_runs(df, preset)
        raw = paper_grid(at[(at.method == NONPRIVATE) & ~at.blurred_only.astype(bool)]).pckh_mean
        for sigma in sorted({cfg.blur_sigma_256, *grid.view_sigmas}, reverse=True):
            base = at[(at.method == NONPRIVATE) & at.blurred_only.astype(bool) & (at.blur_sigma_256 == sigma)].pckh_mean
            if base.empty:
                continue
            common = dict(preset=preset, blur_sigma_256=sigma, blur_px=sigma * cfg.size_ratio, ratio=base.mean() / raw.mean(),
                          nonprivate=raw.mean())
            rows.append(dict(common, method=NONPRIVATE, clip_norm=math.nan, mean=base.mean(), n=len(base),
                             ci95=ci95(base.std(), len(base))))
            for method in PUBLIC_VIEW_METHODS:
                cell = at[(at.method == method) & (at.epsilon == max(grid.epsilons)) & (at.blur_sigma_256 == sigma)
                          & (at.fdp_public == "independent") & at.clip_norm.isin(grid.cost_clip_norms)]
                if cell.empty:
                    continue
                best = best_clip_stats(cell)
                rows.append(dict(common, method=method, clip_norm=best.clip_norm, mean=best["mean"], n=int(best.n),
                                 ci95=best.ci95))
    out = pd.DataFrame(rows)
    if not out.empty:
        out["Method"] = out.method.map(lambda m: "Blurred-only" if m == NONPRIVATE else METHOD_NAMES[m])
    return out





# -- the optimizer axis ----------------------------------------------------------------------------

def optimizer_axis(df):
    """The optimizer axis (the summary's `optimizer_axis` column): per optimizer, epsilon and method, the
    best C by mean over seeds, its mean, 95% interval, seeds and learning rate; and each method's points
    over DP-SGD under the same optimizer at the same epsilon, with the 95% interval of the difference
    (`points`, `points_ci`; nan for DP-SGD)."""
    import pandas as pd
    runs = df[df.optimizer_axis.astype(bool)] if "optimizer_axis" in df else df.iloc[:0]
    rows, seeds = [], {}
    for (opt, eps, method), cell in runs.groupby(["optimizer", "epsilon", "method"]):
        best = best_clip_stats(cell)
        at = cell[cell.clip_norm == best.clip_norm]
        seeds[(opt, eps, method)] = at.pckh_mean.tolist()
        rows.append(dict(optimizer=opt, epsilon=eps, method=method, Method=METHOD_NAMES[method], clip_norm=best.clip_norm,
                         lr=float(at.lr.iloc[0]), mean=best["mean"], n=int(best.n), ci95=best.ci95))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    gains = [difference(seeds[(o, e, m)], seeds[(o, e, REFERENCE)]) if m != REFERENCE and (o, e, REFERENCE) in seeds
             else (math.nan, math.nan) for o, e, m in zip(out.optimizer, out.epsilon, out.method)]
    out["points"], out["points_ci"] = zip(*gains)
    return out.sort_values(["epsilon", "optimizer", "method"], ascending=[False, True, True]).reset_index(drop=True)


def view_table(view):
    """view_axis as the book's table: a row per method, a column per blur ('0.62 px (0.96)': sigma on our
    crops and the blurred-only share), cells 'mean ± 95%'."""
    from .intervals import mean_ci_text
    table = view.assign(cell=mean_ci_text(view), blur=[f"{p:.2f} px ({r:.2f})" for p, r in zip(view.blur_px, view.ratio)])
    table = table.pivot(index="Method", columns="blur", values="cell")
    table.columns.name = "blur sigma (blurred-only share)"
    return table


def optimizer_gains_table(axis):
    """optimizer_axis as the book's table: per epsilon and method, its points over DP-SGD under each
    optimizer ('mean ± 95%' of the difference over seeds)."""
    from .intervals import mean_ci_text
    gains = axis[axis.method != REFERENCE]
    gains = gains.assign(cell=mean_ci_text(gains, "points", "points_ci"))
    return gains.pivot(index=["epsilon", "Method"], columns="optimizer", values="cell").sort_index(ascending=[False, True])


def optimizer_transfer(axis, tuning: dict, *, method: str = REFERENCE) -> dict:
    """Per optimizer at the axis' largest epsilon: DP-SGD's stand-in val score at its chosen rate
    (tune_optimizers) and its score in the study (optimizer_axis), to show whether the choice carried."""
    eps = float(axis.epsilon.max())
    out = {}
    for opt, by in tuning["chosen"].items():
        lr = by[f"{eps:g}"]
        stand = [r["pckh_mean"] for r in tuning["rows"] if r["optimizer"] == opt and r["epsilon_real"] == eps and r["lr"] == lr]
        study = axis[(axis.optimizer == opt) & (axis.epsilon == eps) & (axis.method == method)]["mean"]
        out[opt] = {"lr": lr, "stand_in": stand[0] if stand else math.nan, "study": float(study.iloc[0]) if len(study) else math.nan}
    return out


# -- the schedule axis ----------------------------------------------------------------------------

def schedule_axis(df):
    """The schedule axis (the summary's `schedule_axis` column): per schedule (expected batch, epochs; `steps`
    of a run), epsilon and method, the mean, 95% interval and seeds at the axis' C, with the schedule's lr and a
    run's mean wall time (`wall_min`);
    the non-private runs on rows of every epsilon; each method's points over DP-SGD (`points`, `points_ci`)."""
    import pandas as pd
    runs = df[df.schedule_axis.astype(bool)] if "schedule_axis" in df else df.iloc[:0]
    rows, seeds = [], {}
    for (preset, batch, epochs), at in runs.groupby(["preset", "batch_size", "epochs"]):
        grid = GRIDS[preset]
        steps = int(epochs) * max(1, round(int(at.n_private.max()) / int(batch)))
        for eps in grid.schedule_epsilons:
            for method, cell in at.groupby("method"):
                cell = cell if method == NONPRIVATE else cell[(cell.epsilon == eps) & (cell.clip_norm == grid.schedule_clip_norm)]
                if cell.empty:
                    continue
                seeds[(batch, epochs, eps, method)] = v = cell.pckh_mean.tolist()
                sd = float(cell.pckh_mean.std()) if len(v) > 1 else math.nan
                rows.append(dict(preset=preset, batch_size=int(batch), epochs=int(epochs), steps=steps, epsilon=eps,
                                 method=method, Method=METHOD_NAMES[method], lr=float(cell.lr.iloc[0]),
                                 mean=sum(v) / len(v), n=len(v), ci95=ci95(sd, len(v)),
                                 wall_min=float(cell.wall_s.mean()) / 60))
    out = pd.DataFrame(rows)
    if out.empty:
        return out
    gains = [difference(seeds[(b, e, p, m)], seeds[(b, e, p, REFERENCE)])
             if m not in (REFERENCE, NONPRIVATE) and (b, e, p, REFERENCE) in seeds else (math.nan, math.nan)
             for b, e, p, m in zip(out.batch_size, out.epochs, out.epsilon, out.method)]
    out["points"], out["points_ci"] = zip(*gains)
    return out.sort_values(["epsilon", "steps", "method"], ascending=[False, True, True]).reset_index(drop=True)
