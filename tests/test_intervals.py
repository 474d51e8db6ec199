"""intervals.py: seed intervals, their text, the paper's gap recovery."""

import pandas as pd
import pytest
from scipy import stats

from dphpe_core import intervals


def test_ci95_is_the_t_interval_half_width():
    assert intervals.ci95(2.0, 5) == pytest.approx(stats.t.ppf(0.975, 4) * 2.0 / 5 ** 0.5)
    assert intervals.ci95(1.0, 1) != intervals.ci95(1.0, 1)          # nan: one seed has no interval
    lo, hi = intervals.t_interval([1.0, 2.0, 3.0])
    assert (lo + hi) / 2 == pytest.approx(2.0) and hi - lo == pytest.approx(2 * intervals.ci95(1.0, 3))


def test_seed_stats_and_their_text():
    df = pd.DataFrame(dict(method=["a", "a", "a", "b"], pckh_mean=[60.0, 62.0, 64.0, 50.0]))
    s = intervals.seed_stats(df, ["method"]).set_index("method")
    assert s.loc["a", "mean"] == 62.0 and s.loc["a", "n"] == 3 and s.loc["b", "n"] == 1
    assert intervals.mean_ci_text(s.reset_index()) == [f"62.0 ± {intervals.ci95(2.0, 3):.1f}", "50.0"]


def test_gap_recovery_is_the_share_won_back():
    assert intervals.gap_recovery(80.0, 60.0, 90.0) == pytest.approx(2 / 3)
    assert intervals.gap_recovery(60.0, 60.0, 90.0) == 0.0 and intervals.gap_recovery(50.0, 60.0, 90.0) < 0
