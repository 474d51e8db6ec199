"""The start: checkpoints convert and load, the public pretraining is stored and reused and reads no
private crop, and the per-joint layer carries over as joint_layer says."""

import json

import pytest
import torch
from torch import nn

from dphpe_core import start as start_mod
from dphpe_core.coco import COCO_TO_MPII
from dphpe_core.model import PoseModel
from dphpe_core.start import _resize_bias, build_model, load_checkpoint, pretrain_key, pretrained_state, start_path

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


def test_a_stopped_pretraining_goes_on_from_its_checkpoint_to_the_same_weights(smoke_cfg, tmp_path, stop_and_resume):
    """The public pretraining stopped after epoch 1 of 3 and started again trains the uninterrupted start's
    weights to the bit; the checkpoint is gone once the start is stored."""
    whole = pretrained_state(smoke_cfg.replace(results_dir=str(tmp_path / "a"), pretrain_epochs=3), progress=False)
    cfg = smoke_cfg.replace(results_dir=str(tmp_path / "b"), pretrain_epochs=3)
    stopped, loaded = stop_and_resume
    with stopped():
        pretrained_state(cfg, progress=False)
    assert torch.load(start_path(cfg).with_suffix(".ckpt"), weights_only=True)["epoch"] == 1
    loaded.clear()
    resumed = pretrained_state(cfg, progress=False)
    assert loaded[0]["epoch"] == 1                  # it went on from the checkpoint, not from the start
    assert whole.keys() == resumed.keys() and all(torch.equal(whole[k], resumed[k]) for k in whole)
    assert not start_path(cfg).with_suffix(".ckpt").exists()


def test_pretraining_reads_no_private_or_val_crop(smoke_cfg, tmp_path, public_only):
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


def _random_timm(seed=0):
    timm = pytest.importorskip("timm", reason="timm is only needed to check checkpoint loading")
    torch.manual_seed(seed)
    t = timm.create_model("tiny_vit_5m_224", pretrained=False, num_classes=0).eval()
    with torch.no_grad():
        for mod in t.modules():
            if isinstance(mod, nn.BatchNorm2d):
                mod.running_mean.normal_(0, 0.1)
                mod.running_var.uniform_(0.5, 2.0)
                mod.weight.normal_(1, 0.1)
                mod.bias.normal_(0, 0.1)
            if hasattr(mod, "attention_biases"):
                mod.attention_biases.normal_(0, 0.5)
    return t


@pytest.mark.parametrize("hw", [(224, 224), (256, 192)])
def test_timm_weights_give_timm_features(hw):
    t = _random_timm()
    ours = PoseModel("5m", (256, 192), 2.0).eval()
    left = load_checkpoint(ours, t.state_dict())
    assert left and all(k.startswith("head.") for k in left)
    x = torch.randn(2, 3, *hw)
    with torch.no_grad():
        assert torch.allclose(t.forward_features(x), ours.backbone(x), atol=1e-4)


def test_pose_checkpoint_with_backbone_prefix_and_simcc_head():
    t = _random_timm(1)
    src = PoseModel("5m", (256, 192), 2.0)
    state = {f"backbone.{k}": v for k, v in t.state_dict().items()}
    state |= {"head.final_layer.weight": torch.randn_like(src.head.conv.weight),
              "head.final_layer.bias": torch.randn_like(src.head.conv.bias),
              "head.mlp_head_x.weight": torch.randn_like(src.head.mlp_x.weight),
              "head.mlp_head_x.bias": torch.randn_like(src.head.mlp_x.bias),
              "head.mlp_head_y.weight": torch.randn_like(src.head.mlp_y.weight),
              "head.mlp_head_y.bias": torch.randn_like(src.head.mlp_y.bias)}
    ours = PoseModel("5m", (256, 192), 2.0)
    assert load_checkpoint(ours, {"state_dict": state}, require_head=True) == []
    assert torch.equal(ours.head.mlp_y.weight, state["head.mlp_head_y.weight"])


def test_a_pose_checkpoint_of_another_joint_count_leaves_the_joint_layer_fresh():
    src = PoseModel("smoke", (64, 48), 2.0, joints=17)          # a COCO-style start: 17 joints
    ours = PoseModel("smoke", (64, 48), 2.0)
    fresh = ours.head.conv.weight.detach().clone()
    assert load_checkpoint(ours, src.state_dict(), require_head=True) == ["head.conv.weight", "head.conv.bias"]
    assert torch.equal(ours.head.conv.weight, fresh)
    assert torch.equal(ours.head.mlp_x.weight, src.head.mlp_x.weight)


def test_own_state_dict_round_trip():
    a, b = PoseModel("smoke", (64, 48), 2.0), PoseModel("smoke", (64, 48), 2.0)
    load_checkpoint(b, a.state_dict(), require_head=True)
    assert all(torch.equal(x, y) for x, y in zip(a.state_dict().values(), b.state_dict().values()))


def test_mismatched_checkpoint_lists_the_first_mismatches():
    t = _random_timm()
    with pytest.raises(ValueError, match=r"does not fit the embedded model: unexpected keys .*shape mismatches \(\d+\): \[.backbone\.patch_embed\.conv1\.conv\.weight: checkpoint \(32, 3, 3, 3\) vs model"):
        load_checkpoint(PoseModel("embedded", (96, 72), 2.0), t.state_dict())
    state = PoseModel("smoke", (64, 48), 2.0).state_dict()
    del state["backbone.stages.1.blocks.0.mlp.fc1.weight"]
    with pytest.raises(ValueError, match=r"missing keys \(1\): \['backbone.stages.1.blocks.0.mlp.fc1.weight'\]"):
        load_checkpoint(PoseModel("smoke", (64, 48), 2.0), state)


def test_attention_bias_resizing():
    table = torch.full((3, 49), 0.7)
    assert torch.allclose(_resize_bias(table, (3, 196)), torch.full((3, 196), 0.7), atol=1e-5)
    assert _resize_bias(table, (3, 49)) is table
    grid = torch.arange(49.0).view(1, 7, 7).expand(2, 7, 7).reshape(2, 49)
    up = _resize_bias(grid, (2, 196)).view(2, 14, 14)
    assert up[0, 0, 0] < up[0, 0, -1] < up[0, -1, -1]     # order of offsets is kept


def test_a_truncated_or_foreign_weights_file_names_itself_and_how_to_rebuild(tmp_path):
    from dphpe_core.start import read_weights
    good = tmp_path / "w.pt"
    torch.save({"a": torch.ones(3)}, good)
    assert read_weights(good, rebuild="x")["a"].sum() == 3
    bad = tmp_path / "bad.pt"
    bad.write_bytes(good.read_bytes()[:40])
    with pytest.raises(ValueError, match=r"bad.pt: cannot be read as saved weights .*; rerun it"):
        read_weights(bad, rebuild="rerun it")
    torch.save([1, 2], tmp_path / "list.pt")
    with pytest.raises(ValueError, match=r"list.pt: holds a list, not a state dict"):
        read_weights(tmp_path / "list.pt", rebuild="rerun it")
    with pytest.raises(FileNotFoundError, match=r"none.pt: no such weights file; rerun it"):
        read_weights(tmp_path / "none.pt", rebuild="rerun it")
