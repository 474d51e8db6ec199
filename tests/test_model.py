import pytest
import torch
from torch import nn

from dphpe_core import make_config
from dphpe_core.model import SIZES, AttentionBias, PoseModel, predict
from dphpe_core.strategies import count_macs, set_strategy

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
    from dphpe_core.model import ConvNorm
    from dphpe_core.strategies import calibrate_affines
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
    (4, 5, 1, 1, 0, 1, 1, True), (3, 4, 3, 2, 1, 1, 1, False), (3, 4, 3, 1, 2, 1, 2, True),
    (4, 6, 3, 2, 1, 2, 1, True), (4, 4, 1, 1, 0, 2, 1, False), (3, 4, 2, (2, 1), (0, 1), 1, 1, True)])
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


def test_conv_per_sample_gradients_refuse_other_padding_modes():
    from opacus import GradSampleModule

    from dphpe_core.model import Conv2d
    gsm = GradSampleModule(Conv2d(4, 4, 3, padding=1, padding_mode="reflect"))
    with pytest.raises(NotImplementedError, match="only zero-padded convolutions"):
        gsm(torch.randn(2, 4, 5, 5)).sum().backward()
