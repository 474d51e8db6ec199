"""The study chapters' tables and numbers (baselines, per-joint results, paper against ours), each one call
from its notebook: the numbers a chapter's prose uses come as a dict for runbook.glue_all.

    python -c "from dphpe_core import booktables; help(booktables)"
"""

from __future__ import annotations

import pandas as pd

from .intervals import mean_ci_text, seed_stats
from .methods import HEADLINE, METHOD_NAMES, NONPRIVATE, REFERENCE
from .results import GROUPS, at_full_size, best_clip, main_grid, paper_results

INPUTS = {False: "raw crops", True: "blurred crops only"}


def raw_baseline(frame, strategy: str = "finetune") -> pd.DataFrame:
    """The non-private runs of `strategy` on raw crops (not blurred-only) at the preset's size, in a summary
    or in paper_results()."""
    return at_full_size(frame[(frame.method == NONPRIVATE) & (frame.strategy == strategy)
                              & ~frame.blurred_only.astype(bool)])


def baseline_runs(summary) -> pd.DataFrame:
    """The non-private runs at the preset's size, their input ('raw crops', 'blurred crops only') named."""
    base = at_full_size(summary[summary.method == NONPRIVATE]).copy()
    base["input"] = base.blurred_only.map(INPUTS)
    return base


def baselines(summary, preset: str) -> tuple[pd.DataFrame, dict]:
    """The non-private baselines per strategy, on raw and on blurred-only crops: ours (mean ± 95% interval
    over seeds) beside the paper's, and our means (base_<strategy>, base_<strategy>_blur)."""
    base = baseline_runs(summary)
    stats = seed_stats(base, ["strategy", "input"])
    ours = stats.pivot(index="strategy", columns="input", values="mean")
    stats["ours"] = mean_ci_text(stats)
    shown = stats.pivot(index="strategy", columns="input", values="ours")
    paper = paper_results()
    paper = paper[paper.method == NONPRIVATE].copy()
    paper["input"] = paper.blurred_only.map(INPUTS)
    paper = paper.pivot(index="strategy", columns="input", values="pckh_mean")
    table = pd.concat({f"ours ({preset}), mean ± 95% CI": shown, "paper (MPII)": paper.round(2)}, axis=1)
    table.index.name = "strategy"
    numbers = {}
    for strategy in ours.index:
        numbers[f"base_{strategy}"] = float(ours.loc[strategy, INPUTS[False]])
        numbers[f"base_{strategy}_blur"] = float(ours.loc[strategy, INPUTS[True]])
    return table, numbers


def per_joint(summary) -> tuple[dict[str, pd.DataFrame], dict]:
    """PCKh@0.5 and @0.1 per joint group at the headline cell (finetuning, the grid's largest epsilon, the
    best C), every method and the non-private model, means over seeds with the mean's 95% interval; and
    the cell's C and epsilon and the headline method's hardest joint group."""
    grid = main_grid(summary)
    eps = float(grid.epsilon.max())
    clip = best_clip(summary, "finetune", eps)
    cell = grid[(grid.strategy == "finetune") & (grid.epsilon == eps) & (grid.clip_norm == clip)]
    rows = pd.concat([raw_baseline(summary), cell])
    tables = {}
    for level, prefix in (("PCKh@0.5", "pckh_"), ("PCKh@0.1", "pckh01_")):
        cols = [prefix + g.lower() for g in GROUPS] + [prefix + "mean"]
        t = rows.groupby("Method", sort=False)[cols].mean()
        t.columns = [*GROUPS, "Mean"]
        spread = seed_stats(rows, ["Method"], prefix + "mean").set_index("Method").reindex(t.index)
        t["± 95% CI"], t["seeds"] = spread.ci95, spread.n
        t.index.name = "method"
        tables[level] = t
    top = tables["PCKh@0.5"].drop(columns="Mean")
    name = METHOD_NAMES[HEADLINE]
    hardest = top.loc[name if name in top.index else top.index[-1]].idxmin()
    return tables, {"joint_clip": clip, "joint_eps": eps, "hardest_group": hardest}


def per_joint_table(tables: dict[str, pd.DataFrame]) -> pd.DataFrame:
    """per_joint's tables as one, rounded for the book."""
    return pd.concat(tables, axis=0, names=["metric", "method"]).round(1)


def findings_table(checked: list[dict]):
    """findings.check's four findings as the book shows them, each claim's text wrapped."""
    table = pd.DataFrame(checked).set_index("number")
    table = table[["claim", "verdict", "cells", "higher", "lower", "within_seed_noise", "one_seed"]]
    table.columns = ["claim", "verdict", "cells with seeds", "as claimed", "opposite", "within seed noise",
                     "single seed"]
    table.index.name = "finding"
    return table.style.set_properties(subset=["claim"], **{"white-space": "normal", "text-align": "left"})


def findings_numbers(checked: list[dict]) -> dict:
    """Each finding's sentence, finding_<number>."""
    return {f"finding_{f['number']}": f["text"] for f in checked}


def sweep_stats(summary):
    """The epsilon sweep: mean and 95% interval per strategy, C, method and epsilon over the paper's grid,
    with feature DP's and the hybrid's epsilon 0 point (the blurred-only baseline)."""
    from .publicview import with_public_only
    return with_public_only(seed_stats(main_grid(summary), ["strategy", "clip_norm", "Method", "epsilon"]), summary)


def sweep_numbers(stats, summary) -> dict:
    """The sweep's best cell at its largest epsilon, that epsilon and the runs of the grid."""
    top = stats[stats.epsilon == stats.epsilon.max()].sort_values("mean", ascending=False).iloc[0]
    return {"best_method": top.Method, "best_pckh": float(top["mean"]), "best_clip": float(top.clip_norm),
            "best_strategy": top.strategy, "eps_max": float(stats.epsilon.max()), "n_runs": len(main_grid(summary))}


def sweep_table(stats):
    """The sweep in the book: mean ± 95% interval per strategy, C and method (rows) and epsilon (columns)."""
    table = stats.assign(cell=mean_ci_text(stats)).pivot(index=["strategy", "clip_norm", "Method"],
                                                         columns="epsilon", values="cell").fillna("")
    table.columns = [f"epsilon {e:g}" for e in table.columns]
    table.index.names = ["strategy", "C", "method"]
    return table


def paper_against_ours(summary) -> tuple[pd.DataFrame, dict]:
    """Every cell of the paper's grid that we ran: the paper's PCKh beside our mean over seeds; the number of
    cells and the rank correlation (Spearman) between the two."""
    keys = ["strategy", "method", "clip_norm", "epsilon"]
    paper = paper_results()
    ours = seed_stats(main_grid(summary), keys).rename(columns={"mean": "ours"})
    both = ours.merge(paper[keys + ["pckh_mean"]].rename(columns={"pckh_mean": "paper"}), on=keys, how="inner")
    both["Method"] = both.method.map(METHOD_NAMES)
    return both, {"n_compared": len(both),
                  "rank_corr": float(both[["paper", "ours"]].corr(method="spearman").iloc[0, 1])}


def recovery_numbers(summary) -> tuple[pd.DataFrame, dict]:
    """The paper's gap recovery (the headline method at the largest epsilon against the reference at the
    smallest) in ours and in the paper's, the same at equal epsilon, and findings.recovery_table's cells
    (finetuning)."""
    import statistics

    from .findings import GAP_MARGIN, best_cell, recovery, recovery_sentence, recovery_table
    paper = paper_results()
    fin = main_grid(summary)
    fin = fin[fin.strategy == "finetune"]
    base = raw_baseline(summary).pckh_mean.tolist()
    paper_fin = paper[paper.strategy == "finetune"]
    paper_base = raw_baseline(paper).pckh_mean.iloc[0]
    lo, hi = fin.epsilon.min(), fin.epsilon.max()
    head, ref = best_cell(fin, HEADLINE, hi), best_cell(fin, REFERENCE, hi)
    rec = recovery_table(fin, base)
    return rec, {
        "our_recovery_text": recovery_sentence(recovery(head, best_cell(fin, REFERENCE, lo), base)),
        "paper_recovery": recovery(best_cell(paper_fin, HEADLINE, paper_fin.epsilon.max()),
                                   best_cell(paper_fin, REFERENCE, paper_fin.epsilon.min()), [paper_base],
                                   single_seed_ok=True)["recovery"],
        "eq_eps": float(hi), "eq_hybrid_text": recovery_sentence(recovery(head, ref, base)),
        "eq_gap": statistics.mean(base) - statistics.mean(ref), "eq_behind": statistics.mean(ref) - statistics.mean(head),
        "gap_margin": GAP_MARGIN, "rec_shown": int(rec.shown.sum()), "rec_cells": len(rec)}


def public_only(summary, preset: str) -> tuple[pd.DataFrame, dict]:
    """What the public view alone gives (publicview.public_only_comparison), ours beside the paper's, and the
    paper's numbers for the prose (po_paper_<what>_<strategy>) with our verdict in words."""
    from .publicview import public_only_comparison, public_only_text
    paper = paper_results()
    ours_po, paper_po = public_only_comparison(summary), public_only_comparison(paper)
    numbers = {"po_eps": float(paper.epsilon.max()), "po_ours_text": public_only_text(ours_po)}
    for row in paper_po.itertuples():
        key = "blur" if row.clip_norm != row.clip_norm else row.what.split()[0].lower()
        numbers[f"po_paper_{key}_{row.strategy}"] = float(row.mean)
    both = pd.concat({f"ours ({preset})": ours_po.set_index(["strategy", "what"]),
                      "paper (MPII)": paper_po.set_index(["strategy", "what"])}, axis=1)
    return both.round(2), numbers


def paper_public_view_curves():
    """The paper's feature DP and hybrid curves from their blurred-only point at epsilon 0."""
    from .publicview import PUBLIC_VIEW_METHODS, paper_stats, with_public_only
    paper = paper_results()
    curves = paper_stats(paper)
    return with_public_only(curves[curves.method.isin(PUBLIC_VIEW_METHODS)], paper)


def strategy_baselines(summary) -> dict[str, float]:
    """Each strategy's non-private mean (raw crops), the line the strategies figure draws."""
    base = at_full_size(summary[(summary.method == NONPRIVATE) & ~summary.blurred_only.astype(bool)])
    return base.groupby("strategy").pckh_mean.mean().to_dict()
