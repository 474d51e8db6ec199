"""Figure helpers for the notebooks: poses drawn on crops, galleries, domain statistics, PCKh at work.

    python -c "from dphpe_core import plots"   # used by notebooks/01_data.ipynb

Notebooks stay thin: each figure is one call here. Figures use matplotlib through seaborn's
theme; tables are pandas DataFrames.
"""

from __future__ import annotations

import colorsys

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.patches import Circle, Rectangle

from .pckh import EXCLUDED_FROM_MEAN, GROUPS, JOINT_NAMES, SKELETON, pckh_per_joint, summarize
from .transforms import to_display

RIGHT, LEFT, CENTRE = "#e4572e", "#29a3d6", "#f3c623"


def _bone_colour(a: int, b: int) -> str:
    names = JOINT_NAMES[a] + JOINT_NAMES[b]
    return RIGHT if "r_" in names else LEFT if "l_" in names else CENTRE


def draw_pose(ax, image, joints, labelled, *, visible=None, head_box=None, title: str | None = None):
    """A crop (H, W, 3 in [0, 1] or a normalised (3, H, W) tensor) with its skeleton.

    Right limbs red, left limbs blue; occluded joints hollow; unlabelled joints not drawn.
    """
    img = to_display(image) if hasattr(image, "dim") and image.dim() == 3 else np.asarray(image)
    joints, labelled = np.asarray(joints, float), np.asarray(labelled) > 0
    visible = labelled if visible is None else (np.asarray(visible) > 0)
    ax.imshow(img)
    for a, b in SKELETON:
        if labelled[a] and labelled[b]:
            ax.plot(*joints[[a, b]].T, color=_bone_colour(a, b), lw=1.6, alpha=0.9)
    for k in np.flatnonzero(labelled):
        ax.plot(*joints[k], "o", ms=3.2, mec="k", mew=0.5, mfc="white" if visible[k] else "none")
    if head_box is not None:
        x1, y1, x2, y2 = np.asarray(head_box, float)
        ax.add_patch(Rectangle((x1, y1), x2 - x1, y2 - y1, fill=False, ec="white", lw=0.8, ls="--"))
    ax.set_xlim(-0.5, img.shape[1] - 0.5)
    ax.set_ylim(img.shape[0] - 0.5, -0.5)
    ax.set_axis_off()
    if title:
        ax.set_title(title, fontsize=8)


def gallery(dataset, indices, *, ncols: int = 8, title: str | None = None, head_boxes: bool = False,
            caption=None):
    """A grid of dataset items with their skeletons; `caption(item) -> str` labels each panel."""
    indices = list(indices)
    nrows = int(np.ceil(len(indices) / ncols))
    h, w = dataset[indices[0]]["image"].shape[1:]
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * 1.3, nrows * 1.3 * h / w), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    for ax, i in zip(axes.flat, indices):
        it = dataset[i]
        box = _crop_head_box(it) if head_boxes else None
        draw_pose(ax, it["image"], it["joints"], it["joints_vis"], visible=it["visible"], head_box=box,
                  title=caption(it) if caption else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _crop_head_box(item) -> np.ndarray:
    """A square of the item's head size / 0.6 / sqrt(2) side, centred between neck and head top."""
    j = item["joints"].numpy()
    side = float(item["head_size"]) / 0.6 / np.sqrt(2)
    mid = (j[8] + j[9]) / 2
    return np.concatenate([mid - side / 2, mid + side / 2])


def domain_stats(datasets: dict, n: int = 300) -> pd.DataFrame:
    """Per-crop appearance and pose statistics for each named dataset (first n items)."""
    rows = []
    for name, ds in datasets.items():
        for i in range(min(n, len(ds))):
            it = ds[i]
            img = to_display(it["image"])
            hsv = np.array([colorsys.rgb_to_hsv(*px) for px in img[::8, ::8].reshape(-1, 3)])
            lab = it["joints_vis"].numpy() > 0
            rows.append(dict(domain=name, brightness=float(img.mean()), saturation=float(hsv[:, 1].mean()),
                             contrast=float(img.std()), head_size_px=float(it["head_size"]),
                             labelled_joints=int(lab.sum()),
                             occluded_share=float(1 - it["visible"].numpy()[lab].mean()) if lab.any() else 0.0))
    return pd.DataFrame(rows)


def plot_domain_stats(df: pd.DataFrame, columns=("brightness", "saturation", "contrast", "head_size_px")):
    fig, axes = plt.subplots(1, len(columns), figsize=(3.2 * len(columns), 2.6))
    for ax, col in zip(axes, columns):
        sns.kdeplot(data=df, x=col, hue="domain", fill=True, common_norm=False, ax=ax, warn_singular=False)
        ax.set_ylabel("")
    fig.tight_layout()
    return fig


def pckh_example(item, pred, *, threshold: float = 0.5):
    """One crop, its ground truth and a prediction, with the PCKh radius around each labelled joint.

    Returns the figure and a per-joint table (error in pixels, normalised error, correct?).
    """
    gt, lab = item["joints"].numpy(), item["joints_vis"].numpy() > 0
    pred = np.asarray(pred, float)
    head = float(item["head_size"])
    err = np.linalg.norm(pred - gt, axis=1)
    counts = lab.copy()
    counts[list(EXCLUDED_FROM_MEAN)] = False
    table = pd.DataFrame(dict(joint=JOINT_NAMES, labelled=lab, counts_in_mean=counts, error_px=err,
                              error_over_head=err / head, correct=(err / head <= threshold) & lab))
    fig, ax = plt.subplots(figsize=(4.5, 6.0))
    draw_pose(ax, item["image"], gt, lab)
    for k in np.flatnonzero(lab):
        ok = table.correct[k]
        ax.add_patch(Circle(gt[k], threshold * head, fill=False, ec="#2ca02c" if ok else "#d62728", lw=0.8))
        ax.plot(*pred[k], "x", color="#2ca02c" if ok else "#d62728", ms=5, mew=1.5)
    ax.set_title(f"PCKh@{threshold}: circles of radius {threshold} x head size", fontsize=8)
    return fig, table


def pckh_of_example(item, pred, threshold: float = 0.5) -> dict[str, float]:
    """The group scores of one crop (what `pckh_example` draws)."""
    pck, count = pckh_per_joint(np.asarray(pred, float)[None], item["joints"].numpy()[None],
                                item["joints_vis"].numpy()[None] > 0, np.array([float(item["head_size"])]), threshold)
    return summarize(pck, count)


def group_table(scores: dict[str, dict[str, float]]) -> pd.DataFrame:
    """Rows: names; columns: Head ... Ankle, Mean."""
    return pd.DataFrame(scores).T[[*GROUPS, "Mean"]].round(2)
