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

from .pckh import EXCLUDED_FROM_MEAN, JOINT_NAMES, SKELETON, pckh_per_joint, summarize
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
    fig, panels = _panel_grid(dataset, indices, ncols=ncols, inches=1.3)
    for ax, _i, it in panels:
        box = _crop_head_box(it) if head_boxes else None
        draw_pose(ax, it["image"], it["joints"], it["joints_vis"], visible=it["visible"], head_box=box,
                  title=caption(it) if caption else None)
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def _panel_grid(dataset, indices, *, ncols: int, inches: float):
    """A figure of ncols-wide panels (axes off) and (axis, index, item) for each of `indices`."""
    indices = list(indices)
    nrows = int(np.ceil(len(indices) / ncols))
    h, w = dataset[indices[0]]["image"].shape[1:]
    fig, axes = plt.subplots(nrows, ncols, figsize=(ncols * inches, nrows * inches * h / w), squeeze=False)
    for ax in axes.flat:
        ax.set_axis_off()
    return fig, [(ax, i, dataset[i]) for ax, i in zip(axes.flat, indices)]


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
    table = pd.DataFrame(dict(labelled=lab, counts_in_mean=counts, error_px=err, error_over_head=err / head,
                              correct=(err / head <= threshold) & lab), index=pd.Index(JOINT_NAMES, name="joint"))
    fig, ax = plt.subplots(figsize=(4.5, 6.0))
    draw_pose(ax, item["image"], gt, lab)
    for k in np.flatnonzero(lab):
        ok = table.correct.iloc[k]
        ax.add_patch(Circle(gt[k], threshold * head, fill=False, ec="#2ca02c" if ok else "#d62728", lw=0.8))
        ax.plot(*pred[k], "x", color="#2ca02c" if ok else "#d62728", ms=5, mew=1.5)
    ax.set_title(f"PCKh@{threshold}: circles of radius {threshold} x head size", fontsize=8)
    return fig, table


def pckh_of_example(item, pred, threshold: float = 0.5) -> dict[str, float]:
    """The group scores of one crop (what `pckh_example` draws)."""
    pck, count = pckh_per_joint(np.asarray(pred, float)[None], item["joints"].numpy()[None],
                                item["joints_vis"].numpy()[None] > 0, np.array([float(item["head_size"])]), threshold)
    return summarize(pck, count)


# -- the DP primer ------------------------------------------------------------------------------


def toy_dp_step(grads: np.ndarray, *, clip_norm: float, noise_multiplier: float, seed: int = 0):
    """One DP-SGD step on 2-D per-sample gradients: raw, clipped to clip_norm, their mean, and the
    mean with Gaussian noise of std noise_multiplier * clip_norm / B (three panels)."""
    grads = np.asarray(grads, float)
    norms = np.linalg.norm(grads, axis=1, keepdims=True)
    clipped = grads * np.minimum(1.0, clip_norm / np.maximum(norms, 1e-12))
    rng = np.random.default_rng(seed)
    b = len(grads)
    noisy = clipped.mean(0) + rng.normal(0, noise_multiplier * clip_norm / b, (200, 2))
    lim = 1.1 * max(np.abs(grads).max(), clip_norm)
    fig, axes = plt.subplots(1, 3, figsize=(11, 3.8), sharex=True, sharey=True)
    for ax, g, title in ((axes[0], grads, "per-sample gradients"), (axes[1], clipped, f"clipped to C = {clip_norm:g}")):
        ax.quiver(np.zeros(b), np.zeros(b), g[:, 0], g[:, 1], angles="xy", scale_units="xy", scale=1, color="#4c72b0",
                  width=0.006)
        ax.set_title(title, fontsize=10)
    axes[1].add_patch(Circle((0, 0), clip_norm, fill=False, ls="--", ec="grey"))
    axes[2].scatter(*noisy.T, s=6, alpha=0.35, color="#dd8452", label="noisy mean (200 draws)")
    axes[2].quiver(0, 0, *clipped.mean(0), angles="xy", scale_units="xy", scale=1, color="k", width=0.01,
                   label="clipped mean")
    axes[2].quiver(0, 0, *grads.mean(0), angles="xy", scale_units="xy", scale=1, color="#4c72b0", width=0.01,
                   label="true mean")
    axes[2].set_title(f"+ noise, sigma = {noise_multiplier:g}", fontsize=10)
    axes[2].legend(fontsize=7, loc="lower left")
    for ax in axes:
        ax.set_xlim(-lim, lim)
        ax.set_ylim(-lim, lim)
        ax.set_aspect("equal")
        ax.axhline(0, color="0.85", lw=0.6, zorder=0)
        ax.axvline(0, color="0.85", lw=0.6, zorder=0)
    fig.tight_layout()
    return fig


def blur_views(items, *, kernel: int, sigma: float):
    """Crops, their blurred public view psi(x), and what the blur removes (the private part)."""
    from .transforms import blur
    fig, axes = plt.subplots(3, len(items), figsize=(1.6 * len(items), 6.4), squeeze=False)
    for j, it in enumerate(items):
        x = it["image"]
        px = blur(x, kernel=kernel, sigma=sigma)
        resid = (x - px).abs().mean(0)
        axes[0, j].imshow(to_display(x))
        axes[1, j].imshow(to_display(px))
        axes[2, j].imshow(resid.numpy(), cmap="magma")
    for i, name in enumerate(("crop x", "public view psi(x)", "|x - psi(x)|")):
        axes[i, 0].set_ylabel(name, fontsize=9)
    for ax in axes.flat:
        ax.set_xticks([])
        ax.set_yticks([])
    fig.tight_layout()
    return fig


# -- results ------------------------------------------------------------------------------------

def prediction_gallery(dataset, preds, indices, *, ncols: int = 6, title: str | None = None):
    """Predicted skeletons (for the labelled joints) on val crops, each titled with its PCKh@0.5."""
    fig, panels = _panel_grid(dataset, indices, ncols=ncols, inches=1.5)
    for ax, i, it in panels:
        score = pckh_of_example(it, preds[i])["Mean"]
        draw_pose(ax, it["image"], preds[i], it["joints_vis"], title=f"PCKh {score:.0f}")
    if title:
        fig.suptitle(title)
    fig.tight_layout()
    return fig


def learning_curves(curves: dict, *, title: str = ""):
    """Val PCKh@0.5 per epoch (and the training loss where it was logged: non-private runs only)."""
    has_loss = any(v is not None for v in curves["loss"])
    fig, axes = plt.subplots(1, 2 if has_loss else 1, figsize=(9 if has_loss else 4.8, 3.4), squeeze=False)
    axes[0, 0].plot(curves["epoch"], curves["val_pckh"], "o-")
    axes[0, 0].set(xlabel="epoch", ylabel="val PCKh@0.5 (no flip test)", title=title)
    if has_loss:
        axes[0, 1].plot(curves["epoch"], curves["loss"], "o-", color="#dd8452")
        axes[0, 1].set(xlabel="epoch", ylabel="training loss (KL)")
    fig.tight_layout()
    return fig


def errorbar_grid(stats: pd.DataFrame, *, x: str, hue: str, col: str | None = None, row: str | None = None,
                  y: str = "mean", err: str = "ci95", ylabel: str = "PCKh@0.5 (%)", logx: bool = False):
    """Lines of `y` against `x` per `hue`, one panel per (row, col), with +-err bars where there are seeds."""
    g = sns.FacetGrid(stats, col=col, row=row, hue=hue, height=3.0, aspect=1.15, margin_titles=True, sharey=True)

    def draw(data, color=None, label=None, **_):
        data = data.sort_values(x)
        plt.errorbar(data[x], data[y], yerr=data[err].fillna(0), color=color, label=label, marker="o", ms=4,
                     capsize=3, lw=1.4)
    g.map_dataframe(draw)
    if logx:
        g.set(xscale="log")
    g.set_axis_labels(x.replace("_", " "), ylabel)
    g.add_legend(title="")
    return g.figure




def joint_heatmaps(tables: dict):
    """booktables.per_joint's tables as heatmaps, one per PCKh threshold, 0 to 100."""
    fig, axes = plt.subplots(1, len(tables), figsize=(12, 3.2))
    for ax, (level, t) in zip(np.atleast_1d(axes), tables.items()):
        sns.heatmap(t.drop(columns=["± 95% CI", "seeds"]), annot=True, fmt=".0f", cmap="viridis", vmin=0, vmax=100,
                    cbar=False, ax=ax)
        ax.set(title=level, ylabel="")
    fig.tight_layout()
    return fig


def gain_grid(rec: pd.DataFrame):
    """findings.recovery_table's points gained on DP-SGD per epsilon, method and C, with 95% intervals."""
    fig = errorbar_grid(rec.rename(columns={"points": "mean", "points_ci": "ci95"}), x="epsilon", hue="Method",
                        col="clip_norm", ylabel="points gained on DP-SGD")
    for ax in fig.axes:
        ax.axhline(0, color="k", lw=0.8)
    return fig


def paper_scatter(both: pd.DataFrame, preset: str):
    """booktables.paper_against_ours: our mean against the paper's PCKh per cell, the diagonal marked."""
    g = sns.relplot(both, x="paper", y="ours", hue="Method", style="strategy", col="clip_norm", height=3.2)
    for ax in g.axes.flat:
        ax.plot([0, 100], [0, 100], ls=":", color="grey", lw=1)
    g.set_axis_labels("paper, MPII (PCKh@0.5)", f"ours, {preset} (PCKh@0.5)")
    return g.figure


def strategy_bars(top: pd.DataFrame, baselines: dict[str, float], *, errorbar):
    """PCKh@0.5 per method and strategy (bars with `errorbar`, per C), each strategy's non-private mean
    dashed in its colour."""
    g = sns.catplot(top, x="Method", y="pckh_mean", hue="strategy", col="clip_norm", kind="bar", errorbar=errorbar,
                    capsize=0.1, height=3.2, aspect=1.1)
    colours = dict(zip(sorted(top.strategy.unique()), sns.color_palette()))
    lines = [(colours[s], v) for s, v in baselines.items() if s in colours]
    for ax in g.axes.flat:
        for colour, value in lines:
            ax.axhline(value, ls="--", lw=1, color=colour)
    g.set_axis_labels("", "PCKh@0.5 (%)")
    return g.figure
