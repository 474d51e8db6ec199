import json
import shutil

import numpy as np
import pytest

from conftest import shared_fixture
from dphpe_core import build_data, evaluate_mpii, make_config
from dphpe_core.data import PoseDataset
from dphpe_core.mpii import (MPIIError, MPIISource, mpii_sources, read_gt_valid, read_hrnet_json, read_release_mat,
                             write_gt_valid)
from dphpe_core.pckh import pckh_groups


def test_hrnet_conventions_hand_computed(tmp_path):
    rec = {"image": "a.jpg", "center": [101.0, 201.0], "scale": 2.0, "joints": [[11.0, 21.0]] * 16,
           "joints_vis": [1] * 15 + [0]}
    (tmp_path / "t.json").write_text(json.dumps([rec]))
    r = read_hrnet_json(tmp_path / "t.json")[0]
    assert np.allclose(r["center"], [100.0, 200.0 + 30.0])        # +15 x scale, then one-based -> zero-based
    assert r["box_width"] == pytest.approx(2.0 * 1.25 * 200)       # x1.25, x pixel_std
    assert np.allclose(r["joints"][0], [10.0, 20.0]) and r["joints_vis"][15] == 0


def test_loader_crops_back_to_the_original_person(mpii_fixture):
    cfg = make_config("embedded", input_h=128, input_w=96)
    train, val, skipped = mpii_sources(mpii_fixture["root"])
    assert skipped == {} and len(train) == 3 and len(val) == 3
    ds = PoseDataset(val, cfg, train=False, name="val")
    crops = mpii_fixture["crops"]
    for i in range(len(val)):
        k = 3 + i
        it = ds[i]
        lab = crops["joints_vis"][k] > 0
        # the pasted crop was enlarged by f and placed in a big image: the loader must undo exactly that
        assert np.allclose(it["joints"].numpy()[lab], crops["joints"][k][lab], atol=1e-3)
        from dphpe_core.transforms import to_display
        diff = np.abs(to_display(it["image"]) * 255 - crops["images"][k].astype(float))
        assert np.median(diff) < 12
        side = crops["head_box"][k][2] - crops["head_box"][k][0]
        assert it["head_size"].item() == pytest.approx(0.6 * np.sqrt(2) * side, rel=1e-3)


def test_release_mat_agrees_with_json_and_counts_skips(mpii_fixture):
    root = mpii_fixture["root"]
    from_json = read_hrnet_json(root / "annot" / "train.json")
    from_mat, skipped = read_release_mat(root / "mpii_human_pose_v1_u12_1.mat")
    assert skipped == {"no keypoints": 1}
    assert len(from_mat) == len(from_json) == 3
    for a, b, truth in zip(from_json, from_mat, mpii_fixture["train"]):
        assert a["image"] == b["image"]
        assert np.allclose(a["center"], b["center"]) and a["box_width"] == pytest.approx(b["box_width"])
        lab = a["joints_vis"] > 0
        assert np.array_equal(lab, b["joints_vis"] > 0)
        assert np.allclose(a["joints"][lab], b["joints"][lab])
        assert np.allclose(b["head_box"], truth["head_box"])


def test_release_mat_is_used_when_there_is_no_train_json(mpii_fixture, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(mpii_fixture["root"], root)
    (root / "annot" / "train.json").unlink()
    train, _, skipped = mpii_sources(root)
    assert len(train) == 3 and skipped == {"no keypoints": 1}


def test_gt_valid_round_trip(tmp_path):
    rng = np.random.default_rng(0)
    j, miss, box = rng.uniform(1, 100, (4, 16, 2)), rng.uniform(size=(4, 16)) < 0.2, rng.uniform(1, 50, (4, 4))
    write_gt_valid(tmp_path / "g.mat", j, miss, box)
    gt = read_gt_valid(tmp_path / "g.mat")
    assert np.allclose(gt["joints"], j) and np.array_equal(gt["missing"], miss) and np.allclose(gt["head_boxes"], box)


def test_evaluate_mpii_perfect_and_perturbed(mpii_fixture):
    gt_path = mpii_fixture["root"] / "annot" / "gt_valid.mat"
    truth = np.stack([p["joints"] for p in mpii_fixture["val"]])
    assert all(v == 100.0 for v in evaluate_mpii(truth, gt_path).values())
    rng = np.random.default_rng(1)
    preds = truth + rng.normal(0, 4, truth.shape)
    lab = np.stack([p["vis"] > 0 for p in mpii_fixture["val"]])
    from dphpe_core.pckh import head_size_from_box
    heads = head_size_from_box(np.stack([p["head_box"] for p in mpii_fixture["val"]]))
    for t in (0.1, 0.5):
        assert evaluate_mpii(preds, gt_path, threshold=t) == pytest.approx(pckh_groups(preds, truth, lab, heads, t),
                                                                        nan_ok=True)
    with pytest.raises(ValueError, match=r"preds have shape \(2, 16, 2\)"):
        evaluate_mpii(truth[:2], gt_path)
    with pytest.raises(ValueError, match=r"non-finite coordinates for 1 of .* people \(first: index 1\)"):
        evaluate_mpii(np.where(np.arange(len(truth))[:, None, None] == 1, np.nan, truth), gt_path)


def test_build_data_reads_mpii(mpii_fixture):
    cfg = make_config("paper", data_root=str(mpii_fixture["root"]), public_dataset="synthpose", n_public=20,
                      cache_dir=str(mpii_fixture["root"] / "cache"))
    b = build_data(cfg)
    assert len(b.private_train) == 3 and len(b.val) == 3 and b.val[0]["image"].shape == (3, 256, 192)


# -- bad input ------------------------------------------------------------------------------------

def _write(tmp_path, records):
    (tmp_path / "annot").mkdir(exist_ok=True)
    (tmp_path / "annot" / "bad.json").write_text(json.dumps(records))
    return tmp_path / "annot" / "bad.json"


GOOD = {"image": "a.jpg", "center": [50.0, 50.0], "scale": 0.5, "joints": [[10.0, 10.0]] * 16, "joints_vis": [1] * 16}


@pytest.mark.parametrize("record, msg", [
    ({**GOOD, "joints": [[1.0, 1.0]] * 15}, r"record 0: 'joints' has shape \(15, 2\); expected \(16, 2\)"),
    ({**GOOD, "joints_vis": [1] * 14}, r"'joints_vis' has 14 values; expected 16"),
    ({**GOOD, "joints_vis": [1] * 15 + [2]}, r"'joints_vis' holds \[2.0\]; expected 0 \(not labelled\) or 1"),
    ({**GOOD, "joints_vis": [-1] + [1] * 15}, r"'joints_vis' holds \[-1.0\]; expected 0"),
    ({k: v for k, v in GOOD.items() if k != "scale"}, r"lacks field\(s\) \['scale'\]"),
    ({**GOOD, "scale": -1}, "scale > 0"),
    ({**GOOD, "joints": [["a", 1]] * 16}, "non-numeric"),
])
def test_malformed_records_are_named(tmp_path, record, msg):
    with pytest.raises(MPIIError, match=msg):
        read_hrnet_json(_write(tmp_path, [record]))


def test_not_json_and_missing_file(tmp_path):
    (tmp_path / "x.json").write_text("{not json")
    with pytest.raises(MPIIError, match=r"x.json: not valid JSON"):
        read_hrnet_json(tmp_path / "x.json")
    with pytest.raises(FileNotFoundError, match="train.json"):
        read_hrnet_json(tmp_path / "train.json")
    (tmp_path / "y.mat").write_bytes(b"garbage")
    with pytest.raises(MPIIError, match="y.mat: cannot be read"):
        read_release_mat(tmp_path / "y.mat")


def test_missing_images_are_reported_up_front(tmp_path):
    recs = read_hrnet_json(_write(tmp_path, [GOOD, {**GOOD, "image": "b.jpg"}]))
    with pytest.raises(FileNotFoundError, match=r"2 image file\(s\) missing .*a.jpg"):
        MPIISource(recs, tmp_path / "images", name="train")


def test_joints_outside_the_image_are_named(tmp_path):
    from PIL import Image
    (tmp_path / "images").mkdir()
    Image.new("RGB", (100, 80)).save(tmp_path / "images" / "a.jpg")
    joints = [[10.0, 10.0]] * 16
    joints[10] = [500.0, 10.0]
    recs = read_hrnet_json(_write(tmp_path, [{**GOOD, "joints": joints}]))
    src = MPIISource(recs, tmp_path / "images", name="train")
    with pytest.raises(MPIIError, match=r"a.jpg: train record 0: labelled joint\(s\) \['r_wrist'\] lie outside the 100x80"):
        src.sample(0)


def test_empty_split_and_count_mismatch(mpii_fixture, tmp_path):
    with pytest.raises(ValueError, match="MPII split .val. is empty"):
        MPIISource([], tmp_path, name="val")
    root = tmp_path / "m"
    shutil.copytree(mpii_fixture["root"], root)
    (root / "annot" / "valid.json").write_text(json.dumps(json.loads((root / "annot" / "valid.json").read_text())[:2]))
    with pytest.raises(MPIIError, match="gt_valid.mat has 3 people but .*valid.json has 2"):
        mpii_sources(root)


# -- the real MPII sample in ../shared/fixtures -----------------------------------------------------

def test_real_mpii_sample_loads_crops_and_draws(tmp_path):
    root = shared_fixture("mpii-sample")
    import matplotlib
    matplotlib.use("Agg")
    from dphpe_core.plots import gallery
    recs = read_hrnet_json(root / "test_mpii.json")
    ds = PoseDataset(MPIISource(recs, root, name="sample"), make_config("paper"), train=True, name="sample")
    assert len(ds) == 5
    for i in range(len(ds)):
        it = ds[i]
        assert it["image"].shape == (3, 256, 192) and it["joints_vis"].sum() >= 8
        # the person fills the crop: labelled joints lie inside it
        j = it["joints"].numpy()[it["joints_vis"].numpy() > 0]
        assert j.min() >= 0 and j[:, 0].max() <= 191 and j[:, 1].max() <= 255
    fig = gallery(ds, range(5), ncols=5)
    fig.savefig(tmp_path / "mpii.png")
    assert (tmp_path / "mpii.png").stat().st_size > 10_000


def test_skipped_annotations_are_reported(mpii_fixture, tmp_path):
    root = tmp_path / "m"
    shutil.copytree(mpii_fixture["root"], root)
    (root / "annot" / "train.json").unlink()
    cfg = make_config("paper", data_root=str(root), public_dataset="synthpose", n_public=20,
                      cache_dir=str(tmp_path / "cache"))
    with pytest.warns(UserWarning, match=r"MPII: skipped annotations by reason \{'no keypoints': 1\} \(kept 3\)"):
        b = build_data(cfg)
    assert b.info["mpii_skipped"] == {"no keypoints": 1}
