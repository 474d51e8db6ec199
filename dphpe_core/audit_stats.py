"""The one-run audit's statistics: from m canaries and how many of an attacker's guesses are right, the
epsilon lower bound, the largest bound an audit could show (its power) and the settings that would
have it.

    python -c "from dphpe_core.audit_stats import power_ceiling; print(power_ceiling(1000, delta=1e-5))"

Steinke, Nasr and Jagielski (2023, "Privacy auditing with one (1) training run", arXiv 2305.08846)
audit a mechanism in a single training run. m canaries each get an independent fair bit S_i; the
attacker scores every canary without looking at S, guesses for the highest and the lowest scores
and abstains on the rest. For an (epsilon, delta)-DP mechanism the number of correct guesses v out
of r is dominated by Binomial(r, e^eps / (1 + e^eps)) up to a term of order 2 m delta (their
Theorem 3.1 with Appendix D); the largest epsilon those guesses reject at significance alpha is a
lower bound on the epsilon the mechanism really spends. A bound above the claimed epsilon is a
privacy bug; a bound near zero is what a correct mechanism at epsilon <= 1 gives, and is no proof
of privacy (an audit only bounds from below). The canaries and the run: audit.py.
"""

from __future__ import annotations

import math

import numpy as np


def p_value(m: int, r: int, v: int, epsilon: float, delta: float) -> float:
    """P[v or more correct of r guesses] for an (epsilon, delta)-DP mechanism with m canaries: the
    Binomial(r, e^eps / (1 + e^eps)) tail plus the delta term of Steinke et al.'s Theorem 3.1 (for
    approximate DP: 2 m delta times the largest average of the tail below v), capped at 1.

    >>> round(p_value(100, 100, 60, 0.0, 0.0), 4)        # a fair coin: 60 of 100 or more
    0.0284
    """
    from scipy.stats import binom
    if not 0 <= v <= r <= m:
        raise ValueError(f"expected 0 <= correct ({v}) <= guesses ({r}) <= canaries ({m})")
    q = 1.0 / (1.0 + math.exp(-epsilon))
    tail = float(binom.sf(v - 1, r, q))
    # the largest average of the tail below v: max over i of (pmf(v-1) + ... + pmf(v-i)) / i
    below = np.cumsum(binom.pmf(np.arange(v - 1, -1, -1), r, q)) if v else np.zeros(0)
    worst = float((below / np.arange(1, v + 1)).max()) if v else 0.0
    return min(1.0, tail + 2 * m * delta * max(worst, 0.0))


def epsilon_lower_bound(canaries: int, guesses: int, correct: int, *, delta: float, alpha: float = 0.05) -> float:
    """The largest epsilon that `correct` of `guesses` guesses reject at significance alpha (0 when
    even epsilon 0 is not rejected).

    >>> epsilon_lower_bound(1000, 100, 50, delta=1e-5)      # chance: nothing rejected
    0.0
    >>> round(epsilon_lower_bound(1000, 100, 100, delta=0.0), 2)   # all right: the ceiling of 100 guesses
    3.49
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha={alpha}: expected a number in (0, 1)")
    if p_value(canaries, guesses, correct, 0.0, delta) >= alpha:
        return 0.0
    lo, hi = 0.0, 1.0
    while p_value(canaries, guesses, correct, hi, delta) < alpha:
        lo, hi = hi, 2 * hi
        if hi > 100:
            return lo
    for _ in range(60):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if p_value(canaries, guesses, correct, mid, delta) < alpha else (lo, mid)
    return lo


def guess_counts(m: int) -> list[int]:
    """The k (guesses on each side) that best_bound tries for m canaries."""
    return sorted({k for k in (m // 100, m // 40, m // 20, m // 10, m // 4, m // 2) if k >= 1})


def power_ceiling(canaries: int, *, delta: float, rules: int = 1, alpha: float = 0.05) -> float:
    """The largest bound an audit with `canaries` canaries and `rules` attack rules can ever report at
    this delta: every guess right, at the best k. Below the claimed epsilon, the audit cannot catch a
    mechanism that spends more than it claims, however broken.

    >>> round(power_ceiling(1000, delta=1e-5), 2), power_ceiling(500, delta=0.01)
    (5.27, 0.0)
    """
    ks = guess_counts(canaries)
    return max(epsilon_lower_bound(canaries, 2 * k, 2 * k, delta=delta, alpha=alpha / (len(ks) * rules)) for k in ks)


def powered_settings(claim: float, *, canaries: int, delta: float, rules: int = 1, alpha: float = 0.05) -> str:
    """In words: the canaries (at this delta) or the delta (with these canaries) whose ceiling reaches `claim`."""
    out = []
    m = canaries                 # more canaries help only while 2 m delta stays small against alpha
    while 2 * m * delta < alpha and power_ceiling(m, delta=delta, rules=rules, alpha=alpha) < claim:
        m *= 2
    if 2 * m * delta < alpha:
        out.append(f"{m} canaries at delta {delta:g}")
    d = delta
    while d > 1e-12 and power_ceiling(canaries, delta=d, rules=rules, alpha=alpha) < claim:
        d /= 10
    if d > 1e-12:
        out.append(f"delta {d:g} with {canaries} canaries")
    return " or ".join(out) or "no setting of canaries, or of delta down to 1e-12"


def best_bound(scores: dict[str, np.ndarray], bits: np.ndarray, *, delta: float, alpha: float = 0.05,
               ks=None) -> dict:
    """Guess S_i = 1 for the k highest and S_i = 0 for the k lowest scores, for every attack rule in
    `scores` and every k in `ks`; the best bound with alpha split evenly over all tries (Bonferroni)."""
    m = len(bits)
    ks = ks or guess_counts(m)
    tries = len(ks) * len(scores)
    best = {"epsilon_lower_bound": 0.0, "guesses": 0, "correct": 0, "rule": None, "k": None, "tries": tries}
    for rule, s in scores.items():
        order = np.argsort(s, kind="stable")
        for k in ks:
            low, high = order[:k], order[-k:]
            correct = int(bits[high].sum() + (1 - bits[low]).sum())
            bound = epsilon_lower_bound(m, 2 * k, correct, delta=delta, alpha=alpha / tries)
            if bound > best["epsilon_lower_bound"] or best["rule"] is None:
                best.update(epsilon_lower_bound=bound, guesses=2 * k, correct=correct, rule=rule, k=k)
    return best
