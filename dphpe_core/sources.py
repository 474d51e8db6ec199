"""What every data source yields, and subsets of a source: the types data.py, mpii.py and coco.py share.

    python -c "from dphpe_core.sources import Sample; help(Sample)"

A source is anything with `len()` and `sample(i) -> Sample`; an in-memory one (SynthPose) also has
`arrays` (and `attr_keys`), from which `PoseDataset` builds whole batches. `RecordSource` is the base
of the file-backed sources (MPII, COCO). `SubsetSource` and `split_source` cut a source into
disjoint parts (the tuning's stand-in splits of the public split).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
from PIL import Image


@dataclass
class Sample:
    """One person as its source has it (zero-based source pixels)."""
    image: Image.Image
    center: np.ndarray            # (2,)
    box_width: float              # width of the person box that fills the crop's width
    joints: np.ndarray            # (16, 2)
    joints_vis: np.ndarray        # (16,) 1 where labelled
    head_box: np.ndarray | None   # (4,) x1, y1, x2, y2, when the source has one
    visible: np.ndarray | None = None           # (16,) labelled and not occluded, when known
    person_id: int = -1
    attributes: dict = field(default_factory=dict)


def derived_head_box(joints: np.ndarray) -> np.ndarray:
    """A square head box centred between upper neck and head top, side = their distance.

    Used only where a source has no head box (MPII's train.json, COCO).
    """
    neck, top = joints[8], joints[9]
    mid, half = (neck + top) / 2, np.linalg.norm(top - neck) / 2
    return np.concatenate([mid - half, mid + half]).astype(np.float32)


class RecordSource:
    """Base of the file-backed sources (MPII, COCO): person records and an image folder, every
    image's presence checked up front."""

    label = "records"

    def __init__(self, records: list[dict], image_dir, *, name: str):
        self.records, self.image_dir, self.name = records, Path(image_dir), name
        if not records:
            raise ValueError(f"{self.label} split {name!r} is empty; expected at least one person record")
        missing = sorted({r["image"] for r in records if not (self.image_dir / r["image"]).is_file()})
        if missing:
            raise FileNotFoundError(f"{self.label} split {name!r}: {len(missing)} image file(s) missing under "
                                    f"{self.image_dir}, e.g. {missing[:3]}")

    def __len__(self) -> int:
        return len(self.records)

    def __repr__(self) -> str:
        return f"{self.label}({self.name}, n={len(self)})"

    def open_image(self, i: int) -> tuple[dict, Path, Image.Image]:
        r = self.records[i]
        path = self.image_dir / r["image"]
        try:
            return r, path, Image.open(path).convert("RGB")
        except OSError as e:
            raise ValueError(f"{path}: cannot be read as an image ({e})") from None


class SubsetSource:
    """Rows `indices` of another source, as a source of its own (the tuning's stand-in splits)."""

    def __init__(self, source, indices, *, name: str):
        self.base, self.indices, self.name = source, np.asarray(indices, dtype=np.int64), name
        if len(self.indices) == 0:
            raise ValueError(f"subset {name!r} of {source!r} is empty; expected at least one row")
        if hasattr(source, "arrays"):        # in memory: PoseDataset builds whole batches from these
            self.arrays = {k: v[self.indices] for k, v in source.arrays.items()}
            self.attr_keys = source.attr_keys

    def __len__(self) -> int:
        return len(self.indices)

    def __repr__(self) -> str:
        return f"Subset({self.name}, n={len(self)} of {self.base!r})"

    def sample(self, i: int) -> Sample:
        return self.base.sample(int(self.indices[i]))


def split_source(source, fractions: dict[str, float], *, seed: int) -> dict[str, SubsetSource]:
    """Disjoint subsets of `source` in the given proportions, by one seeded permutation of its rows."""
    order = np.random.default_rng(seed).permutation(len(source))
    total, out, start = sum(fractions.values()), {}, 0
    for i, (name, share) in enumerate(fractions.items()):
        stop = len(order) if i == len(fractions) - 1 else start + int(round(len(order) * share / total))
        out[name] = SubsetSource(source, order[start:stop], name=name)
        start = stop
    return out
