"""TinyViT + SimCC, written so that one person crop is one row of the batch everywhere.

    dphpe model --preset embedded

The structure and parameter names follow timm's TinyViT (patch_embed, stages.0 of MBConv
blocks, stages.1-3 of windowed-attention blocks each opened by a PatchMerging), with two
changes that make hook-based per-sample gradients exact:
- attention windows are an extra dimension (B, nWin, N, C), never folded into the batch;
- timm's BatchNorm after each convolution is a per-channel affine (`ChannelAffine`): loading
  pretrained weights folds the BatchNorm statistics into it, which is what BatchNorm computes
  in eval mode, and no statistic is ever shared between the rows of a batch.
The relative-position attention bias is its own module (`AttentionBias`) that adds the bias to
the attention logits, so its per-sample gradient is computed from a batched output.
"""

from __future__ import annotations

from itertools import product

import torch
import torch.nn.functional as F
from opacus.grad_sample import register_grad_sampler
from torch import nn

from .transforms import FLIP_PERM

# dims, depths, heads and window sizes per stage; strides of the PatchMerging that opens stages 2-4.
# The small sizes end at stride 16, not 32, so that their SimCC head, like the paper's at 256x192,
# reads a feature map with several cells per axis (6x5 at 96x72; stride 32 would leave 3x3).
SIZES = {
    "5m": dict(dims=(64, 128, 160, 320), depths=(2, 2, 6, 2), heads=(2, 4, 5, 10), windows=(7, 7, 14, 7),
               strides=(2, 2, 2)),
    "embedded": dict(dims=(16, 32, 48, 64), depths=(1, 1, 2, 1), heads=(1, 2, 2, 4), windows=(4, 4, 3, 3),
                     strides=(2, 2, 1)),
    "smoke": dict(dims=(8, 16, 16, 24), depths=(1, 1, 1, 1), heads=(1, 1, 2, 2), windows=(2, 2, 2, 2),
                  strides=(2, 2, 1)),
}


class ChannelAffine(nn.Module):
    """y = x * weight[c] + bias[c] on (B, C, H, W): BatchNorm in eval mode, per sample by construction."""

    def __init__(self, channels: int, weight_init: float = 1.0):
        super().__init__()
        self.weight = nn.Parameter(torch.full((channels,), float(weight_init)))
        self.bias = nn.Parameter(torch.zeros(channels))

    def forward(self, x):
        return torch.addcmul(self.bias[:, None, None], x, self.weight[:, None, None])


@register_grad_sampler(ChannelAffine)
def _channel_affine_grad_sample(layer, activations, backprops):
    x = activations[0]
    out = {}
    if layer.weight.requires_grad:
        out[layer.weight] = (x * backprops).sum(dim=(2, 3))
    if layer.bias.requires_grad:
        out[layer.bias] = backprops.sum(dim=(2, 3))
    return out


class Conv2d(nn.Conv2d):
    """nn.Conv2d with an exact per-sample gradient (below) that is fast for every layer of this
    model (depthwise, strided, pointwise); zero padding only."""


@register_grad_sampler(Conv2d)
def _conv_grad_sample(layer, activations, backprops):
    x, g = activations[0], backprops
    if layer.padding_mode != "zeros" or isinstance(layer.padding, str):
        raise NotImplementedError(f"per-sample gradients of {layer}: only zero-padded convolutions with numeric "
                                  f"padding are supported")
    b = x.shape[0]
    out = {}
    if layer.weight.requires_grad:
        pointwise = layer.kernel_size == layer.stride == (1, 1) and layer.padding == (0, 0) and layer.groups == 1
        if pointwise:   # (B, O, L) @ (B, L, I) over the L positions
            out[layer.weight] = torch.bmm(g.flatten(2), x.flatten(2).transpose(1, 2)).view(b, *layer.weight.shape)
        else:           # torch's own weight gradient of one convolution whose groups are the (sample, group) pairs
            w = torch.nn.grad.conv2d_weight(
                x.reshape(1, b * x.shape[1], *x.shape[2:]), (b * layer.out_channels, *layer.weight.shape[1:]),
                g.reshape(1, b * layer.out_channels, *g.shape[2:]), layer.stride, layer.padding, layer.dilation,
                b * layer.groups)
            out[layer.weight] = w.view(b, *layer.weight.shape)
    if layer.bias is not None and layer.bias.requires_grad:
        out[layer.bias] = g.sum(dim=(2, 3))
    return out


class ConvNorm(nn.Module):
    """Convolution and per-channel affine; a frozen pair runs as one convolution with the affine
    folded into its weights (equal up to float rounding, and nothing there needs a gradient)."""

    def __init__(self, cin, cout, ks=1, stride=1, pad=0, groups=1, weight_init=1.0):
        super().__init__()
        self.conv = Conv2d(cin, cout, ks, stride, pad, groups=groups, bias=False)
        self.affine = ChannelAffine(cout, weight_init)

    def forward(self, x):
        c, a = self.conv, self.affine
        if c.weight.requires_grad or a.weight.requires_grad or a.bias.requires_grad:
            return a(c(x))
        return F.conv2d(x, c.weight * a.weight[:, None, None, None], a.bias, c.stride, c.padding, c.dilation, c.groups)


class PatchEmbed(nn.Module):
    def __init__(self, cin, dim):
        super().__init__()
        self.conv1, self.act, self.conv2 = ConvNorm(cin, dim // 2, 3, 2, 1), nn.GELU(), ConvNorm(dim // 2, dim, 3, 2, 1)

    def forward(self, x):                      # (B, 3, H, W) -> (B, C, H/4, W/4)
        return self.conv2(self.act(self.conv1(x)))


class MBConv(nn.Module):
    def __init__(self, dim, expand=4.0):
        super().__init__()
        mid = int(dim * expand)
        self.conv1, self.act1 = ConvNorm(dim, mid), nn.GELU()
        self.conv2, self.act2 = ConvNorm(mid, mid, 3, 1, 1, groups=mid), nn.GELU()
        self.conv3, self.act3 = ConvNorm(mid, dim, weight_init=0.0), nn.GELU()

    def forward(self, x):
        return self.act3(x + self.conv3(self.act2(self.conv2(self.act1(self.conv1(x))))))


class PatchMerging(nn.Module):
    def __init__(self, dim, out, stride=2):
        super().__init__()
        self.conv1, self.act1 = ConvNorm(dim, out), nn.GELU()
        self.conv2, self.act2 = ConvNorm(out, out, 3, stride, 1, groups=out), nn.GELU()
        self.conv3 = ConvNorm(out, out)

    def forward(self, x):                      # (B, C, H, W) -> (B, C', H/s, W/s)
        return self.conv3(self.act2(self.conv2(self.act1(self.conv1(x)))))


def relative_offsets(window: int) -> torch.Tensor:
    """(N, N) index of |dy|, |dx| between the window's N = window^2 positions (timm's order)."""
    points = list(product(range(window), range(window)))
    table: dict = {}
    idx = [table.setdefault((abs(a[0] - b[0]), abs(a[1] - b[1])), len(table)) for a in points for b in points]
    return torch.tensor(idx).view(len(points), len(points))


class AttentionBias(nn.Module):
    """Adds a learned bias per head and relative offset to attention logits (B, nWin, heads, N, N).

    The offset index table is a plain attribute, not a buffer (Opacus refuses buffers in layers
    with parameters, and an extra input would be mistaken for a batch); it follows the logits'
    device.
    """

    def __init__(self, heads: int, window: int):
        super().__init__()
        self.attention_biases = nn.Parameter(torch.zeros(heads, window * window))
        self.idxs = relative_offsets(window)

    def forward(self, attn):
        if self.idxs.device != attn.device:
            self.idxs = self.idxs.to(attn.device)
        return attn + self.attention_biases[:, self.idxs]


@register_grad_sampler(AttentionBias)
def _attention_bias_grad_sample(layer, activations, backprops):
    g = backprops.sum(dim=1).flatten(2)                                   # (B, heads, N*N)
    out = torch.zeros(g.shape[0], *layer.attention_biases.shape, dtype=g.dtype, device=g.device)
    out.index_add_(2, layer.idxs.flatten(), g)
    return {layer.attention_biases: out}


class Attention(nn.Module):
    def __init__(self, dim, heads, window):
        super().__init__()
        self.heads, self.key_dim = heads, dim // heads
        self.scale = self.key_dim ** -0.5
        self.norm = nn.LayerNorm(dim)
        self.qkv = nn.Linear(dim, heads * 3 * self.key_dim)
        self.proj = nn.Linear(dim, dim)
        self.bias = AttentionBias(heads, window)

    def forward(self, x):                      # (B, nWin, N, C)
        b, w, n, _ = x.shape
        q, k, v = self.qkv(self.norm(x)).view(b, w, n, self.heads, 3 * self.key_dim).split(self.key_dim, dim=-1)
        q, k, v = (t.transpose(2, 3) for t in (q, k, v))                  # (B, nWin, heads, N, d)
        attn = self.bias((q * self.scale) @ k.transpose(-2, -1)).softmax(-1)  # (B, nWin, heads, N, N)
        return self.proj((attn @ v).transpose(2, 3).reshape(b, w, n, -1))


class Mlp(nn.Module):
    def __init__(self, dim, ratio=4.0):
        super().__init__()
        self.norm, self.fc1, self.act, self.fc2 = nn.LayerNorm(dim), nn.Linear(dim, int(dim * ratio)), nn.GELU(), nn.Linear(int(dim * ratio), dim)

    def forward(self, x):
        return self.fc2(self.act(self.fc1(self.norm(x))))


class Block(nn.Module):
    """Windowed attention, a depthwise 3x3 convolution, an MLP (timm's TinyVitBlock)."""

    def __init__(self, dim, heads, window):
        super().__init__()
        self.window = window
        self.attn = Attention(dim, heads, window)
        self.local_conv = ConvNorm(dim, dim, 3, 1, 1, groups=dim)
        self.mlp = Mlp(dim)

    def forward(self, x):                      # (B, H, W, C)
        b, h, w, c = x.shape
        ws = self.window
        pad_b, pad_r = (ws - h % ws) % ws, (ws - w % ws) % ws
        y = F.pad(x, (0, 0, 0, pad_r, 0, pad_b))
        nh, nw = (h + pad_b) // ws, (w + pad_r) // ws
        y = y.view(b, nh, ws, nw, ws, c).transpose(2, 3).reshape(b, nh * nw, ws * ws, c)  # (B, nWin, N, C)
        y = self.attn(y)
        y = y.view(b, nh, nw, ws, ws, c).transpose(2, 3).reshape(b, nh * ws, nw * ws, c)[:, :h, :w]
        x = x + y
        x = self.local_conv(x.permute(0, 3, 1, 2)).permute(0, 2, 3, 1)
        return x + self.mlp(x)


class Stage(nn.Module):
    def __init__(self, dim, out, depth, heads, window, stride=2):
        super().__init__()
        self.downsample = PatchMerging(dim, out, stride)
        self.blocks = nn.Sequential(*[Block(out, heads, window) for _ in range(depth)])

    def forward(self, x):                      # (B, C, H, W) -> (B, C', H/s, W/s)
        return self.blocks(self.downsample(x).permute(0, 2, 3, 1)).permute(0, 3, 1, 2)


class ConvStage(nn.Module):
    def __init__(self, dim, depth):
        super().__init__()
        self.blocks = nn.Sequential(*[MBConv(dim) for _ in range(depth)])

    def forward(self, x):
        return self.blocks(x)


class TinyViT(nn.Module):
    def __init__(self, dims, depths, heads, windows, strides):
        super().__init__()
        self.patch_embed = PatchEmbed(3, dims[0])
        self.stages = nn.Sequential(ConvStage(dims[0], depths[0]),
                                    *[Stage(dims[i - 1], dims[i], depths[i], heads[i], windows[i], strides[i - 1])
                                      for i in range(1, 4)])

    def forward(self, x):                      # (B, 3, H, W) -> (B, C4, H/32, W/32) (H/16 for the small sizes)
        return self.stages(self.patch_embed(x))


class SimCCHead(nn.Module):
    """1x1 conv to J joints, bilinear upsampling to (H/8, W/8), flatten, one linear layer per axis."""

    def __init__(self, dim, joints, input_hw, split):
        super().__init__()
        h, w = input_hw
        self.map_hw = (h // 8, w // 8)
        flat = self.map_hw[0] * self.map_hw[1]
        self.conv = Conv2d(dim, joints, 1)
        self.mlp_x = nn.Linear(flat, int(round(w * split)))
        self.mlp_y = nn.Linear(flat, int(round(h * split)))

    def forward(self, f):                      # (B, C, h, w) -> (B, J, W*k), (B, J, H*k)
        m = F.interpolate(self.conv(f), size=self.map_hw, mode="bilinear", align_corners=False).flatten(2)
        return self.mlp_x(m), self.mlp_y(m)


class PoseModel(nn.Module):
    def __init__(self, size: str, input_hw, split: float, joints: int = 16):
        super().__init__()
        if size not in SIZES:
            raise ValueError(f"unknown model size {size!r}; expected one of {list(SIZES)}")
        self.size, self.input_hw, self.split = size, tuple(input_hw), split
        self.backbone = TinyViT(**SIZES[size])
        self.head = SimCCHead(SIZES[size]["dims"][-1], joints, input_hw, split)

    def forward(self, x):
        return self.head(self.backbone(x))


@torch.no_grad()
def predict(model: PoseModel, images: torch.Tensor, *, flip_test: bool = True):
    """Joint coordinates (B, J, 2) in crop pixels, averaging the softmax of the image and its mirror."""
    px, py = (t.softmax(-1) for t in model(images))
    if flip_test:
        fx, fy = (t.softmax(-1)[:, FLIP_PERM] for t in model(images.flip(-1)))
        shift = int(round(model.split)) - 1    # mirrored bin b' = (W-1)k - b
        fx = fx.flip(-1)
        fx = torch.cat([fx[..., shift:], fx.new_zeros(*fx.shape[:-1], shift)], -1) if shift else fx
        px, py = (px + fx) / 2, (py + fy) / 2
    return torch.stack([px.argmax(-1), py.argmax(-1)], -1).float() / model.split
