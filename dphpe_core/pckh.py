"""PCKh: the fraction of joints within a threshold of the head size, per joint and per group.

    python -c "import numpy as np; from dphpe_core.pckh import pckh_groups; print(pckh_groups(np.zeros((1,16,2)), np.zeros((1,16,2)), np.ones((1,16)), np.ones(1)))"

One implementation for every data set. It follows HRNet's MPII protocol exactly:
- head size = 0.6 x the diagonal of the head box (`head_size_from_box`);
- a joint is correct when ||pred - gt|| / head size <= threshold;
- only labelled joints count;
- a group score is the mean of its left and right joints (Head is the head top alone);
- Mean is the average over joints weighted by each joint's labelled count, leaving out pelvis
  and thorax (upper neck counts in Mean although it belongs to no group).
"""

from __future__ import annotations

import numpy as np

# MPII's joints, in MPII's order.
JOINT_NAMES = (
    "r_ankle", "r_knee", "r_hip", "l_hip", "l_knee", "l_ankle", "pelvis", "thorax",
    "upper_neck", "head_top", "r_wrist", "r_elbow", "r_shoulder", "l_shoulder", "l_elbow", "l_wrist",
)
NUM_JOINTS = len(JOINT_NAMES)
J = {name: i for i, name in enumerate(JOINT_NAMES)}
# (right, left) pairs swapped by a horizontal flip
FLIP_PAIRS = ((0, 5), (1, 4), (2, 3), (10, 15), (11, 14), (12, 13))
# bones drawn in figures: (parent, child)
SKELETON = ((0, 1), (1, 2), (2, 6), (6, 3), (3, 4), (4, 5), (6, 7), (7, 8), (8, 9),
            (10, 11), (11, 12), (12, 7), (7, 13), (13, 14), (14, 15))
GROUPS = {
    "Head": (9,), "Shoulder": (12, 13), "Elbow": (11, 14), "Wrist": (10, 15),
    "Hip": (2, 3), "Knee": (1, 4), "Ankle": (0, 5),
}
GROUP_NAMES = (*GROUPS, "Mean")
EXCLUDED_FROM_MEAN = (6, 7)  # pelvis, thorax
SC_BIAS = 0.6


def head_size_from_box(boxes: np.ndarray) -> np.ndarray:
    """Head size of MPII's protocol: 0.6 x the diagonal of (x1, y1, x2, y2) boxes, shape (..., 4)."""
    boxes = np.asarray(boxes, dtype=np.float64)
    return SC_BIAS * np.linalg.norm(boxes[..., 2:4] - boxes[..., 0:2], axis=-1)


def pckh_per_joint(pred, gt, labelled, head_size, threshold: float = 0.5):
    """Per-joint PCKh in percent and the labelled count per joint.

    pred, gt: (N, 16, 2) in the same pixel frame; labelled: (N, 16) 0/1; head_size: (N,).
    Returns (pckh (16,), count (16,)); a joint never labelled has pckh NaN and count 0.
    """
    pred, gt = np.asarray(pred, np.float64), np.asarray(gt, np.float64)
    labelled = np.asarray(labelled).astype(bool)
    head_size = np.asarray(head_size, np.float64)
    if pred.shape != gt.shape or pred.ndim != 3 or pred.shape[2] != 2:
        raise ValueError(f"pred and gt must both have shape (N, J, 2); got {pred.shape} and {gt.shape}")
    if labelled.shape != pred.shape[:2] or head_size.shape != pred.shape[:1]:
        raise ValueError(f"labelled must be (N, J) and head_size (N,); got {labelled.shape}, "
                         f"{head_size.shape} for N, J = {pred.shape[:2]}")
    if np.any(head_size[labelled.any(axis=1)] <= 0):
        raise ValueError("head_size must be > 0 for every sample with a labelled joint")
    if not threshold > 0:
        raise ValueError(f"threshold must be > 0, got {threshold}")
    err = np.linalg.norm(pred - gt, axis=2) / np.where(head_size > 0, head_size, 1.0)[:, None]
    correct = (err <= threshold) & labelled
    count = labelled.sum(axis=0)
    with np.errstate(invalid="ignore", divide="ignore"):
        pck = 100.0 * correct.sum(axis=0) / count
    return pck, count


def summarize(pck: np.ndarray, count: np.ndarray) -> dict[str, float]:
    """Group scores (Head ... Ankle) and the count-weighted Mean without pelvis and thorax."""
    out = {name: float(np.mean(pck[list(idx)])) for name, idx in GROUPS.items()}
    weight = count.astype(np.float64).copy()
    weight[list(EXCLUDED_FROM_MEAN)] = 0.0
    total = weight.sum()
    out["Mean"] = float(np.nansum(pck * weight) / total) if total > 0 else float("nan")
    return out


def pckh_groups(pred, gt, labelled, head_size, threshold: float = 0.5) -> dict[str, float]:
    """PCKh per joint group and Mean, in percent (keys: Head ... Ankle, Mean)."""
    return summarize(*pckh_per_joint(pred, gt, labelled, head_size, threshold))


def format_table(scores: dict[str, float]) -> str:
    """Two text lines: group names and scores, in the order MPII papers print them."""
    head = " | ".join(f"{k:>8}" for k in GROUP_NAMES)
    vals = " | ".join(f"{scores[k]:8.2f}" for k in GROUP_NAMES)
    return f"{head}\n{vals}"
