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


def test_draw_pose_draws_a_bone_only_between_labelled_joints_and_hollows_the_hidden():
    import matplotlib.pyplot as plt

    from dphpe_core.pckh import NUM_JOINTS, SKELETON
    joints = np.stack([np.arange(NUM_JOINTS), np.arange(NUM_JOINTS)], 1).astype(float) * 2
    labelled = np.ones(NUM_JOINTS)
    labelled[0] = 0                                             # an unlabelled joint: its bones go too
    visible = labelled.copy()
    visible[5] = 0                                              # labelled but hidden: drawn hollow
    fig, ax = plt.subplots()
    plots.draw_pose(ax, np.zeros((40, 40, 3)), joints, labelled, visible=visible)
    bones = [ln for ln in ax.lines if len(ln.get_xdata()) == 2]
    dots = [ln for ln in ax.lines if len(ln.get_xdata()) == 1]
    assert len(bones) == sum(1 for a, b in SKELETON if 0 not in (a, b))
    assert len(dots) == NUM_JOINTS - 1
    hollow = [d for d in dots if d.get_markerfacecolor() == "none"]
    assert [tuple(d.get_xydata()[0]) for d in hollow] == [(10.0, 10.0)]
    plt.close(fig)


def test_joint_heatmaps_show_every_group_and_leave_out_the_spread():
    import pandas as pd
    t = pd.DataFrame({"Head": [90.0, 80.0], "Ankle": [50.0, 40.0], "Mean": [70.0, 60.0], "± 95% CI": [1.0, 2.0],
                      "seeds": [3, 3]}, index=pd.Index(["Non-private", "DP-SGD"], name="method"))
    fig = plots.joint_heatmaps({"PCKh@0.5": t, "PCKh@0.1": t / 2})
    heat = [ax for ax in fig.axes if ax.get_title()]
    assert [ax.get_title() for ax in heat] == ["PCKh@0.5", "PCKh@0.1"]
    assert [tk.get_text() for tk in heat[0].get_xticklabels()] == ["Head", "Ankle", "Mean"]
    assert sorted(float(tx.get_text()) for tx in heat[0].texts) == [40, 50, 60, 70, 80, 90]


def test_strategy_bars_draw_each_strategys_baseline_in_every_panel():
    import pandas as pd
    top = pd.DataFrame([dict(Method=m, pckh_mean=v, strategy=s, clip_norm=c) for m in ("DP-SGD", "FDP")
                        for s, v in (("finetune", 60.0), ("full", 55.0)) for c in (0.01, 0.1)])
    fig = plots.strategy_bars(top, {"finetune": 68.0, "full": 66.0, "scratch": 10.0}, errorbar=None)
    for ax in fig.axes:
        levels = sorted(ln.get_ydata()[0] for ln in ax.lines if ln.get_linestyle() == "--")
        assert levels == [66.0, 68.0]                         # a strategy not drawn has no line
