"""results.py: tables from hand-made summaries."""

import pandas as pd
import pytest

from dphpe_core import results


def test_regime_gives_the_noise_per_step_and_the_runs_signal_to_noise():
    r = results.regime(2.0, 0.1, 100, 400)
    assert r["noise_std_per_step"] == pytest.approx(0.002) and r["snr"] == pytest.approx(20 * 100 / 2.0)


def test_best_clip_takes_the_highest_mean_over_the_private_methods():
    rows = [dict(preset="x", method=m, strategy="finetune", epsilon=0.8, clip_norm=c, n_private=10, fdp_public="",
                 pckh_mean=v) for m, c, v in (("dpsgd", 0.1, 60.0), ("pdp", 0.1, 62.0), ("dpsgd", 1.0, 65.0),
                                              ("pdp", 1.0, 55.0))]
    assert results.best_clip(pd.DataFrame(rows), "finetune", 0.8) == 0.1         # 61 against 60
