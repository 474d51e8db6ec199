"""The guarantees chapter's tables and figures: what DP-SGD's noise spends under each neighbouring relation
(privacy.relations_table), and what feature DP needs under each public source.

    python -c "from dphpe_core import guarantees; help(guarantees)"
"""

from __future__ import annotations

import pandas as pd

from .intervals import seed_stats
from .methods import REFERENCE
from .privacy import relations_table
from .publicview import fdp_sources
from .results import main_grid

RELATIONS = {"paper_claims": "add/remove, subsampled (the paper's)", "add_remove_pld": "the same, exact (PLD)",
             "replace_one": "replace-one, independent batch", "same_batch": "replace-one, same batch"}


def claims(summary) -> tuple[pd.DataFrame, dict]:
    """The reference's runs (finetuning, feature DP's C) under each relation, and at the largest epsilon
    the paper's claim, sigma and what it spends under replace-one (claim_eps, claim_sigma, true_*)."""
    grid = main_grid(summary)
    fdp = fdp_sources(summary)
    dp = grid[(grid.method == REFERENCE) & (grid.strategy == "finetune") & (grid.clip_norm == fdp.clip_norm.iloc[0])]
    table = relations_table(dp)
    top = table.iloc[-1]
    return table, {"claim_eps": float(top.paper_claims), "claim_sigma": float(top.sigma),
                   "true_replace": float(top.replace_one), "true_same": float(top.same_batch)}


def claims_table(table: pd.DataFrame) -> pd.DataFrame:
    """claims' table in the book's words."""
    return table.rename(columns={"target": "target epsilon", "sigma": "noise multiplier", **RELATIONS}
                        ).set_index("target epsilon").round(3)


def claims_figure(table: pd.DataFrame):
    """The epsilon each relation spends against the epsilon the paper reports, on a log axis."""
    import seaborn as sns
    names = {**RELATIONS, "same_batch": "replace-one, same batch (no amplification)"}
    long = table.melt(id_vars=["target"], value_vars=["paper_claims", "replace_one", "same_batch"],
                      var_name="accounting", value_name="epsilon")
    long["accounting"] = long.accounting.map(names)
    ax = sns.lineplot(long, x="target", y="epsilon", hue="accounting", marker="o")
    ax.set(yscale="log", xlabel="epsilon the paper reports", ylabel="epsilon actually spent")
    sns.move_legend(ax, "upper left", bbox_to_anchor=(1, 1), title="")
    return ax.figure


def sources(summary) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Feature DP per public source (fdp_sources): its mean and 95% interval per epsilon, and the noise
    multiplier each source needs (epsilon x source)."""
    fdp = fdp_sources(summary)
    fdp = fdp.assign(variant=fdp.fdp_public)
    noise = fdp.groupby(["variant", "epsilon"]).noise_multiplier.first().unstack("variant")
    return seed_stats(fdp, ["variant", "epsilon"]), noise


def sources_figure(stats: pd.DataFrame, noise: pd.DataFrame):
    """sources drawn: PCKh per public source with 95% intervals, and the noise each needs (log axis)."""
    import matplotlib.pyplot as plt
    fig, axes = plt.subplots(1, 2, figsize=(11, 3.5))
    for variant, part in stats.groupby("variant"):
        axes[0].errorbar(part.epsilon, part["mean"], yerr=part.ci95.fillna(0), marker="o", capsize=3, label=variant)
    axes[0].set(xlabel="epsilon (own relation)", ylabel="PCKh@0.5 (%)", title="feature DP, calibrated honestly")
    axes[0].legend(title="public batch")
    noise.plot(marker="o", ax=axes[1], logy=True)
    axes[1].set(xlabel="epsilon (own relation)", ylabel="noise multiplier", title="noise each variant needs")
    fig.tight_layout()
    return fig
