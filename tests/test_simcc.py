import math

import numpy as np
import pytest
import torch

from dphpe_core.simcc import decode, encode, kl_loss, to_source
from dphpe_core.transforms import apply_affine, crop_affine


@pytest.mark.parametrize("split, h, w", [(2.0, 128, 96), (2.0, 256, 192), (3.0, 64, 48), (1.0, 64, 48)])
def test_encode_decode_round_trip_within_one_bin(split, h, w):
    rng = np.random.default_rng(int(split * h))
    joints = rng.uniform(0, [w - 1, h - 1], (16, 2))
    tx, ty, tw = encode(joints, np.ones(16), width=w, height=h, split=split, sigma=2.0)
    assert tx.shape == (16, int(w * split)) and ty.shape == (16, int(h * split))
    # targets are log-probabilities up to a constant: decoding them as logits gives the argmax bin
    coords, _ = decode(torch.log(tx + 1e-30), torch.log(ty + 1e-30), split=split)
    err = np.abs(coords.numpy() - joints)
    assert err.max() <= 0.5 / split + 1e-6


def test_targets_are_normalised_gaussians_and_masked_outside():
    joints = np.array([[40.3, 60.7]] * 15 + [[-3.0, 10.0]])
    tx, ty, tw = encode(joints, np.ones(16), width=96, height=128, split=2.0, sigma=3.0)
    assert tx[0].sum().item() == pytest.approx(1.0, abs=1e-4)
    assert tx[0].argmax().item() == round(40.3 * 2) and ty[0].argmax().item() == round(60.7 * 2)
    assert tw[15] == 0 and tx[15].abs().sum() == 0 and ty[15].abs().sum() == 0
    assert tx[0].max().item() == pytest.approx(1 / (3.0 * math.sqrt(2 * math.pi)), rel=0.02)


def test_unlabelled_joints_get_zero_weight():
    vis = np.ones(16)
    vis[3] = 0
    _, _, tw = encode(np.full((16, 2), 10.0), vis, width=32, height=32, split=2.0, sigma=1.0)
    assert tw.tolist() == [1.0] * 3 + [0.0] + [1.0] * 12


def test_kl_loss_matches_hand_computation_and_is_minimal_at_the_target():
    t = torch.tensor([[[0.0, 0.25, 0.75]]])  # one sample, one joint, three bins
    pred = torch.tensor([[[0.0, 1.0, 2.0]]])
    logp = torch.log_softmax(pred, -1)
    kl = (0.25 * (math.log(0.25) - logp[0, 0, 1]) + 0.75 * (math.log(0.75) - logp[0, 0, 2])) / 3
    w = torch.ones(1, 1)
    loss = kl_loss(pred, pred, t, t, w, reduction="none")
    assert loss.item() == pytest.approx(2 * kl.item(), rel=1e-6)
    at_target = kl_loss(torch.log(t + 1e-12), torch.log(t + 1e-12), t, t, w)
    assert at_target.item() == pytest.approx(0.0, abs=1e-6)
    assert kl_loss(pred, pred, t, t, torch.zeros(1, 1)).item() == 0.0


def test_mean_reduction_is_the_mean_of_per_sample_losses():
    g = torch.Generator().manual_seed(0)
    px, py = torch.randn(5, 16, 20, generator=g), torch.randn(5, 16, 24, generator=g)
    tx, ty = torch.rand(5, 16, 20, generator=g), torch.rand(5, 16, 24, generator=g)
    w = (torch.rand(5, 16, generator=g) > 0.3).float()
    per = kl_loss(px, py, tx, ty, w, reduction="none")
    assert per.shape == (5,)
    assert torch.allclose(kl_loss(px, py, tx, ty, w), per.mean())
    with pytest.raises(ValueError, match="reduction"):
        kl_loss(px, py, tx, ty, w, reduction="sum")


def test_to_source_inverts_the_crop():
    src = np.random.default_rng(1).uniform(100, 400, (3, 16, 2))
    ms = np.stack([crop_affine([250, 250], 300, (256, 192), rotation_deg=r, flip=f)
                   for r, f in [(0, False), (20, True), (-35, False)]])
    crop = np.stack([apply_affine(p, m) for p, m in zip(src, ms)])
    assert np.allclose(to_source(crop, ms), src)
