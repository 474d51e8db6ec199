"""SimCC: keypoints as two 1-D classification problems (x bins and y bins).

    python -m pytest tests/test_simcc.py

A crop of W x H pixels has W*k x-bins and H*k y-bins (split ratio k, 2 in the paper); bin i
stands for the pixel coordinate i / k. Targets are Gaussians (sigma in bins) centred on x*k,
normalised as in the SimCC paper (the density of N(x*k, sigma^2) at each bin); the loss is the
KL divergence between the target and the log-softmax of the prediction, averaged over bins,
weighted by joint visibility and averaged over joints.
"""

from __future__ import annotations

import math

import numpy as np
import torch
import torch.nn.functional as F

from .transforms import apply_affine, invert_affine


def encode(joints, weight, *, width: int, height: int, split: float, sigma: float):
    """Targets for one crop.

    joints: (J, 2) crop pixels; weight: (J,) 1 for labelled joints.
    Returns target_x (J, W*k), target_y (J, H*k) float32 and target_weight (J,) float32; a joint
    outside the crop gets weight 0 and all-zero targets.
    """
    joints = np.asarray(joints, np.float64)
    weight = np.asarray(weight, np.float32).copy()
    nx, ny = int(round(width * split)), int(round(height * split))
    mu = joints * split
    inside = (joints[:, 0] >= 0) & (joints[:, 0] <= width - 1) & (joints[:, 1] >= 0) & (joints[:, 1] <= height - 1)
    weight = weight * inside
    norm = 1.0 / (sigma * math.sqrt(2 * math.pi))
    tx = norm * np.exp(-((np.arange(nx)[None] - mu[:, 0:1]) ** 2) / (2 * sigma**2))
    ty = norm * np.exp(-((np.arange(ny)[None] - mu[:, 1:2]) ** 2) / (2 * sigma**2))
    keep = (weight > 0)[:, None]
    return (torch.from_numpy((tx * keep).astype(np.float32)), torch.from_numpy((ty * keep).astype(np.float32)),
            torch.from_numpy(weight))


def decode(pred_x: torch.Tensor, pred_y: torch.Tensor, *, split: float):
    """Argmax decoding: (..., J, W*k), (..., J, H*k) -> coordinates (..., J, 2) in crop pixels and
    a confidence (..., J), the smaller of the two peak softmax probabilities."""
    px, py = pred_x.softmax(-1), pred_y.softmax(-1)
    cx, ix = px.max(-1)
    cy, iy = py.max(-1)
    coords = torch.stack([ix, iy], -1).to(torch.float32) / split
    return coords, torch.minimum(cx, cy)


def to_source(coords, affine) -> np.ndarray:
    """Crop-pixel coordinates (N, J, 2) back to source-image pixels through each crop's (N, 2, 3) affine."""
    coords = np.asarray(coords, np.float64)
    affine = np.asarray(affine, np.float64)
    return np.stack([apply_affine(c, invert_affine(m)) for c, m in zip(coords, affine)])


def kl_loss(pred_x, pred_y, target_x, target_y, target_weight, *, reduction: str = "mean") -> torch.Tensor:
    """KL(target || softmax(pred)) per axis, mean over bins, x weight, mean over joints.

    reduction "none" gives one loss per sample (B,), "mean" their mean: the per-sample losses
    are independent, so per-sample gradients of the mean are exact.
    """
    def per_joint(pred, target):
        return F.kl_div(F.log_softmax(pred, -1), target, reduction="none").mean(-1)  # (B, J)

    loss = ((per_joint(pred_x, target_x) + per_joint(pred_y, target_y)) * target_weight).mean(-1)
    if reduction == "none":
        return loss
    if reduction == "mean":
        return loss.mean()
    raise ValueError(f"reduction must be 'none' or 'mean', got {reduction!r}")
