"""The start: the public pretraining is stored and reused, reads no private crop, and the per-joint
layer carries over as joint_layer says."""

import json

import pytest
import torch

from dphpe_core import start as start_mod
from dphpe_core.coco import COCO_TO_MPII
from dphpe_core.model import PoseModel
from dphpe_core.start import build_model, pretrain_key, pretrained_state, start_path

SHARED = sorted(COCO_TO_MPII)                              # MPII rows of the 12 joints COCO has
OWN = [j for j in range(16) if j not in COCO_TO_MPII]     # pelvis, thorax, upper neck, head top


def test_the_start_is_stored_with_its_provenance_and_reused(smoke_cfg, monkeypatch):
    a = pretrained_state(smoke_cfg, progress=False)
    info = json.loads(start_path(smoke_cfg).with_suffix(".json").read_text())
    assert info["key"] == pretrain_key(smoke_cfg) and info["n_public"] == smoke_cfg.n_public
    assert info["provenance"]["torch"] == torch.__version__ and info["wall_s"] > 0
    monkeypatch.setattr(start_mod, "fit", lambda *a, **k: pytest.fail("pretrained twice"))
    b = pretrained_state(smoke_cfg.replace(seed=7, epsilon=0.3, method="hybrid"), progress=False)  # one start for all
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert pretrain_key(smoke_cfg.replace(pretrain_epochs=2)) != pretrain_key(smoke_cfg)


def test_pretraining_reads_no_private_or_val_crop(smoke_cfg, tmp_path, monkeypatch):
    from dphpe_core import data as data_mod
    real = data_mod._synthpose

    def public_only(cfg, split, n):
        if split != "public":
            raise AssertionError(f"the pretraining read the {split} split")
        return real(cfg, split, n)
    monkeypatch.setattr(data_mod, "_synthpose", public_only)
    pretrained_state(smoke_cfg.replace(results_dir=str(tmp_path)), progress=False)
    build_model(smoke_cfg.replace(results_dir=str(tmp_path), strategy="scratch"))


@pytest.fixture()
def fixed_start(smoke_cfg, monkeypatch):
    torch.manual_seed(3)
    start = PoseModel("smoke", (64, 48), 2.0).state_dict()
    monkeypatch.setattr(start_mod, "pretrained_state", lambda cfg, **k: start)
    return start


def test_coco_joint_layer_keeps_the_12_shared_rows_and_draws_the_other_4_per_seed(smoke_cfg, fixed_start):
    a, a2, b = (build_model(smoke_cfg.replace(seed=s, joint_layer="coco")) for s in (0, 0, 1))
    w = fixed_start["head.conv.weight"]
    assert torch.equal(a.head.conv.weight[SHARED], w[SHARED]) and torch.equal(b.head.conv.weight[SHARED], w[SHARED])
    assert not torch.equal(a.head.conv.weight[OWN], w[OWN])
    assert torch.equal(a.head.conv.weight, a2.head.conv.weight)
    assert not torch.equal(a.head.conv.weight[OWN], b.head.conv.weight[OWN])
    assert torch.equal(a.head.mlp_x.weight, fixed_start["head.mlp_x.weight"])     # only the per-joint layer


def test_fresh_and_kept_joint_layers(smoke_cfg, fixed_start):
    kept = build_model(smoke_cfg.replace(joint_layer="kept"))
    assert all(torch.equal(a, b) for a, b in zip(kept.state_dict().values(), fixed_start.values()))
    fresh = build_model(smoke_cfg.replace(joint_layer="fresh"))
    coco = build_model(smoke_cfg.replace(joint_layer="coco"))
    assert torch.equal(fresh.head.conv.weight[OWN], coco.head.conv.weight[OWN])     # the same draw
    assert not torch.equal(fresh.head.conv.weight[SHARED], fixed_start["head.conv.weight"][SHARED])


def test_a_coco_checkpoint_gives_its_rows_to_mpiis_joints(smoke_cfg, tmp_path):
    torch.manual_seed(5)
    coco = PoseModel("smoke", (64, 48), 2.0, joints=17)      # COCO's 17 keypoints, in COCO's order
    path = tmp_path / "coco.pt"
    torch.save(coco.state_dict(), path)
    ours = build_model(smoke_cfg.replace(pretrained_path=str(path)))
    for mpii, k in COCO_TO_MPII.items():
        assert torch.equal(ours.head.conv.weight[mpii], coco.head.conv.weight[k])
    assert torch.equal(ours.head.mlp_y.weight, coco.head.mlp_y.weight)
    with pytest.raises(ValueError, match="joint_layer='kept' cannot use a start whose per-joint layer has 17 rows"):
        build_model(smoke_cfg.replace(pretrained_path=str(path), joint_layer="kept"))
