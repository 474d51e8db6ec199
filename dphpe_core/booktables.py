"""The study chapters' tables and numbers (baselines, per-joint results, paper against ours), each one call
from its notebook: the numbers a chapter's prose uses come as a dict for runbook.glue_all.

    python -c "from dphpe_core import booktables; help(booktables)"
"""

from __future__ import annotations

import pandas as pd

from .intervals import mean_ci_text, seed_stats
from .methods import HEADLINE, METHOD_NAMES, NONPRIVATE
from .results import GROUPS, at_full_size, best_clip, main_grid, paper_results

INPUTS = {False: "raw crops", True: "blurred crops only"}


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
    base = at_full_size(summary[(summary.method == NONPRIVATE) & (summary.strategy == "finetune")
                                & ~summary.blurred_only.astype(bool)])
    rows = pd.concat([base, cell])
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
