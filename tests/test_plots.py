"""Figure helpers draw what their data says (checked on the artists they draw)."""

import matplotlib

matplotlib.use("Agg")
import numpy as np
import pytest

from dphpe_core import plots


def test_toy_dp_step_clips_every_gradient_to_the_norm():
    grads = np.array([[3.0, 4.0], [0.1, 0.0], [-6.0, 8.0]])
    fig = plots.toy_dp_step(grads, clip_norm=1.0, noise_multiplier=0.0)
    clipped = fig.axes[1].collections[0]                 # the quiver of clipped gradients
    uv = np.column_stack([clipped.U, clipped.V])
    assert np.linalg.norm(uv, axis=1) == pytest.approx([1.0, 0.1, 1.0])
    noisy = fig.axes[2].collections[0].get_offsets()      # no noise: every draw is the clipped mean
    assert np.allclose(noisy, uv.mean(0))
