import pytest
import torch
from torch import nn

from dphpe_core import make_config
from dphpe_core.model import (SIZES, AttentionBias, PoseModel, _resize_bias, count_macs, load_checkpoint, predict,
                              set_strategy)

PRESET_MODELS = [("smoke", (64, 48)), ("embedded", (96, 72)), ("5m", (256, 192))]


@pytest.mark.parametrize("size, hw", PRESET_MODELS)
def test_output_shapes_and_no_batch_mixing(size, hw):
    torch.manual_seed(0)
    m = PoseModel(size, hw, 2.0).eval()
    x = torch.randn(3, 3, *hw)
    px, py = m(x)
    assert px.shape == (3, 16, hw[1] * 2) and py.shape == (3, 16, hw[0] * 2)
    # one crop, one row: a sample's output does not depend on the other rows of the batch
    alone = m(x[1:2])
    assert torch.allclose(alone[0], px[1:2], atol=1e-5) and torch.allclose(alone[1], py[1:2], atol=1e-5)


def test_no_batch_mixing_layers():
    m = PoseModel("embedded", (96, 72), 2.0)
    bad = (nn.BatchNorm1d, nn.BatchNorm2d, nn.Dropout, nn.SyncBatchNorm)
    assert not [n for n, mod in m.named_modules() if isinstance(mod, bad)]
    # windows are an extra dimension: every stage keeps windowed attention at the embedded size
    windows = [blk.window for s in m.backbone.stages[1:] for blk in s.blocks]
    assert all(w < 6 for w in windows)


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


def test_frozen_conv_and_affine_run_as_one_convolution_with_the_same_output():
    from dphpe_core.model import ConvNorm
    torch.manual_seed(0)
    for groups in (1, 6):
        layer = ConvNorm(6, 6, 3, 2, 1, groups=groups).double()
        with torch.no_grad():
            layer.affine.weight.uniform_(0.5, 2.0)
            layer.affine.bias.normal_()
        x = torch.randn(2, 6, 9, 7, dtype=torch.float64)
        trained = layer(x)
        layer.requires_grad_(False)
        assert torch.allclose(layer(x), trained, atol=1e-12)


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


def test_strategies_choose_the_trainable_parameters():
    m = set_strategy(PoseModel("smoke", (64, 48), 2.0), "finetune")
    for name, p in m.named_parameters():
        expected = name.startswith(("backbone.stages.3.", "head.")) or ".norm." in name
        assert p.requires_grad == expected, name
    assert all(p.requires_grad for p in set_strategy(m, "full").parameters())
    with pytest.raises(ValueError, match="unknown strategy 'frozen'"):
        set_strategy(m, "frozen")
    with pytest.raises(ValueError, match="unknown model size 'huge'"):
        PoseModel("huge", (64, 48), 2.0)


class _Spot(nn.Module):
    """A stand-in model whose joint j is found at the brightest pixel of the image, column + j % 2."""
    split = 2.0

    def forward(self, x):
        b, _, h, w = x.shape
        flat = x[:, 0].flatten(1).argmax(1)
        ys, xs = flat // w, flat % w
        px, py = torch.full((b, 16, w * 2), -50.0), torch.full((b, 16, h * 2), -50.0)
        for j in range(16):
            px[torch.arange(b), j, (xs * 2).clamp(max=w * 2 - 1)] = 50.0
            py[torch.arange(b), j, ys * 2] = 50.0
        return px, py


def test_flip_test_maps_mirrored_predictions_back():
    x = torch.zeros(2, 3, 64, 48)
    x[0, :, 10, 7] = 1.0
    x[1, :, 50, 40] = 1.0
    plain = predict(_Spot(), x, flip_test=False)
    flipped = predict(_Spot(), x, flip_test=True)
    assert torch.equal(plain, flipped)
    assert plain[0, 0].tolist() == [7.0, 10.0] and plain[1, 5].tolist() == [40.0, 50.0]


def test_sizes_and_macs():
    assert SIZES["5m"]["dims"] == (64, 128, 160, 320) and SIZES["5m"]["depths"] == (2, 2, 6, 2)
    small, paper = PoseModel("embedded", (96, 72), 2.0), PoseModel("5m", (256, 192), 2.0)
    assert 100_000 < sum(p.numel() for p in small.parameters()) < 400_000
    assert count_macs(paper) > 50 * count_macs(small)
    assert isinstance(paper.backbone.stages[3].blocks[0].attn.bias, AttentionBias)


def test_config_names_a_known_model_size():
    with pytest.raises(ValueError, match="model_size"):
        make_config("smoke", model_size="tiny")


def test_calibration_standardises_every_affine_on_its_batch():
    from dphpe_core.model import ConvNorm, calibrate_affines
    torch.manual_seed(0)
    m = PoseModel("smoke", (64, 48), 2.0)
    x = torch.randn(64, 3, 64, 48) * 3 + 1
    calibrate_affines(m, x)
    outs = {}
    hooks = [mod.register_forward_hook(lambda mod, i, o, n=n: outs.__setitem__(n, o))
             for n, mod in m.named_modules() if isinstance(mod, ConvNorm)]
    with torch.no_grad():
        m(x)
    for h in hooks:
        h.remove()
    for name, out in outs.items():
        if name.endswith("blocks.0.conv3") and "stages.0" in name:
            assert out.abs().max() == 0          # the zero-initialised residual branch stays off
            continue
        assert out.mean(dim=(0, 2, 3)).abs().max() < 1e-3, name
        assert (out.std(dim=(0, 2, 3)) - 1).abs().max() < 1e-2, name


@pytest.mark.parametrize("cin, cout, k, stride, pad, groups, dilation, bias", [
    (6, 6, 3, 1, 1, 6, 1, False), (6, 6, 3, 2, 1, 6, 1, True), (6, 6, 3, 1, 2, 6, 2, False),
    (4, 5, 1, 1, 0, 1, 1, True), (3, 4, 3, 2, 1, 1, 1, False), (3, 4, 3, 1, 2, 1, 2, True)])
def test_conv_per_sample_gradients_equal_single_sample_gradients(cin, cout, k, stride, pad, groups, dilation, bias):
    from opacus import GradSampleModule

    from dphpe_core.model import Conv2d
    torch.manual_seed(0)
    conv = Conv2d(cin, cout, k, stride, pad, dilation=dilation, groups=groups, bias=bias).double()
    x = torch.randn(4, cin, 9, 7, dtype=torch.float64)
    w = torch.randn_like(conv(x))             # a loss that weighs every output differently
    singles = []
    for i in range(4):
        conv.zero_grad()
        (conv(x[i:i + 1]) * w[i:i + 1]).sum().backward()
        singles.append([p.grad.clone() for p in conv.parameters()])
    gsm = GradSampleModule(conv, batch_first=True, loss_reduction="sum")
    (gsm(x) * w).sum().backward()
    for j, p in enumerate(conv.parameters()):
        assert torch.allclose(p.grad_sample, torch.stack([s[j] for s in singles]), atol=1e-12)
    gsm.remove_hooks()


def test_conv_per_sample_gradients_refuse_grouped_convolutions():
    from opacus import GradSampleModule

    from dphpe_core.model import Conv2d
    gsm = GradSampleModule(Conv2d(4, 4, 3, groups=2))
    with pytest.raises(NotImplementedError, match="depthwise or ungrouped"):
        gsm(torch.randn(2, 4, 5, 5)).sum().backward()
