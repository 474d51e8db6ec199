"""primer.py: the primer's epsilons are the accountant's own, and the subspace keeps the signal, not the noise."""

import math

import pytest

from dphpe_core import accounting, primer


def test_the_primers_epsilons_are_the_accountants_and_grow_with_steps_and_fall_with_noise():
    eps = primer.epsilon_grid(delta=1e-5)
    numbers = primer.epsilon_numbers(eps)
    for accountant in ("rdp", "prv"):
        assert numbers[f"primer_eps_{accountant}"] == pytest.approx(accounting.epsilon_spent(
            noise_multiplier=1.0, delta=1e-5, sample_rate=primer.PRIMER_Q, steps=primer.PRIMER_STEPS,
            accountant=accountant))
    rdp = eps[eps.accountant == "rdp"]
    assert rdp[(rdp.sigma == 1.0) & (rdp.q == 0.008)].sort_values("steps").epsilon.is_monotonic_increasing
    at = rdp[(rdp.q == primer.PRIMER_Q) & (rdp.steps == primer.PRIMER_STEPS)].drop_duplicates("sigma")
    assert at.sort_values("sigma").epsilon.is_monotonic_decreasing


def test_a_subspace_of_the_public_span_keeps_the_signal_and_about_sqrt_k_over_p_of_the_noise():
    kept = primer.kept_shares(p=500, rank=10, ks=(5, 10, 50))
    at = kept.set_index(["k", "part"]).kept
    assert at[(10, "signal")] == pytest.approx(1.0, abs=1e-9)       # k = rank: the whole span
    assert at[(5, "signal")] < 1.0
    assert at[(10, "noise")] == pytest.approx(math.sqrt(10 / 500), rel=0.6)
    assert primer.kept_numbers(kept, k=10) == {"kept_signal": pytest.approx(100.0), "kept_noise": 100 * at[(10, "noise")]}
