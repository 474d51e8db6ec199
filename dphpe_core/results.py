"""Run records: one frozen `RunResult` per config, saved as JSON under results/<preset>/runs/<hash>.json.

    python -c "from dphpe_core.results import load_runs; print(load_runs('results/embedded'))"

A record holds everything needed to read a run without rerunning it: the full config, the
privacy numbers actually used (for private methods), PCKh per joint group at 0.5 and 0.1 on val,
per-epoch curves, wall time, peak memory, device, package versions and the seed.
"""

from __future__ import annotations

import dataclasses
import json
import platform
from dataclasses import dataclass, field
from pathlib import Path

from .config import Config

RECORD_VERSION = 2


@dataclass(frozen=True, kw_only=True)
class RunResult:
    config: dict
    config_hash: str
    pckh: dict                  # PCKh@0.5 per group (Head ... Ankle, Mean), val, flip test
    pckh01: dict                # PCKh@0.1 per group
    curves: dict                # epoch, loss, val_pckh (per epoch)
    wall_s: float
    peak_mem_mb: float
    device: str
    versions: dict
    privacy: dict = field(default_factory=dict)   # empty for non-private runs
    guarantee: str = "none: trained without differential privacy"
    mechanism: dict = field(default_factory=dict)  # what the step measured, e.g. the projection's kept norm
    record_version: int = RECORD_VERSION

    @property
    def cfg(self) -> Config:
        return Config.from_dict(self.config)

    def summary(self) -> str:
        p, c = self.privacy, self.config
        priv = "non-private"
        if p:
            priv = (f"eps={p['epsilon_spent']:.3g} ({p['neighbouring']}, delta={p['delta']:.2g}) "
                    f"sigma={p['noise_multiplier']:.3g} C={p['clip_norm']:g}")
            if "fdp_public" in p:
                priv += f" public={p['fdp_public']}"
        return (f"{c['preset']}/{c['method']}/{c['strategy']} seed={c['seed']} {priv}: PCKh@0.5 "
                f"{self.pckh['Mean']:.2f}, @0.1 {self.pckh01['Mean']:.2f} in {self.wall_s:.0f}s "
                f"[{self.config_hash}]")


def run_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "runs" / f"{cfg.hash()}.json"


def save(result: RunResult, path: Path) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(dataclasses.asdict(result), indent=1, sort_keys=True, allow_nan=True))
    tmp.replace(path)
    return path


class StaleRecord(ValueError):
    """A record written by an older version of the record format."""


def load(path) -> RunResult:
    d = json.loads(Path(path).read_text())
    if d.get("record_version") != RECORD_VERSION:
        raise StaleRecord(f"{path}: record version {d.get('record_version')}, expected {RECORD_VERSION}")
    return RunResult(**d)


def load_runs(folder) -> list[RunResult]:
    return [load(p) for p in sorted(Path(folder).glob("runs/*.json"))]


GROUPS = ("Head", "Shoulder", "Elbow", "Wrist", "Hip", "Knee", "Ankle")
COLUMNS = ["preset", "strategy", "method", "fdp_public", "blurred_only", "epsilon", "clip_norm", "seed",
           "noise_multiplier", "sample_rate", "steps", "delta", "neighbouring", "epsilon_spent",
           "epsilon_paper_accounting", "pckh_mean", *[f"pckh_{g.lower()}" for g in GROUPS], "pckh01_mean",
           *[f"pckh01_{g.lower()}" for g in GROUPS], "kept_norm", "wall_s", "peak_mem_mb", "config_hash"]
METHOD_NAMES = {"nonprivate": "Non-private", "dpsgd": "DP-SGD", "pdp": "PDP-SGD", "fdp": "FDP", "hybrid": "Hybrid"}
PAPER_RESULTS = Path(__file__).with_name("paper_results.csv")   # package data: read off PAPER.md


def summary_frame(runs: list):
    """One row per run with the columns of summary.csv (COLUMNS)."""
    import pandas as pd
    rows = []
    for r in runs:
        c, p = r.config, r.privacy
        private = bool(p)
        row = dict(preset=c["preset"], strategy=c["strategy"], method=c["method"],
                   fdp_public=c["fdp_public"] if c["method"] in ("fdp", "hybrid") else "",
                   blurred_only=c["blurred_only"], epsilon=c["epsilon"] if private else None,
                   clip_norm=c["clip_norm"] if private else None, seed=c["seed"],
                   **{k: p.get(k) for k in ("noise_multiplier", "sample_rate", "steps", "delta", "neighbouring",
                                            "epsilon_spent", "epsilon_paper_accounting")},
                   pckh_mean=r.pckh["Mean"], **{f"pckh_{g.lower()}": r.pckh[g] for g in GROUPS},
                   pckh01_mean=r.pckh01["Mean"], **{f"pckh01_{g.lower()}": r.pckh01[g] for g in GROUPS},
                   kept_norm=r.mechanism.get("projection", {}).get("mean_kept_norm_fraction"),
                   wall_s=r.wall_s, peak_mem_mb=r.peak_mem_mb, config_hash=r.config_hash)
        rows.append(row)
    return pd.DataFrame(rows, columns=COLUMNS)


def read_summary(path):
    """summary.csv as written by the sweep, with a readable `Method` column."""
    import pandas as pd
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no summary yet; run `dphpe sweep --preset <preset>` first")
    df = pd.read_csv(path, keep_default_na=True, dtype={"fdp_public": object})
    df["fdp_public"] = df["fdp_public"].fillna("")
    df["Method"] = df["method"].map(METHOD_NAMES)
    return df


def main_grid(df):
    """The private runs of the paper's grid: fdp with its default public source, every other method."""
    private = df[df.method != "nonprivate"]
    return private[(private.method != "fdp") | (private.fdp_public == "independent")]


def seed_stats(df, by: list[str], value: str = "pckh_mean"):
    """Mean, standard deviation, seed count and the 95% t-interval half-width of `value` per group."""
    from scipy.stats import t
    g = df.groupby(by, dropna=False)[value]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["ci95"] = [t.ppf(0.975, n - 1) * sd / n ** 0.5 if n > 1 else float("nan") for n, sd in zip(out.n, out.sd)]
    return out


def best_clip(df, strategy: str, epsilon: float) -> float:
    """The clipping norm with the highest mean PCKh over private methods at (strategy, epsilon)."""
    cell = main_grid(df)
    cell = cell[(cell.strategy == strategy) & (cell.epsilon == epsilon)]
    return float(cell.groupby("clip_norm").pckh_mean.mean().idxmax())


def paper_results():
    """The paper's numbers (PAPER.md, read off its figures), one row per published cell."""
    import pandas as pd
    return pd.read_csv(PAPER_RESULTS, comment="#")


def gap_recovery(method: float, dpsgd: float, nonprivate: float) -> float:
    """The share of the privacy-induced gap a method wins back, as the paper defines it:
    (method - DP-SGD) / (non-private - DP-SGD).

    >>> round(gap_recovery(82.61, 63.85, 89.36), 3)     # the paper's "recovers 73%"
    0.735
    """
    return (method - dpsgd) / (nonprivate - dpsgd)


def findings(df) -> list[dict]:
    """The paper's four findings, each checked against these results: a sentence and the numbers."""
    grid = main_grid(df)
    cell = grid.groupby(["strategy", "clip_norm", "epsilon", "method"]).pckh_mean.mean().unstack("method")
    out = []
    others = [m for m in cell.columns if m != "hybrid"]
    wins = int((cell["hybrid"] >= cell[others].max(axis=1)).sum())
    out.append(_finding(1, "The hybrid beats every other private method in nearly every cell", wins, len(cell),
                        f"the hybrid is best in {wins} of {len(cell)} cells (strategy x C x epsilon)"))
    by_c = grid.groupby(["strategy", "method", "epsilon", "clip_norm"]).pckh_mean.mean().unstack("clip_norm")
    lo, hi = min(by_c.columns), max(by_c.columns)
    if lo == hi:
        out.append(_untested(2, "Smaller clipping norms are better in this regime", "one clipping norm"))
    else:
        smaller = int((by_c[lo] > by_c[hi]).sum())
        out.append(_finding(2, "Smaller clipping norms are better in this regime", smaller, len(by_c),
                            f"C = {lo:g} beats C = {hi:g} in {smaller} of {len(by_c)} (strategy, method, epsilon) "
                            f"cells"))
    by_s = grid.groupby(["method", "clip_norm", "epsilon", "strategy"]).pckh_mean.mean().unstack("strategy")
    if {"finetune", "full"} <= set(by_s.columns):
        fin = int((by_s["finetune"] > by_s["full"]).sum())
        out.append(_finding(3, "Under DP, freezing most of a pretrained backbone beats full finetuning", fin,
                            len(by_s), f"finetuning beats full finetuning in {fin} of {len(by_s)} cells"))
    else:
        out.append(_untested(3, "Under DP, freezing most of a pretrained backbone beats full finetuning",
                             "one strategy"))
    claim4 = "Projection helps most at small epsilon; feature DP helps most at large C"
    if lo == hi or cell.index.get_level_values("epsilon").nunique() < 2:
        out.append(_untested(4, claim4, "one clipping norm or one epsilon"))
        return out
    eps_lo, eps_hi = cell.index.get_level_values("epsilon").min(), cell.index.get_level_values("epsilon").max()
    gain = (cell["pdp"] - cell["dpsgd"]).groupby("epsilon").mean()
    fgain = (cell["fdp"] - cell["dpsgd"]).groupby("clip_norm").mean()
    proj_ok, feat_ok = gain[eps_lo] > gain[eps_hi], fgain[hi] > fgain[lo]
    out.append({"number": 4, "claim": claim4,
                "supported": bool(proj_ok and feat_ok),
                "text": (f"Finding 4 ({'supported' if proj_ok and feat_ok else 'partly supported' if proj_ok or feat_ok else 'not supported'}): "
                         f"PDP-SGD gains {gain[eps_lo]:+.1f} points over DP-SGD at epsilon {eps_lo:g} and "
                         f"{gain[eps_hi]:+.1f} at epsilon {eps_hi:g}; FDP gains {fgain[hi]:+.1f} at C = {hi:g} and "
                         f"{fgain[lo]:+.1f} at C = {lo:g} (means over the other grid axes).")})
    return out


def _untested(number: int, claim: str, why: str) -> dict:
    return {"number": number, "claim": claim, "supported": None,
            "text": f"Finding {number} ({_lower_first(claim)}) is not tested here: this grid has {why} only."}


def _finding(number: int, claim: str, hits: int, total: int, evidence: str) -> dict:
    share = hits / total if total else float("nan")
    verdict = "supported" if share >= 0.75 else "partly supported" if share >= 0.5 else "not supported"
    return {"number": number, "claim": claim, "supported": share >= 0.75,
            "text": f"Finding {number} ({verdict}): {_lower_first(claim)}? Here {evidence} ({100 * share:.0f}%)."}


def _lower_first(claim: str) -> str:
    """'Under DP, ...' -> 'under DP, ...' (acronyms and symbols keep their case)."""
    return claim[:1].lower() + claim[1:]


def versions() -> dict:
    import numpy
    import opacus
    import torch
    return {"python": platform.python_version(), "torch": torch.__version__, "opacus": opacus.__version__,
            "numpy": numpy.__version__, "machine": platform.machine()}
