"""Data sets: `build_data(cfg)` gives the private training split, the public split and val.

    python -c "from dphpe_core import make_config, build_data; print(build_data(make_config('smoke')))"

Every source (SynthPose, MPII, COCO) yields raw `Sample`s (sources.py): an image, the person's
box (centre and width in source pixels), joints in zero-based source pixels, which joints are
labelled, and a head box where known. `PoseDataset` turns a sample into a training item the same way for all
sources: the top-down affine crop (with flip / rotation / scale jitter on training splits), the
ImageNet-normalised image, the SimCC targets and the head size in crop pixels. Items are dicts
that torch's `default_collate` batches.

For in-memory sources (SynthPose) `PoseDataset.batch` builds a whole batch at once: the same
crops, with the image warp done by one `grid_sample` over the batch instead of PIL item by item.
The project's loaders wrap a data set in `Batched` (torch's DataLoader then fetches whole batches)
and use `collate`, which passes such a ready batch through.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass

import numpy as np
import torch
from PIL import Image
from torch.utils.data import Dataset, default_collate

from . import simcc
from .config import Config
from .pckh import head_size_from_box
from .sources import Sample, derived_head_box
from .transforms import (FLIP_PERM, IMAGENET_MEAN, IMAGENET_STD, apply_affine, crop_affine,
                         sample_jitter, swap_left_right, to_model_input, warp_image)


class PoseDataset(Dataset):
    """Crops, augments and encodes the samples of a source for the configured input size."""

    def __init__(self, source, cfg: Config, *, train: bool, name: str):
        if len(source) == 0:
            raise ValueError(f"the {name} split is empty ({source!r}); expected at least one person")
        self.source, self.cfg, self.train, self.name = source, cfg, train, name

    def __len__(self) -> int:
        return len(self.source)

    def without_augmentation(self) -> "PoseDataset":
        """The same samples, cropped as for evaluation (for figures and statistics)."""
        return PoseDataset(self.source, self.cfg, train=False, name=self.name)

    def __repr__(self) -> str:
        return f"PoseDataset({self.name}, n={len(self)}, train={self.train}, source={self.source!r})"

    def __getitem__(self, index: int) -> dict:
        cfg, s = self.cfg, self.source.sample(index)
        out_size = (cfg.input_h, cfg.input_w)
        scale, rot, flip = 1.0, 0.0, False
        if self.train and cfg.augment:
            scale, rot, flip = sample_jitter(None, rotation_deg=cfg.rotation_deg, scale_jitter=cfg.scale_jitter)
        m = crop_affine(s.center, s.box_width * scale, out_size, rotation_deg=rot, flip=flip)
        joints = apply_affine(s.joints, m)
        vis = np.asarray(s.joints_vis, np.float32)
        visible = np.asarray(s.visible if s.visible is not None else s.joints_vis, np.float32)
        if flip:
            joints, vis, visible = (swap_left_right(a) for a in (joints, vis, visible))
        box = s.head_box if s.head_box is not None else derived_head_box(s.joints)
        head_size = float(head_size_from_box(box)) * abs(np.linalg.det(m[:, :2])) ** 0.5
        tx, ty, tw = simcc.encode(joints, vis, width=cfg.input_w, height=cfg.input_h,
                                  split=cfg.simcc_split, sigma=cfg.simcc_sigma)
        image = warp_image(s.image, m, out_size)
        return {
            "image": to_model_input(image),
            "joints": torch.as_tensor(joints, dtype=torch.float32),
            "joints_vis": tw.clone(),               # labelled and inside the crop
            "visible": torch.as_tensor(visible, dtype=torch.float32) * tw,
            "target_x": tx, "target_y": ty, "target_weight": tw,
            "head_size": torch.tensor(head_size, dtype=torch.float32),
            "affine": torch.as_tensor(m, dtype=torch.float64),
            "index": index, "person_id": s.person_id,
            "attributes": {k: torch.as_tensor(v) for k, v in s.attributes.items()},
        }


    def batch(self, indices) -> dict | list:
        """A batch of items: one collated dict for in-memory sources (vectorised), else a list."""
        indices = [int(i) for i in indices]
        if not indices or not hasattr(self.source, "arrays"):
            return [self[i] for i in indices]
        return self._batch(indices)

    def _batch(self, indices: list[int]) -> dict:
        cfg, a, n = self.cfg, self.source.arrays, len(indices)
        out_size = (cfg.input_h, cfg.input_w)
        images = torch.from_numpy(np.ascontiguousarray(a["images"][indices]))          # (B, H, W, 3) uint8
        h0, w0 = images.shape[1:3]
        center = np.array([(w0 - 1) / 2, (h0 - 1) / 2])
        if self.train and cfg.augment:
            u, r, f = torch.randn(n, 2), torch.rand(n), torch.rand(n)   # sample_jitter's draws, for a batch
            scale = (u[:, 0] * cfg.scale_jitter + 1).clamp(1 - cfg.scale_jitter, 1 + cfg.scale_jitter).tolist()
            rot = torch.where(r < 0.6, (u[:, 1] * cfg.rotation_deg).clamp(-2 * cfg.rotation_deg, 2 * cfg.rotation_deg),
                              torch.zeros(n)).tolist()
            flip = (f < 0.5).tolist()
        else:
            scale, rot, flip = [1.0] * n, [0.0] * n, [False] * n
        m = np.stack([crop_affine(center, w0 * sc, out_size, rotation_deg=ro, flip=fl)
                      for sc, ro, fl in zip(scale, rot, flip)])                               # (B, 2, 3)
        joints = a["joints"][indices].astype(np.float64) @ m[:, :, :2].transpose(0, 2, 1) + m[:, None, :, 2]
        vis = a["joints_vis"][indices].astype(np.float32)
        visible = a["visible"][indices].astype(np.float32)
        fl = np.asarray(flip)
        for arr in (joints, vis, visible):
            arr[fl] = arr[fl][:, FLIP_PERM]
        head = head_size_from_box(a["head_box"][indices]) * np.abs(np.linalg.det(m[:, :, :2])) ** 0.5
        j = len(FLIP_PERM)
        tx, ty, tw = simcc.encode(joints.reshape(-1, 2), vis.reshape(-1), width=cfg.input_w, height=cfg.input_h,
                                  split=cfg.simcc_split, sigma=cfg.simcc_sigma)
        tx, ty, tw = tx.view(n, j, -1), ty.view(n, j, -1), tw.view(n, j)
        return {
            "image": _warp_batch(images, m, out_size),
            "joints": torch.as_tensor(joints, dtype=torch.float32),
            "joints_vis": tw.clone(),
            "visible": torch.as_tensor(visible) * tw,
            "target_x": tx, "target_y": ty, "target_weight": tw,
            "head_size": torch.as_tensor(head, dtype=torch.float32),
            "affine": torch.as_tensor(m, dtype=torch.float64),
            "index": torch.as_tensor(indices), "person_id": torch.as_tensor(a["person_id"][indices].astype(np.int64)),
            "attributes": {k[5:]: torch.as_tensor(a[k][indices]) for k in self.source.attr_keys},
        }


_MEAN = torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1)
_STD = torch.tensor(IMAGENET_STD).view(1, 3, 1, 1)


def invert_affines(m: np.ndarray) -> np.ndarray:
    """(B, 3, 3) inverses of (B, 2, 3) affine matrices, last row exactly (0, 0, 1): `invert_affine`
    of each, in one batched call (numpy runs the same LAPACK routine per matrix: the same bits)."""
    m = np.asarray(m, np.float64)
    bottom = np.broadcast_to(np.array([0.0, 0.0, 1.0]), (len(m), 1, 3))
    inv = np.linalg.inv(np.concatenate([m, bottom], axis=1))
    inv[:, 2] = (0.0, 0.0, 1.0)
    return inv


def _warp_batch(images: torch.Tensor, m: np.ndarray, out_size: tuple[int, int]) -> torch.Tensor:
    """uint8 (B, H0, W0, 3) source images warped by source-to-crop matrices (B, 2, 3) into normalised
    (B, 3, H, W) crops: bilinear, black outside the source, integer pixel centres (as `warp_image`)."""
    out_h, out_w = out_size
    h0, w0 = images.shape[1:3]
    inv = invert_affines(m)                                                                 # crop -> source pixels
    to_norm = lambda w, h: np.array([[2 / (w - 1), 0, -1], [0, 2 / (h - 1), -1], [0, 0, 1]])  # noqa: E731
    theta = to_norm(w0, h0) @ inv @ np.linalg.inv(to_norm(out_w, out_h))
    grid = torch.nn.functional.affine_grid(torch.as_tensor(theta[:, :2], dtype=torch.float32),
                                           [len(m), 3, out_h, out_w], align_corners=True)
    x = images.permute(0, 3, 1, 2).to(torch.float32).div_(255)
    x = torch.nn.functional.grid_sample(x, grid, mode="bilinear", padding_mode="zeros", align_corners=True)
    return (x - _MEAN) / _STD


class Batched(Dataset):
    """`ds` for torch's DataLoader, fetching whole batches through `ds.batch` where it has one."""

    def __init__(self, ds):
        self.ds = ds

    def __len__(self) -> int:
        return len(self.ds)

    def __getitem__(self, index):
        return self.ds[index]

    def __getitems__(self, indices):
        fetch = getattr(self.ds, "batch", None)
        return fetch(indices) if fetch else [self.ds[i] for i in indices]


def collate(items):
    """default_collate for a list of items; a batch `__getitems__` already built passes through;
    None for the empty batches Poisson sampling can draw."""
    if isinstance(items, dict):
        return items
    return default_collate(items) if items else None


class SynthPoseSource:
    """A rendered SynthPose split (arrays from `synthpose.load_split`)."""

    def __init__(self, arrays: dict[str, np.ndarray], split: str):
        self.a, self.split = arrays, split
        self.arrays = arrays          # in memory: PoseDataset builds whole batches from these
        self.attr_keys = [k for k in arrays if k.startswith("attr_")]

    def __len__(self) -> int:
        return len(self.a["images"])

    def __repr__(self) -> str:
        h, w = self.a["images"].shape[1:3]
        return f"SynthPose({self.split}, n={len(self)}, {h}x{w})"

    def sample(self, i: int) -> Sample:
        img = np.asarray(self.a["images"][i])
        h, w = img.shape[:2]
        return Sample(image=Image.fromarray(img), center=np.array([(w - 1) / 2, (h - 1) / 2]), box_width=float(w),
                      joints=self.a["joints"][i].astype(np.float64), joints_vis=self.a["joints_vis"][i],
                      head_box=self.a["head_box"][i], visible=self.a["visible"][i],
                      person_id=int(self.a["person_id"][i]),
                      attributes={k[5:]: self.a[k][i] for k in self.attr_keys})

    @property
    def person_ids(self) -> np.ndarray:
        return np.asarray(self.a["person_id"])


@dataclass(frozen=True)
class DataBundle:
    private_train: PoseDataset
    public: PoseDataset
    val: PoseDataset
    info: dict

    def __repr__(self) -> str:
        return (f"DataBundle(private_train={len(self.private_train)}, public={len(self.public)}, "
                f"val={len(self.val)}; {self.info})")


def _synthpose(cfg: Config, split: str, n: int) -> SynthPoseSource:
    from .synthcache import load_split
    arrays = load_split(split, n, height=cfg.input_h, width=cfg.input_w, seed=cfg.data_seed, cache_dir=cfg.cache_dir)
    return SynthPoseSource(arrays, split)


def public_source(cfg: Config):
    """The public split's source alone (SynthPose's public domain, or COCO) and what was skipped."""
    match cfg.public_dataset:
        case "synthpose":
            return _synthpose(cfg, "public", cfg.n_public), None
        case "coco":
            from .coco import coco_source
            return coco_source(cfg.public_root, aspect=cfg.input_w / cfg.input_h)
        case other:  # Config validation makes this unreachable
            raise ValueError(f"unknown public dataset {other!r}")


def public_dataset(cfg: Config) -> PoseDataset:
    """The public split as a training set, built without reading a private or val crop."""
    source, skipped = public_source(cfg)
    if skipped:
        warnings.warn(f"COCO: skipped annotations by reason {skipped} (kept {len(source)})", stacklevel=2)
    return PoseDataset(source, cfg, train=True, name="public")


def build_data(cfg: Config) -> DataBundle:
    """The private training split, the public split and val for `cfg`."""
    info: dict = {"dataset": cfg.dataset, "public_dataset": cfg.public_dataset}
    match cfg.dataset:
        case "synthpose":
            private, val = _synthpose(cfg, "private", cfg.n_private), _synthpose(cfg, "val", cfg.n_val)
        case "mpii":
            from .mpii import mpii_sources
            private, val, skipped = mpii_sources(cfg.data_root)
            info["mpii_skipped"] = skipped
        case other:  # Config validation makes this unreachable
            raise ValueError(f"unknown dataset {other!r}")
    public, skipped = public_source(cfg)
    if skipped is not None:
        info["coco_skipped"] = skipped
    for key in ("mpii_skipped", "coco_skipped"):
        if info.get(key):
            warnings.warn(f"{key.split('_')[0].upper()}: skipped annotations by reason {info[key]} "
                          f"(kept {len(private) if key == 'mpii_skipped' else len(public)})", stacklevel=2)
    return DataBundle(private_train=PoseDataset(private, cfg, train=True, name="private_train"),
                      public=PoseDataset(public, cfg, train=True, name="public"),
                      val=PoseDataset(val, cfg, train=False, name="val"), info=info)
