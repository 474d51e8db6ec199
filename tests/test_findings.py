"""The findings rule: a difference inside seed noise is never a win."""

import math

import pandas as pd
import pytest

from dphpe_core.findings import check, difference, gain_difference, tally, verdict


def test_difference_agrees_with_scipys_welch_interval():
    from scipy import stats
    a, b = [61.0, 63.5, 62.2, 60.9], [55.0, 58.1, 56.4]
    d, half = difference(a, b)
    res = stats.ttest_ind(a, b, equal_var=False)
    lo, hi = res.confidence_interval(0.95)
    assert d == pytest.approx((lo + hi) / 2) and half == pytest.approx((hi - lo) / 2)


def test_verdicts():
    assert verdict(*difference([50, 51, 52], [40, 41, 42])) == "higher"
    assert verdict(*difference([40, 41, 42], [50, 51, 52])) == "lower"
    assert verdict(*difference([50, 45, 55], [49, 51, 53])) == "within seed noise"
    assert verdict(*difference([50], [40, 41, 42])) == "one seed" and math.isnan(difference([50], [40, 41])[1])
    assert tally([([1, 2, 3], [1, 2, 3]), ([9, 10, 11], [1, 2, 3])]) == \
        {"higher": 1, "lower": 0, "within seed noise": 1, "one seed": 0}


def test_gain_difference_with_equal_gains_is_within_noise():
    d, half = gain_difference([60, 62, 61], [50, 52, 51], [70, 72, 71], [60, 62, 61])
    assert d == pytest.approx(0.0) and half > 0 and verdict(d, half) == "within seed noise"


def _frame(hybrid_shift: float, noise: list[float]) -> pd.DataFrame:
    rows = []
    for s in ("finetune", "full"):
        for c in (0.01, 1.0):
            for e in (0.2, 0.8):
                for m, base in (("dpsgd", 40), ("pdp", 45), ("fdp", 44), ("hybrid", 45 + hybrid_shift)):
                    for seed, n in enumerate(noise):
                        rows.append(dict(strategy=s, clip_norm=c, epsilon=e, method=m, seed=seed, fdp_public="independent",
                                         n_private=1000, pckh_mean=base + n + (5 if s == "finetune" else 0)
                                         + (3 if c == 0.01 else 0)))
    return pd.DataFrame(rows)


def test_a_hybrid_inside_seed_noise_is_not_called_a_winner():
    f = check(_frame(0.5, [0.0, 2.0, -2.0]))
    assert f[0]["verdict"] == "inconclusive" and f[0]["higher"] == 0 and f[0]["within_seed_noise"] == 8
    assert "within seed noise (95% interval) in 8" in f[0]["text"]
    assert f[1]["verdict"] == "inconclusive" and f[2]["verdict"] == "supported"   # 3 points < the interval < 5
    assert f[3]["verdict"] in ("inconclusive", "contradicted")


def test_a_clear_hybrid_win_is_supported_and_single_seeds_are_counted_apart():
    f = check(_frame(4.0, [0.0, 0.5, -0.5]))
    assert f[0]["verdict"] == "supported" and f[0]["higher"] == 8
    one = check(_frame(4.0, [0.0]))
    assert one[0]["verdict"] == "untested" and one[0]["one_seed"] == 8 and "single seed" in one[0]["text"]


def test_a_reversed_difference_contradicts():
    f = check(_frame(-6.0, [0.0, 0.5, -0.5]))
    assert f[0]["verdict"] == "contradicted" and f[0]["lower"] == 8


def test_gap_recovery_interval_hand_computed():
    from dphpe_core.findings import gap_recovery_interval
    from scipy.stats import t
    r, h = gap_recovery_interval([60, 62, 64], [50, 50, 50], [70, 70, 70])
    assert r == pytest.approx(60.0)            # (62 - 50) / (70 - 50)
    assert h == pytest.approx(100 * t.ppf(0.975, 2) * (4 / 3) ** 0.5 / 20)   # only the method's seeds vary


def test_regime_table_picks_each_methods_best_c_and_recovers_at_equal_epsilon():
    from dphpe_core.regime import regime_table
    rows = []
    for n, shift in ((2000, 0.0), (22000, 10.0)):
        for seed in range(3):
            rows.append(dict(strategy="finetune", method="nonprivate", epsilon=None, clip_norm=None, seed=seed,
                             n_private=n, pckh_mean=70 + shift, snr=None, blurred_only=False, fdp_public=""))
            for m, c, v in (("dpsgd", 0.1, 40), ("dpsgd", 1.0, 30), ("hybrid", 0.1, 50), ("hybrid", 1.0, 55)):
                rows.append(dict(strategy="finetune", method=m, epsilon=0.8, clip_norm=c, seed=seed, n_private=n,
                                 pckh_mean=v + shift + seed, snr=100.0, blurred_only=False,
                                 fdp_public="independent" if m == "hybrid" else ""))
    reg = regime_table(pd.DataFrame(rows)).set_index(["n_private", "method"])
    assert reg.loc[(2000, "hybrid"), "clip_norm"] == 1.0 and reg.loc[(2000, "dpsgd"), "clip_norm"] == 0.1
    assert reg.loc[(2000, "hybrid"), "gap_recovery"] == pytest.approx(100 * (56 - 41) / (70 - 41))
    assert reg.loc[(22000, "hybrid"), "n_x_epsilon"] == pytest.approx(17600) and reg.loc[(2000, "dpsgd"), "n"] == 3


def test_the_papers_feature_dp_results_against_its_own_blurred_only_model():
    """PAPER.md: finetuning, blurred-only 83.61; at epsilon 0.8 the hybrid's best 82.61 (C 0.1), FDP's
    80.40 (C 0.01); full finetuning 70.32, hybrid 79.9 (C 0.1), FDP 59.0 (C 0.01)."""
    from dphpe_core.publicview import public_only_comparison
    from dphpe_core.results import paper_results
    t = public_only_comparison(paper_results()).set_index(["strategy", "what"])
    assert t.loc[("finetune", "blurred-only (epsilon 0)"), "mean"] == pytest.approx(83.61)
    assert t.loc[("finetune", "Hybrid at epsilon 0.8"), ["mean", "clip_norm", "above"]].tolist() == \
        pytest.approx([82.61, 0.1, -1.00])
    assert t.loc[("finetune", "FDP at epsilon 0.8"), ["mean", "clip_norm", "above"]].tolist() == \
        pytest.approx([80.40, 0.01, -3.21])
    assert t.loc[("full", "Hybrid at epsilon 0.8"), "above"] == pytest.approx(79.9 - 70.32)
    assert t.loc[("full", "FDP at epsilon 0.8"), "above"] == pytest.approx(59.0 - 70.32)
    assert "scratch" not in t.index.get_level_values(0)        # no private cells: nothing to compare


def test_feature_dp_curves_start_at_the_blurred_only_baseline():
    from dphpe_core.publicview import with_public_only
    rows = [dict(method="nonprivate", blurred_only=b, strategy="finetune", n_private=100, pckh_mean=v)
            for b, v in ((True, 40.0), (True, 44.0), (False, 70.0))]
    summary = pd.DataFrame(rows)
    stats = pd.DataFrame([dict(strategy="finetune", clip_norm=c, Method=m, epsilon=0.8, mean=50.0, ci95=1.0)
                          for c in (0.1, 1.0) for m in ("DP-SGD", "FDP", "Hybrid")])
    out = with_public_only(stats, summary)
    zero = out[out.epsilon == 0]
    assert sorted(zip(zero.clip_norm, zero.Method)) == [(0.1, "FDP"), (0.1, "Hybrid"), (1.0, "FDP"), (1.0, "Hybrid")]
    assert (zero["mean"] == 42.0).all() and (zero.n == 2).all()
    assert zero.ci95.iloc[0] == pytest.approx(12.706 * 8 ** 0.5 / 2 ** 0.5, rel=1e-3)   # t(0.975, 1) x sd / sqrt(n)
    assert len(out) == len(stats) + 4


def test_recovery_is_given_only_where_dpsgds_gap_is_clear_of_seed_noise():
    """The embedded book once printed 'the hybrid recovers -669.8% (± 599.2)' over a 2.4-point gap."""
    from dphpe_core import findings
    nonprivate, dpsgd, hybrid = [67.0, 67.5, 66.8], [65.5, 66.9, 64.2], [60.0, 61.0, 62.0]
    small = findings.recovery(hybrid, dpsgd, nonprivate)
    gap, half = findings.difference(nonprivate, dpsgd)
    assert gap < findings.GAP_MARGIN * half
    assert not small["shown"] and small["recovery"] != small["recovery"] and small["text"] == findings.NOT_SHOWN
    assert "gap within seed noise" in findings.recovery_sentence(small) and f"{gap:.1f} points" in findings.recovery_sentence(small)
    wide = findings.recovery(hybrid, [40.0, 41.0, 42.5], nonprivate)
    r, h = findings.gap_recovery_interval(hybrid, [40.0, 41.0, 42.5], nonprivate)
    assert wide["shown"] and wide["recovery"] == pytest.approx(r) and wide["ci"] == pytest.approx(h)
    assert not findings.recovery([82.61], [63.85], [89.36])["shown"]          # single seeds: only when asked
    frame = pd.DataFrame([dict(clip_norm=0.1, epsilon=0.8, method=m, pckh_mean=v)
                          for m, vals in (("dpsgd", dpsgd), ("hybrid", hybrid)) for v in vals])
    table = findings.recovery_table(frame, nonprivate)
    assert list(table.method) == ["hybrid"] and table.text.iloc[0] == findings.NOT_SHOWN
    assert table.points.iloc[0] == pytest.approx(sum(hybrid) / 3 - sum(dpsgd) / 3)
