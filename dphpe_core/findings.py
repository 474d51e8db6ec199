"""The paper's four findings checked against our records, under one rule: seeds decide.

    python -c "from dphpe_core import findings, results; print(findings.check(results.read_summary('results/embedded/summary.csv')))"

Each finding compares two groups of runs cell by cell (a cell: strategy x C x epsilon, or what the
finding fixes). A difference counts only when its 95% interval (Welch's t over the seeds of both
groups) excludes zero; a cell with a single seed on either side cannot say, and is counted apart.
A finding is "supported" when the claimed direction holds beyond seed noise in at least three
quarters of the cells that can say, "contradicted" when the opposite direction holds beyond seed
noise in more cells than the claimed one, and "inconclusive" otherwise. The generated sentences
never call a difference inside seed noise a win.
"""

from __future__ import annotations

import math

from .methods import PRIVATE_METHODS
from .results import main_grid

SUPPORT_SHARE = 0.75


def difference(a, b) -> tuple[float, float]:
    """Mean of `a` minus mean of `b` and the half-width of its 95% interval (Welch); nan when either
    group has fewer than two values.

    >>> d, h = difference([50.0, 52.0, 54.0], [40.0, 41.0, 42.0])
    >>> round(d, 2), round(h, 2)
    (11.0, 4.16)
    """
    from scipy.stats import t
    a, b = [float(x) for x in a], [float(x) for x in b]
    d = sum(a) / len(a) - sum(b) / len(b)
    if min(len(a), len(b)) < 2:
        return d, math.nan
    va, vb = _var(a) / len(a), _var(b) / len(b)
    se2 = va + vb
    if se2 == 0:
        return d, 0.0
    df = se2 ** 2 / (va ** 2 / (len(a) - 1) + vb ** 2 / (len(b) - 1))
    return d, float(t.ppf(0.975, df) * se2 ** 0.5)


def difference_from_stats(a: tuple, b: tuple) -> tuple[float, float]:
    """difference() from each group's (mean, 95% half-width as intervals.ci95 gives it, seeds) instead of its
    values: the same numbers, for tables that keep only those.

    >>> d, h = difference_from_stats((52.0, 4.968, 3), (41.0, 2.484, 3))
    >>> round(d, 2), round(h, 2)
    (11.0, 4.16)
    """
    from scipy.stats import t
    (ma, ha, na), (mb, hb, nb) = a, b
    if min(na, nb) < 2:
        return ma - mb, math.nan
    va, vb = [(h / t.ppf(0.975, n - 1)) ** 2 for h, n in ((ha, na), (hb, nb))]     # the variance of each mean
    se2 = va + vb
    if se2 == 0:
        return ma - mb, 0.0
    df = se2 ** 2 / (va ** 2 / (na - 1) + vb ** 2 / (nb - 1))
    return ma - mb, float(t.ppf(0.975, df) * se2 ** 0.5)


def _var(x: list[float]) -> float:
    m = sum(x) / len(x)
    return sum((v - m) ** 2 for v in x) / (len(x) - 1)


def verdict(d: float, half: float) -> str:
    """'higher', 'lower', 'within seed noise' or 'one seed' for a difference and its half-width."""
    if math.isnan(half):
        return "one seed"
    if d - half > 0:
        return "higher"
    if d + half < 0:
        return "lower"
    return "within seed noise"


def tally(pairs) -> dict:
    """Counts of verdicts over (a values, b values) pairs, for the claim 'a above b'."""
    out = {"higher": 0, "lower": 0, "within seed noise": 0, "one seed": 0}
    for a, b in pairs:
        out[verdict(*difference(a, b))] += 1
    return out


def _state(number: int, claim: str, counts: dict, unit: str, ahead: str, behind: str) -> dict:
    testable = counts["higher"] + counts["lower"] + counts["within seed noise"]
    if testable == 0:
        word = "untested"
    elif counts["higher"] >= SUPPORT_SHARE * testable:
        word = "supported"
    elif counts["lower"] > counts["higher"]:
        word = "contradicted"
    else:
        word = "inconclusive"
    text = (f"Finding {number} ({word}): {claim[:1].lower() + claim[1:]}? Of {testable} {unit} with seeds on both "
            f"sides, {ahead} beyond seed noise in {counts['higher']}, {behind} beyond seed noise in "
            f"{counts['lower']}, and the difference lies within seed noise (95% interval) in "
            f"{counts['within seed noise']}")
    text += f"; {counts['one seed']} more have a single seed and cannot say." if counts["one seed"] else "."
    return {"number": number, "claim": claim, "verdict": word, "supported": word == "supported",
            "cells": testable, **{k.replace(" ", "_"): v for k, v in counts.items()}, "text": text}


def _groups(df, by: list[str], split: str):
    """{cell: {value of `split`: list of pckh_mean}} over the groups of `by` + [split]."""
    out: dict = {}
    for key, g in df.groupby(by + [split], dropna=False):
        *cell, value = key
        out.setdefault(tuple(cell), {})[value] = g.pckh_mean.tolist()
    return out


def check(df) -> list[dict]:
    """The paper's four findings against the main grid of `df` (summary.csv), each with its verdict,
    the counts behind it and a sentence."""
    grid = main_grid(df)
    out = []
    cells = _groups(grid, ["strategy", "clip_norm", "epsilon"], "method")
    pairs = []
    for by in cells.values():
        if "hybrid" in by and len(by) > 1:
            best = max((m for m in by if m != "hybrid"), key=lambda m: sum(by[m]) / len(by[m]))
            pairs.append((by["hybrid"], by[best]))
    out.append(_state(1, "The hybrid beats every other private method in nearly every cell", tally(pairs),
                      "cells (strategy x C x epsilon)", "the hybrid is ahead of the best other method",
                      "it is behind"))
    by_c = _groups(grid, ["strategy", "method", "epsilon"], "clip_norm")
    cs = sorted(grid.clip_norm.dropna().unique())
    claim2 = "Smaller clipping norms are better in this regime"
    if len(cs) < 2:
        out.append(_state(2, claim2, tally([]), "cells", "", ""))
    else:
        lo, hi = cs[0], cs[-1]
        out.append(_state(2, claim2, tally((v[lo], v[hi]) for v in by_c.values() if lo in v and hi in v),
                          "(strategy, method, epsilon) cells", f"C = {lo:g} is ahead of C = {hi:g}", "it is behind"))
    by_s = _groups(grid, ["method", "clip_norm", "epsilon"], "strategy")
    out.append(_state(3, "Under DP, freezing most of a pretrained backbone beats full finetuning",
                      tally((v["finetune"], v["full"]) for v in by_s.values() if {"finetune", "full"} <= set(v)),
                      "(method, C, epsilon) cells", "finetuning is ahead of full finetuning", "it is behind"))
    out.append(_finding_4(grid))
    return out


def _finding_4(grid) -> dict:
    """Projection's gain over DP-SGD is larger at the smallest epsilon than at the largest (per strategy
    and C), and feature DP's gain is larger at the largest C than at the smallest (per strategy and
    epsilon): each a difference of two gains, with an interval from the four groups' seeds."""
    claim = "Projection helps most at small epsilon; feature DP helps most at large C"
    cell = _groups(grid, ["strategy", "clip_norm", "epsilon"], "method")
    eps = sorted(grid.epsilon.dropna().unique())
    cs = sorted(grid.clip_norm.dropna().unique())
    counts = {"higher": 0, "lower": 0, "within seed noise": 0, "one seed": 0}
    if len(eps) < 2 or len(cs) < 2:
        return _state(4, claim, counts, "comparisons", "", "")
    comparisons = []
    for s in grid.strategy.unique():
        for c in cs:
            lo, hi = cell.get((s, c, eps[0]), {}), cell.get((s, c, eps[-1]), {})
            if {"pdp", "dpsgd"} <= set(lo) and {"pdp", "dpsgd"} <= set(hi):
                comparisons.append((lo["pdp"], lo["dpsgd"], hi["pdp"], hi["dpsgd"]))
        for e in eps:
            big, small = cell.get((s, cs[-1], e), {}), cell.get((s, cs[0], e), {})
            if {"fdp", "dpsgd"} <= set(big) and {"fdp", "dpsgd"} <= set(small):
                comparisons.append((big["fdp"], big["dpsgd"], small["fdp"], small["dpsgd"]))
    for groups in comparisons:
        counts[verdict(*gain_difference(*groups))] += 1
    return _state(4, claim, counts, "comparisons (PDP-SGD's gain at the smallest against the largest epsilon; "
                  "FDP's at the largest against the smallest C)", "the claimed gain is larger", "it is smaller")


def gain_difference(a1, b1, a2, b2) -> tuple[float, float]:
    """(mean a1 - mean b1) - (mean a2 - mean b2) and the half-width of its 95% interval (normal
    variances added, t with the smallest group's degrees of freedom: conservative); nan with one seed."""
    from scipy.stats import t
    groups = [[float(x) for x in g] for g in (a1, b1, a2, b2)]
    means = [sum(g) / len(g) for g in groups]
    d = (means[0] - means[1]) - (means[2] - means[3])
    n = min(len(g) for g in groups)
    if n < 2:
        return d, math.nan
    se = sum(_var(g) / len(g) for g in groups) ** 0.5
    return d, float(t.ppf(0.975, n - 1) * se)


def gap_recovery_interval(method, dpsgd, nonprivate) -> tuple[float, float]:
    """The paper's gap recovery, 100 x (method - DP-SGD) / (non-private - DP-SGD), from the seeds of
    three groups, and the half-width of its 95% interval (delta method, t with the smallest group's
    degrees of freedom; nan when a group has one seed).

    >>> r, h = gap_recovery_interval([82.61], [63.85], [89.36])
    >>> round(r, 1), h != h
    (73.5, True)
    """
    from scipy.stats import t
    groups = [[float(x) for x in g] for g in (method, dpsgd, nonprivate)]
    m, d, b = (sum(g) / len(g) for g in groups)
    r = 100 * (m - d) / (b - d)
    n = min(len(g) for g in groups)
    if n < 2:
        return r, math.nan
    vm, vd, vb = (_var(g) / len(g) for g in groups)
    gap = b - d
    grad = (1 / gap, (m - b) / gap ** 2, (d - m) / gap ** 2)      # d r / d (m, d, b), in units of 1
    se = (grad[0] ** 2 * vm + grad[1] ** 2 * vd + grad[2] ** 2 * vb) ** 0.5
    return r, float(100 * t.ppf(0.975, n - 1) * se)


# Gap recovery divides by DP-SGD's gap to the non-private model. Where that gap is within a few seeds'
# noise the ratio is noise over noise (once printed as "-669.8% (± 599.2)"), so it is shown only where the
# gap is at least GAP_MARGIN times the half-width of its own 95% interval (Welch, over the seeds of both
# groups): the ratio's denominator is then known to within a third of itself. A gap measured on one seed per group (the paper's numbers) has no interval: it is shown
# only with `single_seed_ok` (the paper's own claim, quoted as the paper computes it).
GAP_MARGIN = 3.0
RECOVERY_METHODS = tuple(m for m in PRIVATE_METHODS if m != "dpsgd")   # what wins the gap back, against DP-SGD
NOT_SHOWN = "gap within seed noise"


def recovery(method, dpsgd, nonprivate, *, single_seed_ok: bool = False) -> dict:
    """The gap recovery of `method` (seeds' PCKh) over DP-SGD's gap to the non-private model, under
    the rule above: {'shown', 'recovery', 'ci' (its 95% half-width), 'gap', 'gap_ci', 'text'}, with
    recovery and ci nan and text NOT_SHOWN (or 'one seed') where the gap is not real.

    >>> r = recovery([82.61], [63.85], [89.36], single_seed_ok=True)
    >>> r["shown"], round(r["recovery"], 1), r["text"]
    (True, 73.5, '73.5%')
    >>> recovery([64.0, 64.4, 64.8], [64.1, 65.0, 64.3], [66.5, 67.0, 67.4])["text"]
    'gap within seed noise'
    """
    gap, gap_ci = difference(nonprivate, dpsgd)
    single = math.isnan(gap_ci)
    real = gap > 0 and ((single and single_seed_ok) or (not single and gap >= GAP_MARGIN * gap_ci))
    out = dict(shown=real, gap=gap, gap_ci=gap_ci, recovery=math.nan, ci=math.nan)
    if not real:
        return dict(out, text="one seed" if single else NOT_SHOWN)
    r, h = gap_recovery_interval(method, dpsgd, nonprivate)
    return dict(out, recovery=r, ci=h, text=f"{r:.1f}%" + ("" if math.isnan(h) else f" ± {h:.1f}"))


def recovery_sentence(rec: dict) -> str:
    """recovery()'s result in words: '61.2% (± 5.0, 95% interval over seeds)', or why it is not given."""
    if rec["shown"]:
        return f"{rec['recovery']:.1f}% (" + ("a single seed: no interval" if math.isnan(rec["ci"]) else
                                              f"± {rec['ci']:.1f}, 95% interval over seeds") + ")"
    if rec["text"] == "one seed":
        return f"not given: DP-SGD's gap there, {rec['gap']:.1f} points, rests on single seeds"
    return (f"not given: DP-SGD's gap to the non-private model there, {rec['gap']:.1f} points ± {rec['gap_ci']:.1f}, "
            f"is under {GAP_MARGIN:g} times its own 95% interval ({NOT_SHOWN})")


def recovery_table(frame, nonprivate, *, methods=RECOVERY_METHODS, by=("clip_norm", "epsilon")):
    """Per cell (`by`) and method of `frame` (private runs): the points it gains on DP-SGD in the same
    cell, with their 95% interval (`points`, `points_ci`), and its gap recovery under recovery()'s rule
    (`recovery`, `recovery_ci`, nan where not shown; `text`). `nonprivate`: the baseline's seeds."""
    import pandas as pd
    from .results import METHOD_NAMES
    rows = []
    for key, cell in frame.groupby(list(by)):
        dp = cell[cell.method == "dpsgd"].pckh_mean
        for m in methods:
            own = cell[cell.method == m].pckh_mean
            if own.empty or dp.empty:
                continue
            points, points_ci = difference(own, dp)
            rec = recovery(own, dp, nonprivate)
            rows.append(dict(zip(by, key if isinstance(key, tuple) else (key,)), method=m, Method=METHOD_NAMES[m],
                             points=points, points_ci=points_ci, recovery=rec["recovery"], recovery_ci=rec["ci"],
                             gap=rec["gap"], gap_ci=rec["gap_ci"], shown=rec["shown"], text=rec["text"]))
    return pd.DataFrame(rows)


def best_cell(frame, method: str, epsilon: float) -> list[float]:
    """The seeds' PCKh@0.5 of `method` at `epsilon` at its best C (by mean over seeds) in `frame`."""
    cell = frame[(frame.method == method) & (frame.epsilon == epsilon)]
    c = cell.groupby("clip_norm").pckh_mean.mean().idxmax()
    return cell[cell.clip_norm == c].pckh_mean.tolist()


