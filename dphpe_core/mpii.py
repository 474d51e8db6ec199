"""MPII Human Pose: annotations as users have them, crops, and HRNet's PCKh evaluation.

    dphpe eval-mpii preds.npy data/mpii/annot/gt_valid.mat

Expected layout under `data_root` (HRNet / SimpleBaseline's):
    images/*.jpg
    annot/train.json, annot/valid.json      (image, center, scale, joints, joints_vis)
    annot/gt_valid.mat                      (pos_gt_src, jnt_missing, headboxes_src)
or, for training only, the official `mpii_human_pose_v1_u12_1.mat` (RELEASE struct).

Conventions (HRNet's): coordinates in the files are one-based; the person centre moves down by
15 x scale and the box grows by 1.25; scale is the person height / 200 pixels; joints_vis
means "labelled".
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import numpy as np
from .sources import RecordSource, Sample
from .pckh import JOINT_NAMES, NUM_JOINTS, pckh_per_joint, summarize

PIXEL_STD = 200.0
MAT_NAMES = ("rank", "rkne", "rhip", "lhip", "lkne", "lank", "pelv", "thor", "neck", "head",
             "rwri", "relb", "rsho", "lsho", "lelb", "lwri")   # gt_valid.mat's names, MPII order
EDGE_TOLERANCE = 8.0   # pixels a labelled joint may lie outside its image (annotators click edges)


class MPIIError(ValueError):
    """Malformed MPII input; the message names the file, the record and what was expected."""


def _check_joints(path, i, joints, vis):
    if joints.shape != (NUM_JOINTS, 2):
        raise MPIIError(f"{path}: record {i}: 'joints' has shape {joints.shape}; expected ({NUM_JOINTS}, 2) "
                        f"(MPII's joints: {', '.join(JOINT_NAMES)})")
    if vis.shape != (NUM_JOINTS,):
        raise MPIIError(f"{path}: record {i}: 'joints_vis' has {vis.size} values; expected {NUM_JOINTS}")
    if not np.all(np.isfinite(joints)):
        raise MPIIError(f"{path}: record {i}: 'joints' holds non-finite values")
    if not np.all(np.isin(vis, (0, 1))):
        bad = sorted({float(v) for v in vis[~np.isin(vis, (0, 1))]})
        raise MPIIError(f"{path}: record {i}: 'joints_vis' holds {bad}; expected 0 (not labelled) or 1 (labelled)")


def read_hrnet_json(path) -> list[dict]:
    """Records from HRNet's train.json / valid.json, converted to zero-based pixels.

    Each record: image, center (2,), box_width, joints (16, 2), joints_vis (16,).
    """
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII annotation file not found: {path} (expected HRNet's JSON, "
                                f"e.g. data/mpii/annot/train.json)")
    try:
        raw = json.loads(path.read_text())
    except json.JSONDecodeError as e:
        raise MPIIError(f"{path}: not valid JSON ({e})") from None
    if not isinstance(raw, list):
        raise MPIIError(f"{path}: expected a JSON list of person records, got {type(raw).__name__}")
    out = []
    for i, a in enumerate(raw):
        missing = {"image", "center", "scale", "joints", "joints_vis"} - set(a if isinstance(a, dict) else {})
        if missing:
            raise MPIIError(f"{path}: record {i} lacks field(s) {sorted(missing)}; expected image, center, "
                            f"scale, joints, joints_vis")
        try:
            joints = np.asarray(a["joints"], np.float64)
            vis = np.asarray(a["joints_vis"], np.float64).reshape(-1)
            c = np.asarray(a["center"], np.float64).reshape(-1)
            s = float(a["scale"])
        except (TypeError, ValueError) as e:
            raise MPIIError(f"{path}: record {i} ({a.get('image')}): non-numeric field ({e})") from None
        _check_joints(path, i, joints, vis)
        if c.shape != (2,) or not s > 0:
            raise MPIIError(f"{path}: record {i}: expected center [x, y] and scale > 0, got {a['center']}, {a['scale']}")
        out.append(_record(a["image"], c, s, joints, vis))
    return out


def _record(image, center, scale, joints, vis, head_box=None, visible=None) -> dict:
    """HRNet's conventions applied to one-based annotation values."""
    c = np.array(center, np.float64)
    if c[0] != -1:
        c[1] += 15 * scale
        scale *= 1.25
    rec = dict(image=str(image), center=c - 1, box_width=scale * PIXEL_STD, joints=joints - 1,
               joints_vis=(vis > 0).astype(np.float32))
    rec["head_box"] = None if head_box is None else np.asarray(head_box, np.float64) - 1
    rec["visible"] = visible
    return rec


def _items(x):
    """A MATLAB struct array as loaded with squeeze_me (scalar, array or empty) -> list."""
    if x is None:
        return []
    if isinstance(x, np.ndarray):
        return list(x.reshape(-1))
    return [x]


def _num(x) -> float | None:
    try:
        a = np.asarray(x, np.float64).reshape(-1)
    except (TypeError, ValueError):
        return None
    return float(a[0]) if a.size == 1 else None


def read_release_mat(path) -> tuple[list[dict], Counter]:
    """Training records from the official mpii_human_pose_v1_u12_1.mat and the skipped counts by reason."""
    from scipy.io import loadmat
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII annotation file not found: {path} (expected mpii_human_pose_v1_u12_1.mat)")
    try:
        release = loadmat(str(path), struct_as_record=False, squeeze_me=True)["RELEASE"]
    except KeyError:
        raise MPIIError(f"{path}: no RELEASE struct; expected the official MPII annotation file") from None
    except Exception as e:  # scipy raises several types on corrupt files
        raise MPIIError(f"{path}: cannot be read as a MATLAB file ({e})") from None
    annolist, train = _items(release.annolist), np.atleast_1d(release.img_train).reshape(-1)
    if len(annolist) != len(train):
        raise MPIIError(f"{path}: annolist has {len(annolist)} images but img_train {len(train)} flags")
    records, skipped = [], Counter()
    for idx, (anno, is_train) in enumerate(zip(annolist, train)):
        if not is_train:
            continue
        name = getattr(getattr(anno, "image", None), "name", None)
        for rect in _items(getattr(anno, "annorect", None)):
            points = _items(getattr(getattr(rect, "annopoints", None), "point", None))
            objpos, scale = getattr(rect, "objpos", None), _num(getattr(rect, "scale", None))
            if not points:
                skipped["no keypoints"] += 1
                continue
            if objpos is None or scale is None or _num(getattr(objpos, "x", None)) is None:
                skipped["no objpos/scale"] += 1
                continue
            joints, vis, visible = np.zeros((NUM_JOINTS, 2)), np.zeros(NUM_JOINTS), np.zeros(NUM_JOINTS, np.float32)
            for p in points:
                jid = int(_num(p.id))
                if not 0 <= jid < NUM_JOINTS:
                    raise MPIIError(f"{path}: image {idx} ({name}): joint id {jid} outside 0..15")
                joints[jid] = (_num(p.x), _num(p.y))
                vis[jid] = 1
                v = _num(getattr(p, "is_visible", None))
                visible[jid] = 1.0 if v is None or v > 0 else 0.0   # MPII leaves it empty where visible
            box = [_num(getattr(rect, k, None)) for k in ("x1", "y1", "x2", "y2")]
            records.append(_record(name, (_num(objpos.x), _num(objpos.y)), scale, joints, vis,
                                   head_box=box if None not in box else None, visible=visible))
    return records, skipped


class MPIISource(RecordSource):
    """Samples from MPII records and an image folder."""

    label = "MPII"

    def sample(self, i: int) -> Sample:
        r, path, image = self.open_image(i)
        w, h = image.size
        lab = r["joints_vis"] > 0
        t = EDGE_TOLERANCE
        inside = ((-t <= r["joints"][:, 0]) & (r["joints"][:, 0] <= w - 1 + t)
                  & (-t <= r["joints"][:, 1]) & (r["joints"][:, 1] <= h - 1 + t))
        if np.any(lab & ~inside):
            bad = [JOINT_NAMES[k] for k in np.flatnonzero(lab & ~inside)]
            raise MPIIError(f"{path}: {self.name} record {i}: labelled joint(s) {bad} lie outside the "
                            f"{w}x{h} image")
        return Sample(image=image, center=r["center"], box_width=r["box_width"], joints=r["joints"],
                      joints_vis=r["joints_vis"], head_box=r["head_box"], visible=r["visible"])


def read_gt_valid(path) -> dict[str, np.ndarray]:
    """HRNet's gt_valid.mat as (N, 16, 2) one-based joints, (N, 16) missing flags and (N, 4) head boxes."""
    from scipy.io import loadmat
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"MPII ground truth not found: {path} (expected HRNet's annot/gt_valid.mat)")
    try:
        m = loadmat(str(path))
    except Exception as e:
        raise MPIIError(f"{path}: cannot be read as a MATLAB file ({e})") from None
    need = {"pos_gt_src", "jnt_missing", "headboxes_src"}
    if need - set(m):
        raise MPIIError(f"{path}: lacks {sorted(need - set(m))}; expected HRNet's gt_valid.mat")
    pos, missing, boxes = m["pos_gt_src"], m["jnt_missing"], m["headboxes_src"]
    if pos.ndim != 3 or pos.shape[:2] != (NUM_JOINTS, 2) or missing.shape != (NUM_JOINTS, pos.shape[2]) \
            or boxes.shape != (2, 2, pos.shape[2]):
        raise MPIIError(f"{path}: shapes pos_gt_src {pos.shape}, jnt_missing {missing.shape}, headboxes_src "
                        f"{boxes.shape}; expected (16, 2, N), (16, N), (2, 2, N)")
    order = np.arange(NUM_JOINTS)
    if "dataset_joints" in m:
        names = [str(np.asarray(x).reshape(-1)[0]) for x in np.asarray(m["dataset_joints"]).reshape(-1)]
        if sorted(names) != sorted(MAT_NAMES):
            raise MPIIError(f"{path}: dataset_joints {names}; expected MPII's {list(MAT_NAMES)}")
        order = np.array([names.index(n) for n in MAT_NAMES])
    return dict(joints=np.transpose(pos, (2, 0, 1))[:, order].astype(np.float64),
                missing=missing.T[:, order].astype(bool),
                head_boxes=np.transpose(boxes, (2, 0, 1)).reshape(-1, 4).astype(np.float64))


def write_gt_valid(path, joints, missing, head_boxes) -> None:
    """Write a gt_valid.mat in HRNet's layout (one-based joints (N,16,2), missing (N,16), boxes (N,4))."""
    from scipy.io import savemat
    joints, boxes = np.asarray(joints, np.float64), np.asarray(head_boxes, np.float64)
    names = np.empty((1, NUM_JOINTS), dtype=object)
    names[0, :] = MAT_NAMES
    savemat(str(path), {"dataset_joints": names, "pos_gt_src": np.transpose(joints, (1, 2, 0)),
                        "jnt_missing": np.asarray(missing, np.float64).T,
                        "headboxes_src": np.transpose(boxes.reshape(-1, 2, 2), (1, 2, 0))})


def evaluate_mpii(preds, gt_valid_path, threshold: float = 0.5) -> dict[str, float]:
    """PCKh of predictions on MPII val, exactly as HRNet computes it.

    preds: (N, 16, 2) zero-based pixel coordinates in the original images, in valid.json's order.
    Returns Head, Shoulder, Elbow, Wrist, Hip, Knee, Ankle, Mean (percent).
    """
    gt = read_gt_valid(gt_valid_path)
    preds = np.asarray(preds, np.float64)
    if preds.shape != gt["joints"].shape:
        raise ValueError(f"preds have shape {preds.shape}; {gt_valid_path} expects {gt['joints'].shape} "
                         f"(N, 16, 2) in valid.json's order")
    if not np.all(np.isfinite(preds)):
        bad = np.unique(np.nonzero(~np.isfinite(preds))[0])
        raise ValueError(f"preds hold non-finite coordinates for {len(bad)} of {len(preds)} people (first: index "
                         f"{bad[0]}); a PCKh over them would count misses silently: fix the predictions first")
    from .pckh import head_size_from_box
    pck, count = pckh_per_joint(preds + 1.0, gt["joints"], ~gt["missing"], head_size_from_box(gt["head_boxes"]),
                                threshold)
    return summarize(pck, count)


def mpii_sources(data_root) -> tuple[MPIISource, MPIISource, dict]:
    """(train, val, skipped counts) from `data_root` in HRNet's layout (or the official .mat for train)."""
    root = Path(data_root).expanduser()
    if not root.is_dir():
        raise FileNotFoundError(f"MPII data_root {root} does not exist; download MPII (see the book's "
                                f"'Reproduce' chapter) and set data_root")
    annot, images = root / "annot", root / "images"
    skipped: Counter = Counter()
    if (annot / "train.json").is_file():
        train = read_hrnet_json(annot / "train.json")
    elif (root / "mpii_human_pose_v1_u12_1.mat").is_file():
        train, skipped = read_release_mat(root / "mpii_human_pose_v1_u12_1.mat")
    else:
        raise FileNotFoundError(f"{root}: expected annot/train.json (HRNet) or mpii_human_pose_v1_u12_1.mat")
    val = read_hrnet_json(annot / "valid.json")
    gt = annot / "gt_valid.mat"
    if gt.is_file():
        boxes = read_gt_valid(gt)["head_boxes"]
        if len(boxes) != len(val):
            raise MPIIError(f"{gt} has {len(boxes)} people but {annot / 'valid.json'} has {len(val)}")
        for r, b in zip(val, boxes):
            r["head_box"] = b - 1
    return MPIISource(train, images, name="train"), MPIISource(val, images, name="val"), dict(skipped)
