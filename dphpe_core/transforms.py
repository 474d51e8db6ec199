"""Geometry and pixels: the top-down affine crop, flip, rotation/scale jitter, the blurred view psi(x).

    python -m pytest tests/test_transforms.py

Every geometric change (crop, scale, rotation, flip) is one 2x3 affine matrix `M` from source
pixels to crop pixels, applied to the image (PIL's affine warp, with the inverse matrix) and to
the keypoints (`apply_affine`) alike, so image and labels cannot drift apart. Pixel centres sit
at integer coordinates in both frames. A flip also swaps MPII's left and right joints.
"""

from __future__ import annotations

import functools
import math

import numpy as np
import torch
from PIL import Image
from torchvision.transforms.v2 import functional as TF

from .pckh import FLIP_PAIRS

IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)


def crop_affine(center, src_width: float, out_size: tuple[int, int], *, rotation_deg: float = 0.0,
                flip: bool = False) -> np.ndarray:
    """Matrix (2, 3) mapping source pixels to an (out_h, out_w) crop.

    The source box of width `src_width` centred at `center` fills the crop's width (HRNet's
    convention: isotropic scale out_w / src_width) and its centre lands on the crop's centre;
    the box is rotated by `rotation_deg` (positive turns the content counter-clockwise, as
    HRNet's) and optionally mirrored. x_out = R (x_in - center) + crop_centre.
    """
    out_h, out_w = out_size
    if not src_width > 0:
        raise ValueError(f"crop width must be > 0 pixels, got {src_width}")
    s = out_w / float(src_width)
    a = math.radians(rotation_deg)
    r = s * np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]])
    if flip:
        r = np.array([[-1.0, 0.0], [0.0, 1.0]]) @ r
    t = np.array([(out_w - 1) / 2.0, (out_h - 1) / 2.0]) - r @ np.asarray(center, np.float64)
    return np.concatenate([r, t[:, None]], axis=1)


def invert_affine(m: np.ndarray) -> np.ndarray:
    full = np.vstack([np.asarray(m, np.float64), [0.0, 0.0, 1.0]])
    return np.linalg.inv(full)[:2]


def apply_affine(points, m) -> np.ndarray:
    """Apply (2, 3) matrix `m` to points (..., 2)."""
    p = np.asarray(points, np.float64)
    m = np.asarray(m, np.float64)
    return p @ m[:, :2].T + m[:, 2]


def warp_image(image: Image.Image, m: np.ndarray, out_size: tuple[int, int]) -> Image.Image:
    """Warp a PIL image by source-to-crop matrix `m` into an (out_h, out_w) crop (bilinear, black fill)."""
    out_h, out_w = out_size
    inv = invert_affine(m)
    # PIL samples the input at inv applied to output pixel centres in its continuous frame
    # (centres at +0.5); shift our integer-centred matrix into that frame.
    lin, t = inv[:, :2], inv[:, 2]
    t_pil = t + 0.5 - lin @ np.array([0.5, 0.5])
    data = (lin[0, 0], lin[0, 1], t_pil[0], lin[1, 0], lin[1, 1], t_pil[1])
    return image.transform((out_w, out_h), Image.Transform.AFFINE, data, resample=Image.Resampling.BILINEAR)


FLIP_PERM = np.arange(16)
for _r, _l in FLIP_PAIRS:
    FLIP_PERM[_r], FLIP_PERM[_l] = _l, _r


def swap_left_right(a, axis: int = 0) -> np.ndarray:
    """Reorder per-joint values along `axis` (16 long) so that left and right trade places."""
    return np.take(np.asarray(a), FLIP_PERM, axis=axis)


def sample_jitter(gen: torch.Generator, *, rotation_deg: float, scale_jitter: float,
                  p_rotate: float = 0.6) -> tuple[float, float, bool]:
    """HRNet's augmentation draw: (scale factor, rotation in degrees, flip)."""
    u = torch.randn(2, generator=gen).tolist()
    scale = float(np.clip(u[0] * scale_jitter + 1.0, 1.0 - scale_jitter, 1.0 + scale_jitter))
    rot = float(np.clip(u[1] * rotation_deg, -2 * rotation_deg, 2 * rotation_deg))
    if torch.rand(1, generator=gen).item() >= p_rotate:
        rot = 0.0
    flip = bool(torch.rand(1, generator=gen).item() < 0.5)
    return scale, rot, flip


def to_model_input(image: Image.Image | np.ndarray) -> torch.Tensor:
    """uint8 HxWx3 image -> float32 (3, H, W) normalised with ImageNet mean and std."""
    x = TF.to_dtype(TF.to_image(image), torch.float32, scale=True)
    return TF.normalize(x, IMAGENET_MEAN, IMAGENET_STD)


def to_display(x: torch.Tensor) -> np.ndarray:
    """Inverse of `to_model_input`: (…, 3, H, W) float -> (…, H, W, 3) float in [0, 1]."""
    mean = torch.tensor(IMAGENET_MEAN).view(3, 1, 1)
    std = torch.tensor(IMAGENET_STD).view(3, 1, 1)
    return (x.detach().cpu() * std + mean).clamp(0, 1).movedim(-3, -1).numpy()


@functools.lru_cache(maxsize=32)
def _blur_matrix(n: int, kernel: int, sigma: float, dtype: torch.dtype, device: str) -> torch.Tensor:
    """(n, n) matrix M with (v @ M) = v convolved with the 1-D Gaussian, the border reflected."""
    half = (kernel - 1) / 2
    k1 = torch.exp(-0.5 * (torch.linspace(-half, half, kernel, dtype=torch.float64) / sigma) ** 2)
    k1 = k1 / k1.sum()
    m = torch.zeros(n, n, dtype=torch.float64)
    for j in range(n):
        for t in range(kernel):
            i = abs(j + t - kernel // 2)                    # reflect at 0 ...
            i = 2 * (n - 1) - i if i > n - 1 else i         # ... and at n - 1 (no edge repeat)
            m[i, j] += k1[t]
    return m.to(dtype=dtype, device=device)


def blur(x: torch.Tensor, *, kernel: int, sigma: float) -> torch.Tensor:
    """psi(x): the public, blurred view of a batch (B, 3, H, W) or an image (3, H, W).

    torchvision's Gaussian blur (the same kernel, the border reflected), computed as two matrix
    products: a Gaussian kernel is the outer product of two 1-D ones, and a 1-D convolution with a
    reflected border is a fixed (n, n) matrix. So this equals TF.gaussian_blur up to float
    rounding (tested) at a tenth of its time here; feature DP blurs a batch at every step.
    Blurring commutes with the per-channel normalisation (the kernel sums to one and the border
    is reflected), so it may be applied to normalised tensors.
    """
    if kernel < 1 or kernel % 2 == 0:
        raise ValueError(f"blur kernel must be odd and >= 1, got {kernel}")
    h, w = x.shape[-2:]
    if kernel // 2 >= min(h, w):
        raise ValueError(f"blur kernel {kernel} is too large for a {h} x {w} image (its half must be smaller)")
    cols = _blur_matrix(w, kernel, float(sigma), x.dtype, str(x.device))
    rows = _blur_matrix(h, kernel, float(sigma), x.dtype, str(x.device)).T
    return torch.matmul(rows, x @ cols)
