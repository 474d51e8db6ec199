"""results.py: seed intervals, the paper's gap recovery, tables from hand-made summaries."""

import pandas as pd
import pytest
from scipy import stats

from dphpe_core import results


def test_ci95_is_the_t_interval_half_width():
    assert results.ci95(2.0, 5) == pytest.approx(stats.t.ppf(0.975, 4) * 2.0 / 5 ** 0.5)
    assert results.ci95(1.0, 1) != results.ci95(1.0, 1)          # nan: one seed has no interval
    lo, hi = results.t_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0) and hi - lo == pytest.approx(2 * results.ci95(1.0, 3))


def test_seed_stats_and_their_text():
    df = pd.DataFrame(dict(method=["a", "a", "a", "b"], pckh_mean=[60.0, 62.0, 64.0, 50.0]))
    s = results.seed_stats(df, ["method"]).set_index("method")
    assert s.loc["a", "mean"] == 62.0 and s.loc["a", "n"] == 3 and s.loc["b", "n"] == 1
    assert results.mean_ci_text(s.reset_index()) == [f"62.0 ± {results.ci95(2.0, 3):.1f}", "50.0"]


def test_gap_recovery_is_the_share_won_back():
    assert results.gap_recovery(80.0, 60.0, 90.0) == pytest.approx(2 / 3)
    assert results.gap_recovery(60.0, 60.0, 90.0) == 0.0 and results.gap_recovery(50.0, 60.0, 90.0) < 0


def test_regime_gives_the_noise_per_step_and_the_runs_signal_to_noise():
    r = results.regime(2.0, 0.1, 100, 400)
    assert r["noise_std_per_step"] == pytest.approx(0.002) and r["snr"] == pytest.approx(20 * 100 / 2.0)


def test_best_clip_takes_the_highest_mean_over_the_private_methods():
    rows = [dict(preset="x", method=m, strategy="finetune", epsilon=0.8, clip_norm=c, n_private=10, fdp_public="",
                 pckh_mean=v) for m, c, v in (("dpsgd", 0.1, 60.0), ("pdp", 0.1, 62.0), ("dpsgd", 1.0, 65.0),
                                              ("pdp", 1.0, 55.0))]
    assert results.best_clip(pd.DataFrame(rows), "finetune", 0.8) == 0.1         # 61 against 60
