import numpy as np
import pytest

from dphpe_core.pckh import (GROUP_NAMES, JOINT_NAMES, head_size_from_box, pckh_groups, pckh_per_joint,
                             summarize)


def hrnet_reference(preds, pos_gt_src, jnt_missing, headboxes_src, threshold):
    """HRNet's MPII evaluation, transcribed independently (arrays in its (16, 2, N) layout)."""
    pos_pred_src = np.transpose(preds, [1, 2, 0])
    jnt_visible = 1 - jnt_missing
    uv_err = np.linalg.norm(pos_pred_src - pos_gt_src, axis=1)
    headsizes = np.linalg.norm(headboxes_src[1] - headboxes_src[0], axis=0) * 0.6
    scaled = np.multiply(uv_err / (headsizes * np.ones((len(uv_err), 1))), jnt_visible)
    jnt_count = np.sum(jnt_visible, axis=1)
    less = np.multiply(scaled <= threshold, jnt_visible)
    pck = np.divide(100.0 * np.sum(less, axis=1), jnt_count)
    pck = np.ma.array(pck, mask=False)
    pck.mask[6:8] = True
    cnt = np.ma.array(jnt_count, mask=False)
    cnt.mask[6:8] = True
    ratio = cnt / np.sum(cnt).astype(np.float64)
    names = dict(Head=(9,), Shoulder=(12, 13), Elbow=(11, 14), Wrist=(10, 15), Hip=(2, 3), Knee=(1, 4), Ankle=(0, 5))
    out = {k: float(np.mean([pck[i] for i in v])) for k, v in names.items()}
    out["Mean"] = float(np.sum(pck * ratio))
    return out


@pytest.mark.parametrize("threshold", [0.1, 0.2, 0.35, 0.5, 1.0])
def test_agrees_with_hrnet_transcription(threshold):
    rng = np.random.default_rng(int(threshold * 100))
    n = 200
    gt = rng.uniform(0, 500, (n, 16, 2))
    boxes = np.concatenate([gt[:, 9] - 20, gt[:, 9] + rng.uniform(10, 40, (n, 2))], axis=1)
    head = head_size_from_box(boxes)
    preds = gt + rng.normal(0, 1, (n, 16, 2)) * head[:, None, None] * rng.uniform(0.05, 0.8, (n, 16, 1))
    missing = rng.uniform(size=(n, 16)) < 0.15
    ours = pckh_groups(preds, gt, ~missing, head, threshold)
    ref = hrnet_reference(preds, np.transpose(gt, (1, 2, 0)), missing.T.astype(float),
                          np.transpose(boxes.reshape(n, 2, 2), (1, 2, 0)), threshold)
    for k in GROUP_NAMES:
        assert ours[k] == pytest.approx(ref[k], abs=1e-9), k


def test_hand_computed_case():
    # two people, head sizes 10 and 20; threshold 0.5 -> radii 5 and 10
    gt = np.zeros((2, 16, 2))
    preds = np.zeros((2, 16, 2))
    preds[0, 9] = (3, 4)      # head top: error 5 -> 0.5 -> correct (<=)
    preds[1, 9] = (0, 10.5)   # 10.5 / 20 > 0.5 -> wrong
    preds[0, 12] = (6, 0)     # r_shoulder wrong for person 0
    labelled = np.ones((2, 16), bool)
    labelled[1, 13] = False   # l_shoulder unlabelled for person 1
    pck, count = pckh_per_joint(preds, gt, labelled, np.array([10.0, 20.0]), 0.5)
    assert pck[9] == 50.0 and pck[12] == 50.0 and pck[13] == 100.0
    assert count[13] == 1 and count[0] == 2
    s = summarize(pck, count)
    assert s["Head"] == 50.0 and s["Shoulder"] == 75.0 and s["Ankle"] == 100.0
    # Mean over 14 joints (pelvis and thorax out) weighted by count: 27 labelled, 25 correct
    assert s["Mean"] == pytest.approx(100 * 25 / 27)


def test_head_size_is_point_six_of_the_box_diagonal():
    assert head_size_from_box([0, 0, 30, 40]) == pytest.approx(30.0)


def test_unlabelled_and_excluded_joints_do_not_count():
    rng = np.random.default_rng(0)
    gt = rng.uniform(0, 100, (10, 16, 2))
    lab = rng.uniform(size=(10, 16)) > 0.2
    base = pckh_groups(gt + 1, gt, lab, np.full(10, 8.0))
    moved = gt + 1
    moved[~lab] += 1000                     # unlabelled joints anywhere
    moved[:, [6, 7]] += 1000                # pelvis and thorax wrong
    after = pckh_groups(moved, gt, lab, np.full(10, 8.0))
    assert after == base
    moved[:, 8] += 1000                     # upper neck wrong: it counts in Mean
    assert pckh_groups(moved, gt, lab, np.full(10, 8.0))["Mean"] < base["Mean"]


def test_joint_never_labelled_gives_nan_not_a_crash():
    gt = np.zeros((3, 16, 2))
    lab = np.ones((3, 16), bool)
    lab[:, 0] = False
    s = pckh_groups(gt, gt, lab, np.ones(3))
    assert np.isnan(s["Ankle"]) and s["Mean"] == 100.0


@pytest.mark.parametrize("kwargs, msg", [
    (dict(pred=np.zeros((2, 16, 2)), gt=np.zeros((2, 15, 2))), "same|shape"),
    (dict(head_size=np.zeros(2)), "head_size must be > 0"),
    (dict(threshold=0.0), "threshold"),
])
def test_bad_input_is_refused(kwargs, msg):
    args = dict(pred=np.zeros((2, 16, 2)), gt=np.zeros((2, 16, 2)), labelled=np.ones((2, 16)), head_size=np.ones(2),
                threshold=0.5)
    args.update(kwargs)
    with pytest.raises(ValueError, match=msg):
        pckh_per_joint(**args)


def test_joint_order_is_mpii():
    assert JOINT_NAMES[0] == "r_ankle" and JOINT_NAMES[9] == "head_top" and JOINT_NAMES[15] == "l_wrist"
