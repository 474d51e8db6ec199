"""COCO keypoints as a public source, mapped onto MPII's joints where COCO has them.

    python -c "from dphpe_core.coco import coco_source; print(coco_source('../shared/fixtures/coco-sample'))"

COCO's 17 keypoints cover 12 of MPII's 16 joints (ankles, knees, hips, wrists, elbows,
shoulders); pelvis, thorax, upper neck and head top stay unlabelled. A person box (x, y, w, h)
becomes a centre and a width with HRNet's convention: the box is widened or heightened to the
crop's aspect ratio, then grown by 1.25. Crowd annotations and people with no labelled keypoint
are skipped and counted.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from .sources import RecordSource, Sample
from .pckh import J, NUM_JOINTS

COCO_NAMES = ("nose", "left_eye", "right_eye", "left_ear", "right_ear", "left_shoulder", "right_shoulder",
              "left_elbow", "right_elbow", "left_wrist", "right_wrist", "left_hip", "right_hip", "left_knee",
              "right_knee", "left_ankle", "right_ankle")
# MPII joint index -> COCO keypoint index
COCO_TO_MPII = {J["r_ankle"]: 16, J["r_knee"]: 14, J["r_hip"]: 12, J["l_hip"]: 11, J["l_knee"]: 13,
                J["l_ankle"]: 15, J["r_wrist"]: 10, J["r_elbow"]: 8, J["r_shoulder"]: 6, J["l_shoulder"]: 5,
                J["l_elbow"]: 7, J["l_wrist"]: 9}


def read_coco(path, *, aspect: float = 0.75) -> tuple[list[dict], Counter]:
    """Person records (zero-based MPII joints) from a COCO keypoints JSON; skipped counts by reason."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"COCO annotation file not found: {path} (expected person_keypoints_*.json)")
    try:
        d = json.loads(path.read_text())
        images = {im["id"]: im for im in d["images"]}
        anns = d["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as e:
        raise ValueError(f"{path}: not a COCO keypoints file ({type(e).__name__}: {e}); expected "
                         f"'images' and 'annotations' lists") from None
    records, skipped = [], Counter()
    for i, a in enumerate(anns):
        kp = np.asarray(a.get("keypoints", []), np.float64)
        if kp.size != 3 * len(COCO_NAMES):
            raise ValueError(f"{path}: annotation {i} (id {a.get('id')}) has {kp.size // 3} keypoints; expected 17")
        if a.get("iscrowd", 0):
            skipped["crowd"] += 1
            continue
        if a.get("image_id") not in images:
            raise ValueError(f"{path}: annotation {i} refers to unknown image_id {a.get('image_id')}")
        kp = kp.reshape(17, 3)
        joints, vis, visible = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS, np.float32), np.zeros(NUM_JOINTS, np.float32)
        for m, c in COCO_TO_MPII.items():
            joints[m], vis[m], visible[m] = kp[c, :2], float(kp[c, 2] > 0), float(kp[c, 2] == 2)
        if vis.sum() == 0:
            skipped["no keypoints"] += 1
            continue
        x, y, w, h = (float(v) for v in a["bbox"])
        if w <= 0 or h <= 0:
            skipped["empty box"] += 1
            continue
        w, h = (w, w / aspect) if w > aspect * h else (h * aspect, h)
        records.append(dict(image=images[a["image_id"]]["file_name"], center=np.array([x + w / 2, y + h / 2]) - 0.5,
                            box_width=w * 1.25, joints=joints, joints_vis=vis, visible=visible))
    return records, skipped


class COCOSource(RecordSource):
    label = "COCO"

    def sample(self, i: int) -> Sample:
        r, _, image = self.open_image(i)
        # COCO has no head box; PCKh is never computed on the public split
        return Sample(image=image, center=r["center"], box_width=r["box_width"], joints=r["joints"],
                      joints_vis=r["joints_vis"], head_box=np.array([0, 0, 1, 1], np.float32), visible=r["visible"])


def coco_source(root, *, aspect: float = 0.75) -> tuple[COCOSource, dict]:
    """COCO under `root`: the first annotations/person_keypoints_*.json (or any *.json at the top) and its images."""
    root = Path(root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"COCO public_root {root} does not exist")
    candidates = sorted(root.glob("annotations/person_keypoints_*.json")) or sorted(root.glob("*.json"))
    if not candidates:
        raise FileNotFoundError(f"{root}: no annotations/person_keypoints_*.json or *.json found")
    records, skipped = read_coco(candidates[0], aspect=aspect)
    image_dir = next((d for d in (root / "images", root / "train2017", root) if d.is_dir()
                      and all((d / r["image"]).is_file() for r in records[:1])), root)
    return COCOSource(records, image_dir, name="public"), dict(skipped)
