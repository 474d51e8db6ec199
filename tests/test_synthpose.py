import numpy as np
import pytest

from dphpe_core import body
from dphpe_core import synthcache
from dphpe_core import synthpose as sp
from dphpe_core.pckh import J


@pytest.fixture(scope="module")
def chunk():
    return sp.render_chunk("private", 0, 128, 128, 96, 0)


def test_deterministic_and_independent_of_worker_count():
    a = sp.render_split("val", 300, height=64, width=48, seed=5, workers=1)
    b = sp.render_split("val", 300, height=64, width=48, seed=5, workers=2)
    for k in a:
        assert np.array_equal(a[k], b[k]), k
    c = sp.render_split("val", 300, height=64, width=48, seed=6, workers=1)
    assert not np.array_equal(a["images"], c["images"])


def test_shapes_and_types(chunk):
    n = 128
    assert chunk["images"].shape == (n, 128, 96, 3) and chunk["images"].dtype == np.uint8
    assert chunk["joints"].shape == (n, 16, 2) and chunk["joints_vis"].shape == (n, 16)
    assert chunk["head_box"].shape == (n, 4)
    for name in body.ATTRIBUTE_NAMES:
        assert f"attr_{name}" in chunk


def test_labelled_means_inside_the_crop_and_visible_implies_labelled(chunk):
    j, lab = chunk["joints"], chunk["joints_vis"] > 0
    inside = (j[..., 0] >= 0) & (j[..., 0] <= 95) & (j[..., 1] >= 0) & (j[..., 1] <= 127)
    assert np.array_equal(lab, inside)
    assert np.all(chunk["visible"] <= chunk["joints_vis"])
    # the study needs both truncation and self-occlusion
    assert 0.005 < 1 - lab.mean() < 0.2
    assert 0.02 < (lab & (chunk["visible"] == 0)).mean() < 0.3


def test_head_box_is_a_square_of_the_head_length(chunk):
    box = chunk["head_box"]
    side = box[:, 2:] - box[:, :2]
    assert np.allclose(side[:, 0], side[:, 1], atol=1e-3) and np.all(side > 0)
    mid = (box[:, :2] + box[:, 2:]) / 2
    assert np.allclose(mid, (chunk["joints"][:, 8] + chunk["joints"][:, 9]) / 2, atol=1e-3)
    # the 2-D neck-to-top distance can only shrink under foreshortening (up to perspective)
    d = np.linalg.norm(chunk["joints"][:, 9] - chunk["joints"][:, 8], axis=1)
    assert np.all(d <= side[:, 0] * 1.15)


def test_skeleton_bone_lengths_follow_the_proportions():
    rng = np.random.default_rng(0)
    p = body.sample_people(rng, 50, body.DOMAINS["private"])
    j = body.skeleton_3d(p)
    scale = p["height"] * p["limb_length"]
    for a, b, key in (("r_shoulder", "r_elbow", "uarm"), ("l_elbow", "l_wrist", "farm"),
                      ("r_hip", "r_knee", "thigh"), ("l_knee", "l_ankle", "shin")):
        length = np.linalg.norm(j[:, J[a]] - j[:, J[b]], axis=1)
        assert np.allclose(length, body.LENGTHS[key] * scale), key
    # knees never bend forwards: the shin turns back relative to the thigh
    bend = np.degrees(p["angles"][:, 12])
    assert np.all((bend >= 0) & (bend <= 140))


def test_splits_never_share_a_person():
    data = {s: sp.render_split(s, 300, height=64, width=48, seed=0, workers=1) for s in sp.SPLITS}
    ids = {s: set(d["person_id"].tolist()) for s, d in data.items()}
    assert len(ids["private"]) == len(ids["public"]) == len(ids["val"]) == 300
    assert not ids["private"] & ids["public"] and not ids["private"] & ids["val"] and not ids["public"] & ids["val"]

    def identity(d):
        return {tuple(np.round(np.concatenate([d["attr_skin_rgb"][i], d["attr_top_rgb"][i], d["attr_bottom_rgb"][i],
                                              [d["attr_height"][i], d["attr_girth"][i]]]), 3)) for i in range(300)}
    idents = {s: identity(d) for s, d in data.items()}
    assert not idents["private"] & idents["public"] and not idents["private"] & idents["val"]


def test_public_and_private_domains_look_different():
    pub = sp.render_split("public", 256, height=64, width=48, seed=0, workers=1)
    pri = sp.render_split("private", 256, height=64, width=48, seed=0, workers=1)
    # public: brighter scenes, clothing hues centred elsewhere
    assert pub["images"].mean() > pri["images"].mean() + 5

    def mean_hue(rgb):
        import colorsys
        h = np.array([colorsys.rgb_to_hsv(*(c / 255))[0] for c in rgb])
        return np.angle(np.exp(2j * np.pi * h).mean()) / (2 * np.pi) % 1
    assert abs(mean_hue(pub["attr_top_rgb"]) - mean_hue(pri["attr_top_rgb"])) > 0.2


def test_cache_is_reused(tmp_path, monkeypatch):
    a = synthcache.load_split("val", 40, height=64, width=48, seed=1, cache_dir=str(tmp_path), progress=False)
    monkeypatch.setattr(sp, "render_split", lambda *a, **k: pytest.fail("re-rendered a cached split"))
    b = synthcache.load_split("val", 40, height=64, width=48, seed=1, cache_dir=str(tmp_path), progress=False)
    for k in a:
        assert np.array_equal(a[k], b[k])
    assert synthcache.cache_path(str(tmp_path), "val", 40, 64, 48, 1).name.startswith(f"v{sp.GENERATOR_VERSION}-")


@pytest.mark.parametrize("split, n, msg", [("train", 10, "unknown SynthPose split"), ("val", 0, "at least one")])
def test_bad_requests_are_refused(split, n, msg):
    with pytest.raises(ValueError, match=msg):
        sp.render_split(split, n, height=64, width=48)


def test_a_corrupt_or_mismatched_cache_names_its_file_and_how_to_rebuild(tmp_path):
    import json

    from dphpe_core.synthcache import MANIFEST, cache_path, load_split
    kw = dict(height=64, width=48, seed=0, cache_dir=str(tmp_path))
    first = load_split("val", 8, progress=False, **kw)
    folder = cache_path(str(tmp_path), "val", 8, 64, 48, 0)
    assert json.loads((folder / MANIFEST).read_text())["arrays"]["images"]["shape"] == [8, 64, 48, 3]
    again = load_split("val", 8, progress=False, **kw)              # the manifest agrees: read as it is
    assert (np.asarray(again["images"]) == np.asarray(first["images"])).all()
    joints = folder / "joints.npy"
    joints.write_bytes(joints.read_bytes()[:100])                    # truncated
    with pytest.raises(ValueError, match=r"SynthPose cache .*: joints.npy cannot be read .*delete that folder"):
        load_split("val", 8, progress=False, **kw)
    np.save(joints, np.zeros((8, 16, 2), np.float64))                # readable, but not what was written
    with pytest.raises(ValueError, match=rf"disagree with {MANIFEST} in \['arrays'\]"):
        load_split("val", 8, progress=False, **kw)
    np.save(joints, np.zeros((7, 16, 2), np.float32))
    with pytest.raises(ValueError, match=r"arrays \{'joints': 7\} do not hold 8 rows"):
        load_split("val", 8, progress=False, **kw)
