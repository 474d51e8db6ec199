"""Statistics over seeds: a group's mean, standard deviation and 95% t-interval, the same in words, and
the paper's gap recovery.

    python -c "from dphpe_core.intervals import ci95; print(ci95(1.0, 3))"

Every interval in the book is the 95% t-interval of a mean over seeds (t with n - 1 degrees of freedom);
one seed has none, and the text says so instead of printing a zero.
"""

from __future__ import annotations


def ci95(sd: float, n: int) -> float:
    """Half-width of the 95% t-interval of a mean of n seeds with standard deviation sd (nan for n < 2).

    >>> round(ci95(1.0, 3), 3)
    2.484
    """
    from scipy.stats import t
    return float(t.ppf(0.975, n - 1) * sd / n ** 0.5) if n > 1 else float("nan")


def t_interval(values) -> tuple[float, float]:
    """The 95% t-interval of the mean of `values` (a point for one value): seaborn's `errorbar=`."""
    import numpy as np
    v = np.asarray(values, float)
    half = ci95(float(v.std(ddof=1)), len(v)) if len(v) > 1 else 0.0
    return float(v.mean() - half), float(v.mean() + half)


def seed_stats(df, by: list[str], value: str = "pckh_mean"):
    """Mean, standard deviation, seed count and the 95% t-interval half-width of `value` per group."""
    g = df.groupby(by, dropna=False)[value]
    out = g.agg(mean="mean", sd="std", n="count").reset_index()
    out["ci95"] = [ci95(sd, n) for n, sd in zip(out.n, out.sd)]
    return out


def ci_text(half: float, digits: int = 1) -> str:
    """'± 1.2, 95% interval over seeds', or what a single seed allows.

    >>> ci_text(1.234), ci_text(float("nan"))
    ('± 1.2, 95% interval over seeds', 'a single seed: no interval')
    """
    return "a single seed: no interval" if half != half else f"± {half:.{digits}f}, 95% interval over seeds"


def mean_ci_text(stats, value: str = "mean", err: str = "ci95", digits: int = 1):
    """'61.2 ± 1.4' per row of seed_stats (the mean alone where there is one seed)."""
    return [f"{m:.{digits}f}" + ("" if e != e else f" ± {e:.{digits}f}") for m, e in zip(stats[value], stats[err])]


def gap_recovery(method: float, dpsgd: float, nonprivate: float) -> float:
    """The share of the privacy-induced gap a method wins back, as the paper defines it:
    (method - DP-SGD) / (non-private - DP-SGD).

    >>> round(gap_recovery(82.61, 63.85, 89.36), 3)     # the paper's "recovers 73%"
    0.735
    """
    return (method - dpsgd) / (nonprivate - dpsgd)
