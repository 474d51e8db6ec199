"""SynthPose's disk cache: each rendered split once under `cache_dir`, keyed by generator version, seed,
size and split, its images memory-mapped, its arrays checked against a manifest when read.

    python -c "from dphpe_core.synthcache import cache_path; print(cache_path('~/.cache/dphpe', 'val', 2000, 128, 96, 0))"

A corrupt or mismatched folder is refused with its path and how to rebuild it; two processes rendering
the same split at once both finish (the second's identical copy is dropped).
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np

from .synthpose import GENERATOR_VERSION, render_split


def cache_path(cache_dir: str, split: str, n: int, height: int, width: int, seed: int) -> Path:
    return Path(cache_dir).expanduser() / "synthpose" / f"v{GENERATOR_VERSION}-{split}-s{seed}-n{n}-{height}x{width}"


def load_split(split: str, n: int, *, height: int, width: int, seed: int, cache_dir: str,
               progress: bool = True) -> dict[str, np.ndarray]:
    """A rendered split, from the disk cache when present (images memory-mapped), else rendered and stored."""
    path = cache_path(cache_dir, split, n, height, width, seed)
    done = path / "complete"
    if not done.exists():
        data = render_split(split, n, height=height, width=width, seed=seed, progress=progress)
        tmp = path.with_name(path.name + f".tmp{os.getpid()}")
        tmp.mkdir(parents=True, exist_ok=True)
        for k, v in data.items():
            np.save(tmp / f"{k}.npy", v)
        (tmp / MANIFEST).write_text(json.dumps(_manifest(data, split=split, n=n, seed=seed), indent=1, sort_keys=True))
        (tmp / "complete").write_text("ok\n")
        try:
            tmp.rename(path)
        except OSError:  # another process finished first; its copy is identical
            import shutil
            shutil.rmtree(tmp, ignore_errors=True)
    return _read_cache(path, split=split, n=n, height=height, width=width, seed=seed)


MANIFEST = "manifest.json"


def _manifest(data: dict, *, split: str, n: int, seed: int) -> dict:
    """What a cache folder holds: the generator's version, the split and every array's shape and dtype."""
    return {"generator_version": GENERATOR_VERSION, "split": split, "n": n, "seed": seed,
            "arrays": {k: {"shape": list(v.shape), "dtype": str(v.dtype)} for k, v in data.items()}}


def _read_cache(path: Path, *, split: str, n: int, height: int, width: int, seed: int) -> dict[str, np.ndarray]:
    """The cache folder's arrays, checked against its manifest (written with the folder; a folder from
    before manifests gets one once its arrays pass the checks); a corrupt or mismatched cache names the
    file and says how to rebuild it."""
    def corrupt(what: str) -> ValueError:
        return ValueError(f"SynthPose cache {path}: {what}; delete that folder and run again to render it anew")

    data = {}
    for f in sorted(path.glob("*.npy")):
        try:
            data[f.stem] = np.load(f, mmap_mode="r" if f.stem == "images" else None)
        except (OSError, ValueError, EOFError) as e:
            raise corrupt(f"{f.name} cannot be read ({e})") from None
    if "images" not in data or tuple(data["images"].shape[:3]) != (n, height, width):          # (n, H, W, 3)
        raise corrupt(f"images have shape {getattr(data.get('images'), 'shape', None)}; expected {n} crops of "
                      f"{height}x{width}")
    short = {k: v.shape[0] for k, v in data.items() if v.shape[0] != n}
    if short:
        raise corrupt(f"arrays {short} do not hold {n} rows")
    found = _manifest(data, split=split, n=n, seed=seed)
    manifest = path / MANIFEST
    if not manifest.is_file():
        try:
            manifest.write_text(json.dumps(found, indent=1, sort_keys=True))
        except OSError:
            pass                      # a read-only cache is still checked above
        return data
    try:
        stored = json.loads(manifest.read_text())
    except (OSError, ValueError) as e:
        raise corrupt(f"{MANIFEST} cannot be read ({e})") from None
    if stored != found:
        diff = sorted(k for k in set(stored) | set(found) if stored.get(k) != found.get(k))
        raise corrupt(f"its arrays disagree with {MANIFEST} in {diff}")
    return data
