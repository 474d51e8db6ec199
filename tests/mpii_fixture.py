"""A small MPII-format data set written by the project's own code, for loader and evaluator tests.

    python tests/mpii_fixture.py /tmp/mpii-fixture

SynthPose crops are pasted, enlarged by a known factor, into larger images; the annotations are
written the way MPII users have them: HRNet's train.json / valid.json (one-based, centre moved up
by 15 x scale, scale without the 1.25 margin), HRNet's gt_valid.mat, and an official-style
RELEASE .mat. The truth (zero-based joints and head boxes in the large images, and the source
crops) comes back in a dict so tests can check the loaders against it.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import numpy as np
from PIL import Image
from scipy.io import savemat

from dphpe_core.mpii import write_gt_valid
from dphpe_core.synthpose import render_split

H, W = 128, 96


def _to_big(p, f: float, offset) -> np.ndarray:
    """Crop pixels -> pixels of the large image the crop was enlarged by f and pasted into at offset."""
    return (np.asarray(p, np.float64) + 0.5) * f - 0.5 + offset


def write_mpii_fixture(root, *, n: int = 6, seed: int = 3) -> dict:
    root = Path(root)
    (root / "images").mkdir(parents=True, exist_ok=True)
    (root / "annot").mkdir(exist_ok=True)
    crops = render_split("private", n, height=H, width=W, seed=seed, workers=1)
    rng = np.random.default_rng(seed)
    people = []
    for i in range(n):
        f = float(rng.uniform(1.5, 2.5))
        big = Image.fromarray(rng.integers(0, 255, (int(H * 3.2), int(W * 3.6), 3), dtype=np.uint8))
        patch = Image.fromarray(crops["images"][i]).resize((round(W * f), round(H * f)), Image.Resampling.BILINEAR)
        f = patch.size[0] / W  # the exact factor after rounding
        ox, oy = int(rng.integers(0, big.size[0] - patch.size[0])), int(rng.integers(0, big.size[1] - patch.size[1]))
        big.paste(patch, (ox, oy))
        name = f"{i:09d}.png"
        big.save(root / "images" / name)
        offset = np.array([ox, oy])
        joints = _to_big(crops["joints"][i], f, offset)
        box = np.concatenate([_to_big(crops["head_box"][i][:2], f, offset), _to_big(crops["head_box"][i][2:], f, offset)])
        centre = _to_big([(W - 1) / 2, (H - 1) / 2], f, offset)
        people.append(dict(image=name, joints=joints, vis=crops["joints_vis"][i].copy(), head_box=box,
                           centre=centre, box_width=W * f, size=big.size))
    for p in people:  # MPII leaves unlabelled joints out; HRNet's JSON writes them as (-1, -1) -> here (0, 0)
        p["joints"][p["vis"] == 0] = -1.0

    def hrnet(p):
        scale = p["box_width"] / 1.25 / 200.0
        return {"image": p["image"], "scale": scale, "joints_vis": p["vis"].astype(int).tolist(),
                "center": [p["centre"][0] + 1, p["centre"][1] + 1 - 15 * scale],
                "joints": (p["joints"] + 1).tolist()}

    train, val = people[: n // 2], people[n // 2:]
    (root / "annot" / "train.json").write_text(json.dumps([hrnet(p) for p in train]))
    (root / "annot" / "valid.json").write_text(json.dumps([hrnet(p) for p in val]))
    write_gt_valid(root / "annot" / "gt_valid.mat", np.stack([p["joints"] for p in val]) + 1,
                   np.stack([p["vis"] == 0 for p in val]), np.stack([p["head_box"] for p in val]) + 1)
    _write_release(root / "mpii_human_pose_v1_u12_1.mat", train)
    return dict(root=root, train=train, val=val, crops=crops)


def _struct_array(dtype_names, rows):
    arr = np.zeros((1, len(rows)), dtype=[(k, "O") for k in dtype_names])
    for i, row in enumerate(rows):
        for k in dtype_names:
            arr[0, i][k] = row[k]
    return arr


def _write_release(path, people) -> None:
    """An official-style RELEASE struct: train images with annorects, plus one test image and one
    train annorect without keypoints (which the reader must skip and count)."""
    annolist, img_train = [], []
    for p in people:
        labelled = np.flatnonzero(p["vis"] > 0)
        points = _struct_array(("x", "y", "id", "is_visible"),
                               [dict(x=p["joints"][k, 0] + 1, y=p["joints"][k, 1] + 1, id=int(k), is_visible=1)
                                for k in labelled])
        scale = p["box_width"] / 1.25 / 200.0
        rect = dict(x1=p["head_box"][0] + 1, y1=p["head_box"][1] + 1, x2=p["head_box"][2] + 1,
                    y2=p["head_box"][3] + 1, annopoints={"point": points}, scale=scale,
                    objpos={"x": p["centre"][0] + 1, "y": p["centre"][1] + 1 - 15 * scale})
        unlabelled = dict(x1=1.0, y1=1.0, x2=2.0, y2=2.0, annopoints=np.zeros((0, 0)), scale=1.0,
                          objpos={"x": 5.0, "y": 5.0})
        rects = [rect, unlabelled] if not annolist else [rect]
        annolist.append(dict(image={"name": p["image"]}, annorect=_struct_array(tuple(rect), rects)))
        img_train.append(1)
    annolist.append(dict(image={"name": "test_only.jpg"}, annorect=np.zeros((0, 0))))
    img_train.append(0)
    release = {"annolist": _struct_array(("image", "annorect"), annolist),
               "img_train": np.array([img_train], dtype=np.uint8), "version": "12"}
    savemat(str(path), {"RELEASE": release})


if __name__ == "__main__":
    info = write_mpii_fixture(sys.argv[1] if len(sys.argv) > 1 else "mpii-fixture")
    print(f"wrote {info['root']}: {len(info['train'])} train, {len(info['val'])} val people")
