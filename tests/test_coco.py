import json

import numpy as np
import pytest

from conftest import shared_fixture
from dphpe_core import make_config
from dphpe_core.coco import COCO_TO_MPII, coco_source, read_coco
from dphpe_core.data import PoseDataset
from dphpe_core.pckh import J


def _coco(tmp_path, anns, images=({"id": 1, "file_name": "a.jpg", "width": 100, "height": 100},)):
    path = tmp_path / "k.json"
    path.write_text(json.dumps({"images": list(images), "annotations": anns}))
    return path


def test_mapping_covers_twelve_mpii_joints():
    assert len(COCO_TO_MPII) == 12
    assert COCO_TO_MPII[J["r_ankle"]] == 16 and COCO_TO_MPII[J["l_shoulder"]] == 5
    assert {J["pelvis"], J["thorax"], J["upper_neck"], J["head_top"]}.isdisjoint(COCO_TO_MPII)


def test_box_and_joints_hand_computed(tmp_path):
    kp = [0] * 51
    kp[16 * 3:16 * 3 + 3] = [30, 40, 2]    # right ankle, visible
    kp[5 * 3:5 * 3 + 3] = [10, 20, 1]      # left shoulder, labelled but occluded
    ann = {"id": 7, "image_id": 1, "bbox": [10, 20, 30, 80], "keypoints": kp, "iscrowd": 0}
    recs, skipped = read_coco(_coco(tmp_path, [ann, {**ann, "iscrowd": 1}, {**ann, "keypoints": [0] * 51}]))
    assert skipped == {"crowd": 1, "no keypoints": 1}
    r = recs[0]
    assert np.allclose(r["joints"][J["r_ankle"]], [30, 40]) and r["visible"][J["l_shoulder"]] == 0
    assert r["joints_vis"].sum() == 2
    # 30 x 80 box is taller than 3:4, so its width grows to 60; then x1.25
    assert r["box_width"] == pytest.approx(60 * 1.25)
    assert np.allclose(r["center"], [10 + 30 - 0.5, 20 + 40 - 0.5])


def test_bad_coco_input(tmp_path):
    with pytest.raises(ValueError, match="has 2 keypoints; expected 17"):
        read_coco(_coco(tmp_path, [{"id": 1, "image_id": 1, "bbox": [0, 0, 1, 1], "keypoints": [0] * 6}]))
    (tmp_path / "bad.json").write_text("{}")
    with pytest.raises(ValueError, match="not a COCO keypoints file"):
        read_coco(tmp_path / "bad.json")


def test_real_coco_sample_loads_and_crops():
    root = shared_fixture("coco-sample")
    src, skipped = coco_source(root)
    assert len(src) + sum(skipped.values()) == 14
    ds = PoseDataset(src, make_config("paper"), train=False, name="coco")
    for i in range(len(ds)):
        it = ds[i]
        lab = it["joints_vis"].numpy() > 0
        assert it["image"].shape == (3, 256, 192) and not lab[[6, 7, 8, 9]].any()
