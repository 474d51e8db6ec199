"""The identity of the data outside the repository (MPII, COCO): part of a run's identity
(results.run_key), so that a changed annotation or image set is another run, never a reused record.

    python -c "from dphpe_core import make_config; from dphpe_core.fingerprint import data_fingerprint; print(repr(data_fingerprint(make_config('embedded'))))"

SynthPose's splits have none here ('' when every split is SynthPose): its cache is checked against its
manifest instead (synthcache.py).
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config


FINGERPRINT_FILES = {"mpii": ("annot/train.json", "annot/valid.json", "annot/gt_valid.mat", "mpii_human_pose_v1_u12_1.mat"),
                     "coco": ("annotations/person_keypoints_*.json", "*.json")}


IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png")


def _folder_fingerprint(root: Path, patterns: tuple[str, ...]) -> dict:
    """What a data folder holds: the SHA-256 of each annotation file matching `patterns`, and the name
    and size of every image file under it (reading every image would take minutes; a changed set, a
    renamed or resized file shows)."""
    import hashlib
    annotations = {}
    for pattern in patterns:
        for f in sorted(root.glob(pattern)):
            if f.is_file():
                annotations[str(f.relative_to(root))] = hashlib.sha256(f.read_bytes()).hexdigest()
    images = hashlib.sha256()
    count = 0
    for f in sorted(root.rglob("*")):
        if f.suffix.lower() in IMAGE_SUFFIXES and f.is_file():
            images.update(f"{f.relative_to(root)}\t{f.stat().st_size}\n".encode())
            count += 1
    return {"annotations": annotations, "images": count, "image_list": images.hexdigest()}


def data_fingerprint(cfg: Config) -> str:
    """12 hex digits naming the data outside the repository that `cfg` reads (MPII, COCO), part of a run's
    identity (results.run_key): a changed annotation or image set is another run, never a reused record.
    '' when every split is SynthPose, whose cache is checked against its manifest instead."""
    import hashlib
    parts = {}
    if cfg.dataset == "mpii":
        parts["mpii"] = _cached_fingerprint(cfg.data_root, "mpii")
    if cfg.public_dataset == "coco":
        parts["coco"] = _cached_fingerprint(cfg.public_root, "coco")
    if not parts:
        return ""
    return hashlib.sha256(json.dumps(parts, sort_keys=True).encode()).hexdigest()[:12]


def _cached_fingerprint(root: str, kind: str) -> dict:
    """_folder_fingerprint, once per folder state in a process (keyed on the folder's files' mtimes)."""
    folder = Path(root).expanduser()
    if not folder.is_dir():
        raise FileNotFoundError(f"{kind.upper()} folder {folder} does not exist; download it (the book's 'Reproduce' "
                                f"chapter) and set {'data_root' if kind == 'mpii' else 'public_root'}")
    stamp = tuple(sorted((str(f), f.stat().st_mtime_ns, f.stat().st_size) for f in folder.rglob("*") if f.is_file()))
    key = (str(folder), kind, hash(stamp))
    if key not in _FINGERPRINTS:
        _FINGERPRINTS[key] = _folder_fingerprint(folder, FINGERPRINT_FILES[kind])
    return _FINGERPRINTS[key]


_FINGERPRINTS: dict = {}
