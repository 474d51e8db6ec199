import numpy as np
import pytest
import torch
from torch.utils.data import DataLoader, default_collate

from dphpe_core import build_data, make_config
from dphpe_core import data as data_mod
from dphpe_core.data import PoseDataset, SynthPoseSource
from dphpe_core.transforms import swap_left_right

KEYS = {"image", "joints", "joints_vis", "visible", "target_x", "target_y", "target_weight", "head_size", "affine",
        "index", "person_id", "attributes"}


def test_bundle_sizes_follow_the_config(smoke_bundle, smoke_cfg):
    b = smoke_bundle
    assert (len(b.private_train), len(b.public), len(b.val)) == (smoke_cfg.n_private, smoke_cfg.n_public, smoke_cfg.n_val)
    assert b.private_train.train and b.public.train and not b.val.train


def test_items_collate_with_default_collate(smoke_bundle, smoke_cfg):
    loader = DataLoader(smoke_bundle.val, batch_size=8, collate_fn=default_collate)
    batch = next(iter(loader))
    assert set(batch) == KEYS
    h, w, k = smoke_cfg.input_h, smoke_cfg.input_w, smoke_cfg.simcc_split
    assert batch["image"].shape == (8, 3, h, w)
    assert batch["target_x"].shape == (8, 16, int(w * k)) and batch["target_y"].shape == (8, 16, int(h * k))
    assert batch["attributes"]["top_rgb"].shape == (8, 3)
    assert batch["person_id"].dtype == torch.int64


def test_val_items_are_the_rendered_crops(smoke_bundle):
    src = smoke_bundle.val.source
    it = smoke_bundle.val[3]
    assert np.allclose(it["joints"].numpy(), src.a["joints"][3], atol=1e-4)
    assert torch.equal(it["joints_vis"], torch.as_tensor(src.a["joints_vis"][3]))
    side = src.a["head_box"][3][2] - src.a["head_box"][3][0]
    assert it["head_size"].item() == pytest.approx(0.6 * np.sqrt(2) * side, rel=1e-5)
    assert smoke_bundle.val[3]["image"].equal(it["image"])


def test_flip_augmentation_mirrors_and_swaps(smoke_cfg, smoke_bundle, monkeypatch):
    src = smoke_bundle.private_train.source
    plain = PoseDataset(src, smoke_cfg, train=False, name="plain")[0]
    monkeypatch.setattr(data_mod, "sample_jitter", lambda *a, **k: (1.0, 0.0, True))
    flipped = PoseDataset(src, smoke_cfg, train=True, name="flip")[0]
    w = smoke_cfg.input_w
    expect = swap_left_right(plain["joints"].numpy())
    expect[:, 0] = w - 1 - expect[:, 0]
    assert np.allclose(flipped["joints"].numpy(), expect, atol=1e-4)
    assert torch.allclose(flipped["image"], plain["image"].flip(-1), atol=1e-5)
    assert torch.equal(flipped["joints_vis"], torch.as_tensor(swap_left_right(plain["joints_vis"].numpy())))


def test_scale_jitter_scales_the_head_size(smoke_cfg, smoke_bundle, monkeypatch):
    src = smoke_bundle.private_train.source
    plain = PoseDataset(src, smoke_cfg, train=False, name="plain")[1]
    monkeypatch.setattr(data_mod, "sample_jitter", lambda *a, **k: (1.25, 17.0, False))
    jit = PoseDataset(src, smoke_cfg, train=True, name="jit")[1]
    assert jit["head_size"].item() == pytest.approx(plain["head_size"].item() / 1.25, rel=1e-5)


def test_training_augmentation_is_seeded(smoke_bundle):
    torch.manual_seed(0)
    a = smoke_bundle.private_train[5]["joints"]
    torch.manual_seed(0)
    assert torch.equal(a, smoke_bundle.private_train[5]["joints"])


def test_empty_split_is_refused(smoke_cfg, smoke_bundle):
    empty = SynthPoseSource({k: v[:0] for k, v in smoke_bundle.val.source.a.items()}, "val")
    with pytest.raises(ValueError, match="the empty_val split is empty"):
        PoseDataset(empty, smoke_cfg, train=False, name="empty_val")


def test_paper_preset_without_data_names_the_folder(tmp_path):
    with pytest.raises(FileNotFoundError, match="data_root .* does not exist"):
        build_data(make_config("paper", data_root=str(tmp_path / "nope")))


def test_a_whole_batch_equals_the_items_it_collates(smoke_bundle):
    import torch
    from torch.utils.data import default_collate
    ds = smoke_bundle.val                                       # no augmentation: every value must agree
    idx = [3, 0, 7, 5]
    fast, slow = ds.batch(idx), default_collate([ds[i] for i in idx])
    assert set(fast) == set(slow)
    for key, value in slow.items():
        if key == "attributes":
            assert all(torch.equal(torch.as_tensor(value[a]), fast[key][a]) for a in value)
        else:
            assert torch.allclose(torch.as_tensor(value).double(), fast[key].double(), atol=1e-4), key


def test_an_augmented_batch_moves_image_and_labels_together(smoke_bundle):
    import numpy as np
    import torch
    from dphpe_core import simcc
    from dphpe_core.transforms import apply_affine, to_model_input, warp_image
    ds = smoke_bundle.private_train
    torch.manual_seed(3)
    batch = ds.batch(list(range(12)))
    m = batch["affine"].numpy()
    assert len({tuple(np.round(x.ravel(), 6)) for x in m}) == 12           # each crop jittered on its own
    flipped = 0
    for i in range(12):
        s = ds.source.sample(i)
        joints = apply_affine(s.joints, m[i])
        if np.linalg.det(m[i][:, :2]) < 0:                                 # mirrored: left and right swap
            flipped += 1
            joints = joints[ds_flip_perm()]
        assert np.allclose(batch["joints"][i].numpy(), joints, atol=1e-4)
        tx, ty, tw = simcc.encode(batch["joints"][i].numpy(), batch["target_weight"][i].numpy(), width=48, height=64,
                                  split=2.0, sigma=ds.cfg.simcc_sigma)
        assert torch.allclose(tx, batch["target_x"][i], atol=1e-6) and torch.allclose(ty, batch["target_y"][i], atol=1e-6)
        pil = to_model_input(warp_image(s.image, m[i], (64, 48)))            # the per-item warp of the same matrix
        assert (pil - batch["image"][i]).abs().mean() < 0.1
    assert 0 < flipped < 12


def ds_flip_perm():
    from dphpe_core.transforms import FLIP_PERM
    return FLIP_PERM


def test_loaders_take_whole_batches_and_empty_ones(smoke_bundle):
    from dphpe_core.data import collate
    assert collate([]) is None and collate({"image": 1}) == {"image": 1}
    assert collate(smoke_bundle.val.batch([])) is None


def test_batched_affine_inverses_are_the_single_ones_to_the_bit():
    import numpy as np

    from dphpe_core.data import invert_affines
    from dphpe_core.transforms import crop_affine, invert_affine
    rng = np.random.default_rng(0)
    m = np.stack([crop_affine(rng.uniform(10, 50, 2), rng.uniform(20, 90), (64, 48), rotation_deg=rng.uniform(-60, 60),
                              flip=bool(rng.integers(2))) for _ in range(300)])
    batched = invert_affines(m)
    singles = np.stack([np.vstack([invert_affine(x), [0, 0, 1]]) for x in m])
    assert np.array_equal(batched, singles)
