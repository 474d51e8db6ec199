"""The one-run audit: the bound by hand, its ceiling, and its power and soundness on real mechanisms."""

import json
import math

import numpy as np
import pytest
from scipy.stats import binom

from dphpe_core import make_config
from dphpe_core.audit import run_audit
from dphpe_core.audit_stats import best_bound, epsilon_lower_bound, p_value


def test_p_value_is_the_binomial_tail_without_delta():
    q = 1 / (1 + math.exp(-0.5))
    assert p_value(500, 80, 60, 0.5, 0.0) == pytest.approx(binom.sf(59, 80, q))
    assert p_value(500, 80, 60, 0.5, 1e-4) > p_value(500, 80, 60, 0.5, 0.0)     # the delta term adds
    with pytest.raises(ValueError, match="guesses"):
        p_value(10, 20, 5, 0.0, 0.0)


def test_bound_is_zero_at_chance_and_grows_with_correct_guesses():
    assert epsilon_lower_bound(1000, 200, 100, delta=1e-5) == 0.0
    bounds = [epsilon_lower_bound(1000, 200, v, delta=1e-5) for v in range(100, 201, 10)]
    assert bounds == sorted(bounds) and bounds[-1] > bounds[0]


def test_the_ceiling_of_a_perfect_attack():
    """All m guesses right, delta 0: the bound is the epsilon at which q^m = alpha (hand-computed)."""
    m, alpha = 1000, 0.05
    q = alpha ** (1 / m)
    assert epsilon_lower_bound(m, m, m, delta=0.0, alpha=alpha) == pytest.approx(math.log(q / (1 - q)), rel=1e-6)
    with_delta = epsilon_lower_bound(m, m, m, delta=1e-5, alpha=alpha)
    assert 5 < with_delta < math.log(q / (1 - q))        # AUDIT.md: near 5-6 at m = 1,000, delta 1e-5


def test_best_bound_splits_alpha_over_its_tries():
    rng = np.random.default_rng(0)
    bits = rng.integers(0, 2, 1000)
    scores = {"perfect": bits + rng.normal(0, 0.01, 1000), "noise": rng.normal(0, 1, 1000)}
    best = best_bound(scores, bits, delta=1e-5)
    assert best["rule"] == "perfect" and best["correct"] == best["guesses"] and best["tries"] == 12
    alone = epsilon_lower_bound(1000, best["guesses"], best["correct"], delta=1e-5, alpha=0.05)
    assert 0 < best["epsilon_lower_bound"] < alone


@pytest.fixture(scope="module")
def audit_cfg(cache_dir, tmp_path_factory):
    return make_config("smoke", cache_dir=cache_dir, results_dir=str(tmp_path_factory.mktemp("audit")), device="cpu",
                       delta=1e-5)


@pytest.mark.slow
@pytest.mark.parametrize("sabotage", ["noise-div-10", "no-clip"])
def test_a_sabotaged_mechanism_is_caught(audit_cfg, sabotage):
    r = run_audit(audit_cfg.replace(method="dpsgd"), sabotage=sabotage, progress=False)
    assert r.epsilon_lower_bound > r.epsilon_claimed, r.summary()


@pytest.mark.slow
@pytest.mark.parametrize("method, public", [("dpsgd", "independent"), ("pdp", "independent"), ("fdp", "independent"),
                                            ("fdp", "same-batch"), ("fdp", "public-set"), ("hybrid", "independent")])
def test_a_correct_mechanism_never_audits_above_its_claim(audit_cfg, method, public):
    r = run_audit(audit_cfg.replace(method=method, fdp_public=public), progress=False)
    assert 0 <= r.epsilon_lower_bound <= r.epsilon_claimed, r.summary()
    assert r.steps == 6 and len(r.scores_in) + len(r.scores_out) == r.canaries
    assert r.neighbouring == ("replace-one" if method in ("fdp", "hybrid") and public != "public-set" else "add-remove")
    if method in ("pdp", "hybrid"):            # audited before the projection, which would erase the canaries
        assert "before the projection" in r.what and np.abs(r.scores_in).sum() > 0


@pytest.mark.slow
def test_the_papers_same_batch_variant_fails_its_claim_and_the_independent_one_does_not(audit_cfg):
    """At the paper's accounting (add/remove, amplified) and claimed epsilon 0.8, with a small
    sampling rate and many steps as in the study (batch 1 of 96: q ~ 0.01, 96 steps)."""
    cfg = audit_cfg.replace(method="fdp", expected_batch_size=1, epochs=1, public_weight_fdp=1.0)   # the paper's lambda
    same = run_audit(cfg.replace(fdp_public="same-batch"), accounting="paper", progress=False)
    independent = run_audit(cfg.replace(fdp_public="independent"), accounting="paper", progress=False)
    assert same.epsilon_claimed == independent.epsilon_claimed == 0.8
    assert same.epsilon_lower_bound > 0.8 and "public part" in same.rule, same.summary()
    assert independent.epsilon_lower_bound <= 0.8, independent.summary()


def test_bad_audit_requests_are_refused(audit_cfg):
    with pytest.raises(ValueError, match="claims no epsilon"):
        run_audit(audit_cfg, progress=False)
    with pytest.raises(ValueError, match="sabotage='half'"):
        run_audit(audit_cfg.replace(method="dpsgd"), sabotage="half", progress=False)
    with pytest.raises(ValueError, match="accounting='none'"):
        run_audit(audit_cfg.replace(method="dpsgd"), accounting="none", progress=False)


@pytest.mark.slow
def test_cli_prints_the_table_and_writes_the_fields(audit_cfg, tmp_path, capsys):
    from dphpe_core.cli import main
    out = tmp_path / "audit.json"
    assert main(["audit", "--preset", "smoke", "--method", "dpsgd", "--canaries", "200", "--json", str(out),
                 "--set", f"cache_dir={audit_cfg.cache_dir}", "--set", f"results_dir={audit_cfg.results_dir}",
                 "--set", "delta=1e-5"]) == 0
    d = json.loads(out.read_text())
    for key in ("epsilon_claimed", "epsilon_lower_bound", "canaries", "guesses", "correct", "method", "fdp_public",
                "delta"):
        assert key in d
    assert d["canaries"] == 200 and "lower bound" in capsys.readouterr().out


def test_the_power_ceiling_is_the_bound_of_a_perfect_attacker():
    from dphpe_core.audit_stats import guess_counts, power_ceiling
    bits = np.random.default_rng(3).permutation(np.repeat([0, 1], 500))    # balanced: every k can be all right
    perfect = best_bound({"perfect": bits.astype(float)}, bits, delta=1e-5)
    assert perfect["correct"] == perfect["guesses"]
    assert perfect["epsilon_lower_bound"] == pytest.approx(power_ceiling(1000, delta=1e-5))
    assert guess_counts(1000) == [10, 25, 50, 100, 250, 500]
    assert power_ceiling(500, delta=0.01) == 0.0            # 2 m delta = 10: no guesses can reject anything


def test_an_audit_without_power_is_refused_or_labelled(audit_cfg, capsys):
    """The smoke preset's own delta (0.01) with 500 canaries: 2 m delta >= 1, so even a mechanism without
    clipping (10 of 10 right) showed a bound of 0, which read as a pass."""
    cfg = audit_cfg.replace(method="dpsgd", delta=0.0)       # 0: the smoke preset's 1/N rule, 0.01
    with pytest.raises(ValueError, match=r"no power: 500 canaries at delta 0.01 can show a bound of at most 0.*"
                                         r"Use .*delta [0-9.e-]+ with 500 canaries"):
        run_audit(cfg, canaries=500, sabotage="no-clip", progress=False)
    r = run_audit(cfg, canaries=500, sabotage="no-clip", progress=False, allow_no_power=True)
    assert r.ceiling == 0.0 < r.epsilon_claimed
    from dphpe_core.audits import audit_table
    assert audit_table([r]).iloc[0]["power"] == "no power"
