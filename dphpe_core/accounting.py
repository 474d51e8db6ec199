"""The privacy accountant: (noise multiplier, delta, sample rate, steps) <-> epsilon.

    python -m doctest -v dphpe_core/accounting.py

A DP-SGD run is `steps` compositions of the Poisson-subsampled Gaussian mechanism: each row
joins a step's batch with probability `sample_rate`, the batch's clipped gradients (L2 norm <= C
each) are summed, and N(0, (noise_multiplier * C)^2) noise is added. Two neighbouring relations:

- "add-remove" (DP-SGD, PDP-SGD, feature DP with the public split): neighbours differ by one row
  being present or absent, so one row moves the sum by at most C. Accounted with Opacus' RDP
  accountant (the paper's) or its PRV accountant, through their public API; or with
  dp-accounting's PLD accountant ("pld"), handy for comparisons.
- "replace-one" (feature DP: one row's private part is swapped, its public part stays): the sum
  moves by up to 2C. Opacus' accountants know only add-remove, so this relation is accounted
  with dp-accounting's PLD accountant, which models replace-one for Poisson-sampled Gaussians.

Without amplification (feature DP whose noise-free public gradient is computed on the very
Poisson batch, the paper's released code): whether a row was sampled is revealed, so each of its
participations is a full Gaussian mechanism. `epsilon_without_amplification` bounds a row's
participations by the (1 - delta/2) quantile of Binomial(steps, sample_rate), adds that tail to
delta, and composes that many Gaussian mechanisms exactly (sensitivity C or 2C).

`calibrate_noise` returns the smallest noise multiplier (to 0.1% relative) whose epsilon does not
exceed the target, so `epsilon_spent(calibrate_noise(...)) <= target` always holds.

>>> round(epsilon_spent(noise_multiplier=1.12, delta=1 / 22000, sample_rate=32 / 22246, steps=17379), 3)
0.793
>>> round(calibrate_noise(target_epsilon=0.8, delta=1 / 22000, sample_rate=32 / 22246, steps=17379,
...                       accountant="pld", neighbouring="replace-one"), 2)
1.59
"""

from __future__ import annotations

import functools
import math

ACCOUNTANTS = ("rdp", "prv", "pld")
NEIGHBOURING = ("add-remove", "replace-one")
MAX_NOISE_MULTIPLIER = 1e4
RDP_ORDERS = [1 + x / 10.0 for x in range(1, 100)] + list(range(11, 64)) + [64, 80, 96, 128, 160, 192, 256, 384, 512]
PLD_FINE_FROM = 8.0    # noise multiplier from which the PLD grid is 100 times finer (pld_interval)
PRV_EPS_ERROR = 1e-3   # Opacus' default (1e-2, absolute) is coarse next to the small epsilons studied here


def default_delta(n_private: int) -> float:
    """The largest power of ten strictly below 1 / n_private (1e-4 for 4,000 crops, 1e-5 for MPII's 22,246).

    >>> default_delta(4000), default_delta(1000), default_delta(22246)
    (0.0001, 0.0001, 1e-05)
    """
    if n_private < 1:
        raise ValueError(f"n_private={n_private!r}: expected at least one private training crop")
    k = math.ceil(math.log10(n_private))
    return 10.0 ** -(k + 1) if 10.0 ** -k >= 1.0 / n_private else 10.0 ** -k


def check_privacy_parameters(*, epsilon: float | None = None, delta: float, sample_rate: float, steps: int,
                             noise_multiplier: float | None = None, n_private: int | None = None,
                             accountant: str = "rdp", neighbouring: str = "add-remove") -> None:
    """Refuse invalid privacy parameters with an error naming the parameter and what was expected."""
    if epsilon is not None and not (epsilon > 0 and math.isfinite(epsilon)):
        raise ValueError(f"epsilon={epsilon!r}: expected a finite number > 0")
    upper = 1.0 if n_private is None else 1.0 / n_private
    if not 0 < delta < upper:
        where = "(0, 1)" if n_private is None else f"(0, 1/N_private) = (0, {upper:.3g}) for N_private={n_private}"
        raise ValueError(f"delta={delta!r}: expected a number in {where}")
    if not 0 < sample_rate <= 1:
        raise ValueError(f"sample_rate={sample_rate!r}: expected a number in (0, 1]")
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps={steps!r}: expected a whole number >= 1")
    if noise_multiplier is not None and not noise_multiplier > 0:
        raise ValueError(f"noise_multiplier={noise_multiplier!r}: expected a number > 0")
    if accountant not in ACCOUNTANTS:
        raise ValueError(f"accountant={accountant!r}: expected one of {list(ACCOUNTANTS)}")
    if neighbouring not in NEIGHBOURING:
        raise ValueError(f"neighbouring={neighbouring!r}: expected one of {list(NEIGHBOURING)}")
    if neighbouring == "replace-one" and accountant != "pld":
        raise ValueError(f"neighbouring='replace-one' is accounted with dp-accounting's PLD accountant; "
                         f"pass accountant='pld' (got {accountant!r}: Opacus' accountants are add-remove only)")


def epsilon_spent(*, noise_multiplier: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp",
                  neighbouring: str = "add-remove", n_private: int | None = None) -> float:
    """Epsilon of `steps` Poisson-subsampled Gaussian steps at this noise multiplier (keyword-only:
    delta and the sample rate are both floats in (0, 1)).

    >>> few = epsilon_spent(noise_multiplier=1.0, delta=1e-5, sample_rate=0.01, steps=2)
    >>> few < epsilon_spent(noise_multiplier=1.0, delta=1e-5, sample_rate=0.01, steps=2000)
    True
    """
    check_privacy_parameters(delta=delta, sample_rate=sample_rate, steps=steps, noise_multiplier=noise_multiplier,
                             n_private=n_private, accountant=accountant, neighbouring=neighbouring)
    return _epsilon(float(noise_multiplier), float(delta), float(sample_rate), int(steps), accountant, neighbouring)


@functools.lru_cache(maxsize=4096)   # a pure function of its arguments; calibrations and sweeps repeat them
def _epsilon(noise_multiplier: float, delta: float, sample_rate: float, steps: int, accountant: str,
             neighbouring: str) -> float:
    if accountant == "pld":
        return _pld_epsilon(noise_multiplier, delta, sample_rate, steps, neighbouring)
    from opacus.accountants import PRVAccountant, RDPAccountant
    acc = RDPAccountant() if accountant == "rdp" else PRVAccountant()
    for _ in range(steps):
        acc.step(noise_multiplier=noise_multiplier, sample_rate=sample_rate)
    if accountant == "rdp":  # Opacus' default orders stop at 63; small epsilons want higher ones
        import warnings
        with warnings.catch_warnings():
            # "Optimal order is the largest alpha": under heavy noise (the paper's accounting of feature DP
            # without amplification, sigma near 100) the bound is loose but still an upper bound, which is
            # all that number claims; the warning repeated once per record and buried make book's log
            warnings.filterwarnings("ignore", message="Optimal order is the largest alpha")
            return float(acc.get_epsilon(delta=delta, alphas=RDP_ORDERS))
    return float(acc.get_epsilon(delta=delta, eps_error=PRV_EPS_ERROR))


def pld_interval(steps: int, noise_multiplier: float = 1.0) -> float:
    """dp-accounting's PLD discretization for `steps` compositions at this noise multiplier. Its
    estimate is pessimistic (an upper bound) at any interval; the default 1e-4 is slow for large
    sampling rates, and over a few hundred steps 1e-3 changes epsilon by under 0.05%
    (tests/test_accounting.py). Under heavy noise the epsilons are of the order of the interval
    itself (at noise multiplier 43 and 86 steps of rate 0.0116, 1e-3 reports 0.0107 where a fine
    grid gives 0.0057), so from PLD_FINE_FROM on the grid is 100 times finer, and as fast there."""
    coarse = 1e-3 if steps <= 500 else 1e-4
    return coarse if noise_multiplier < PLD_FINE_FROM else coarse / 100


def _pld_epsilon(noise_multiplier, delta, sample_rate, steps, neighbouring) -> float:
    import dp_accounting
    from dp_accounting.pld import PLDAccountant
    relation = {"add-remove": dp_accounting.NeighboringRelation.ADD_OR_REMOVE_ONE,
                "replace-one": dp_accounting.NeighboringRelation.REPLACE_ONE}[neighbouring]
    event = dp_accounting.SelfComposedDpEvent(
        dp_accounting.PoissonSampledDpEvent(sample_rate, dp_accounting.GaussianDpEvent(noise_multiplier)), steps)
    accountant = PLDAccountant(relation, value_discretization_interval=pld_interval(steps, noise_multiplier))
    return float(accountant.compose(event).get_epsilon(delta))


def participations(sample_rate: float, steps: int, tail: float) -> int:
    """The smallest k with P(Binomial(steps, sample_rate) > k) <= tail: a row's participations, but
    for probability `tail`.

    >>> participations(0.5, 2, 0.25), participations(0.5, 2, 0.2)
    (1, 2)
    """
    from scipy.stats import binom
    k = max(0, int(binom.isf(tail, steps, sample_rate)) - 1)
    while binom.sf(k, steps, sample_rate) > tail:
        k += 1
    return k


def gaussian_epsilon(mu: float, delta: float) -> float:
    """Exact epsilon of a Gaussian mechanism whose sensitivity is `mu` standard deviations
    (Balle & Wang 2018: delta(eps) = Phi(mu/2 - eps/mu) - e^eps Phi(-mu/2 - eps/mu)).

    >>> round(gaussian_epsilon(1.0, 1e-5), 3)
    4.377
    """
    from scipy.optimize import brentq
    from scipy.stats import norm

    def excess(eps):
        return norm.cdf(mu / 2 - eps / mu) - math.exp(eps) * norm.cdf(-mu / 2 - eps / mu) - delta

    if excess(0.0) <= 0:
        return 0.0
    hi = 1.0
    while excess(hi) > 0:
        hi *= 2
    return float(brentq(excess, 0.0, hi, xtol=1e-10, rtol=1e-10))


def epsilon_without_amplification(*, noise_multiplier: float, delta: float, sample_rate: float, steps: int,
                                  neighbouring: str = "replace-one", n_private: int | None = None) -> float:
    """Epsilon when sampling does not hide who was sampled: delta/2 pays for the rows sampled more
    than `participations(sample_rate, steps, delta/2)` times, and that many Gaussian mechanisms of
    sensitivity C (add-remove) or 2C (replace-one) at noise noise_multiplier * C spend the rest.

    >>> round(epsilon_without_amplification(noise_multiplier=1.12, delta=1 / 22000, sample_rate=32 / 22246,
    ...                                     steps=17379, neighbouring="add-remove"), 1)
    43.6
    """
    check_privacy_parameters(delta=delta, sample_rate=sample_rate, steps=steps, noise_multiplier=noise_multiplier,
                             n_private=n_private, accountant="pld", neighbouring=neighbouring)
    k = participations(sample_rate, int(steps), delta / 2)
    sensitivity = 2.0 if neighbouring == "replace-one" else 1.0
    return gaussian_epsilon(sensitivity * math.sqrt(k) / noise_multiplier, delta / 2) if k else 0.0


def calibrate_noise(*, target_epsilon: float, delta: float, sample_rate: float, steps: int, accountant: str = "rdp",
                    neighbouring: str = "add-remove", n_private: int | None = None,
                    amplification: bool = True) -> float:
    """The smallest noise multiplier (to 0.1% relative) whose epsilon is <= target_epsilon
    (`amplification=False`: by `epsilon_without_amplification`).

    >>> run = dict(delta=1e-5, sample_rate=0.01, steps=1000)
    >>> s = calibrate_noise(target_epsilon=2.0, **run)
    >>> epsilon_spent(noise_multiplier=s, **run) <= 2.0 < epsilon_spent(noise_multiplier=s * 0.998, **run)
    True
    """
    check_privacy_parameters(epsilon=target_epsilon, delta=delta, sample_rate=sample_rate, steps=steps,
                             n_private=n_private, accountant=accountant if amplification else "pld", neighbouring=neighbouring)

    seen: dict[float, float] = {}     # noise multiplier -> epsilon, every one evaluated

    def eps(sigma):
        if not amplification:
            seen[sigma] = epsilon_without_amplification(noise_multiplier=sigma, delta=delta, sample_rate=sample_rate,
                                                        steps=steps, neighbouring=neighbouring)
        else:
            seen[sigma] = epsilon_spent(noise_multiplier=sigma, delta=delta, sample_rate=sample_rate, steps=steps,
                                        accountant=accountant, neighbouring=neighbouring)
        return seen[sigma]

    lo, hi = 0.0, 1.0
    while eps(hi) > target_epsilon:
        lo, hi = hi, hi * 2
        if hi > MAX_NOISE_MULTIPLIER:
            raise ValueError(f"epsilon={target_epsilon} at delta={delta}, sample_rate={sample_rate}, steps={steps} "
                             f"needs a noise multiplier above {MAX_NOISE_MULTIPLIER:g}: raise epsilon, or lower the "
                             f"sample rate or the number of steps")
    while hi - lo > 1e-3 * hi:
        mid = (lo + hi) / 2
        lo, hi = (lo, mid) if eps(mid) <= target_epsilon else (mid, hi)
    if not (e := eps(hi)) > 0:   # the accountant's numerics, not a guarantee: a reported epsilon is > 0
        positive = {v: k for k, v in seen.items() if v > 0}
        smallest = (f"{min(positive):.3g} (at noise multiplier {positive[min(positive)]:.4g})" if positive
                    else "none")
        raise ValueError(f"epsilon={target_epsilon} is below what the {accountant if amplification else 'exact'} "
                         f"accountant can represent at delta={delta}, sample_rate={sample_rate:.4g}, steps={steps}: it "
                         f"reports {e:.3g} at noise multiplier {hi:.4g}. The smallest positive epsilon it gave on the "
                         f"way is {smallest}; ask for at least that")
    return hi


def record_epsilon(privacy: dict) -> float:
    """Epsilon from a record's own numbers (its privacy dict: noise_multiplier, delta, sample_rate,
    steps, accountant, neighbouring, amplification), under its own accountant and relation."""
    run = {k: privacy[k] for k in ("noise_multiplier", "delta", "sample_rate", "steps", "neighbouring")}
    if not privacy["amplification"]:
        return epsilon_without_amplification(**run)
    return epsilon_spent(accountant=privacy["accountant"], **run)
