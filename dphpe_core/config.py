"""Run configuration: one frozen, keyword-only dataclass and three presets.

    python -c "from dphpe_core import make_config; print(make_config('embedded', epsilon=0.4))"

A `Config` holds plain-typed fields only. Values derived from several fields (the SimCC sigma
and the blur kernel at the configured input size) are properties, never stored twice.
`make_config(preset, **overrides)` is the one way to build a config: it refuses unknown presets
and fields (naming the valid ones) and invalid values (naming the field and what was expected).
"""

from __future__ import annotations

import dataclasses
import difflib
import hashlib
import json
from dataclasses import dataclass, fields

from .methods import METHODS as METHOD_TABLE, unread_fields
from .validation import validate

DATASETS = ("synthpose", "mpii")
PUBLIC_DATASETS = ("synthpose", "coco")
MODEL_SIZES = ("smoke", "embedded", "5m")
STRATEGIES = ("finetune", "full", "scratch")
METHODS = tuple(METHOD_TABLE)
FDP_PUBLIC = ("independent", "same-batch", "public-set")
JOINT_LAYERS = ("coco", "fresh", "kept")
ACCOUNTANTS = ("rdp", "prv", "pld")   # pld: dp-accounting's PLD (tight at the small epsilons of the regime map)
DEVICES = ("auto", "cpu", "cuda")
OPTIMIZERS = ("adamw", "sgd")         # adamw: the paper's; sgd: torch's SGD with momentum (the regime map's optimizer axis)

# Fields that say where files live or how the work is executed, not what is computed: left out of
# Config.hash(). Device and physical batch size change results only at float rounding. num_workers
# changes which random draws each crop's augmentation gets: loader workers draw from generators of
# their own, seeded from the run's when they start, where with 0 workers the augmentation and the
# noise share torch's generator. A run is then another run of the same distribution, as with another
# seed, not the same bits; every record stores its config with num_workers, and the embedded preset
# uses 0.
_LOCATION_FIELDS = ("data_root", "public_root", "cache_dir", "results_dir", "device", "num_workers",
                    "max_physical_batch_size")
# A field a method does not read (methods.unread_fields) enters its hash at one fixed value, so that
# configs that differ only there are one run with one record: a DP-SGD run does not change with the
# subspace's rank. The values are those every config of the study's first records held, so their
# hashes stand; None: a field added since, left out of the hash of every method that does not read it.
_UNREAD_AT = dict(epsilon=0.8, delta=1e-5, clip_norm=0.1, accountant="rdp", fdp_public="independent",
                  public_weight_fdp=0.3, public_weight_hybrid=1.0, blur_kernel_256=25, blur_sigma_256=10.0,
                  subspace_k=50, subspace_m=100, subspace_budget_mb=1024.0, subspace_interval=None)
# Fields added after the study's first records, at the value every earlier record held: left out of the
# hash while they hold it, so that those records' hashes stand (momentum is read by SGD only).
_ADDED_AT = dict(optimizer="adamw", momentum=0.9)
# Fields that no longer exist, at the one value every config held while they did: they enter every hash
# at it (so the hashes of runs they did not change stand), and a stored config may still name them at it.
# subspace_every (steps between rebuilds of the subspace) became subspace_interval, a share of the run.
RETIRED = dict(subspace_every=50)


@dataclass(frozen=True, kw_only=True)
class Config:
    """Everything a run depends on. Build it with `make_config`, change it with `cfg.replace`."""

    preset: str = "embedded"
    # -- data ------------------------------------------------------------------------------
    dataset: str = "synthpose"          # private (and val) source: synthpose | mpii
    public_dataset: str = "synthpose"   # public source: synthpose | coco
    data_root: str = ""                 # MPII folder (annot/*.json, annot/gt_valid.mat, images/)
    public_root: str = ""               # COCO folder (annotations/*.json, images)
    input_h: int = 64                   # crop height in pixels
    input_w: int = 48                   # crop width in pixels
    # SynthPose sizes (ignored for MPII). 22,000 private crops: MPII's training size, so that N x epsilon,
    # which sets the signal-to-noise of DP training, is the paper's. 20,000 public crops: the start's
    # strength limits non-private finetuning (measured: 58.5 PCKh@0.5 from 12,000 public crops and 20
    # epochs, 67.9 from 20,000 and 30). 1,000 val crops: a run's PCKh varies by well under a point.
    n_private: int = 22000
    n_public: int = 20000
    n_val: int = 1000
    data_seed: int = 0                  # SynthPose generator seed
    augment: bool = True                # flip / rotation / scale on the training splits
    rotation_deg: float = 10.0          # SynthPose crops vary already; the paper's MPII values are 30 / 0.25
    scale_jitter: float = 0.1
    cache_dir: str = "~/.cache/dphpe"
    # -- targets ---------------------------------------------------------------------------
    simcc_split: float = 2.0            # SimCC bins per pixel (k)
    simcc_sigma_256: float = 3.0        # target sigma in bins at 256x192; scaled with input_h
    # -- model -----------------------------------------------------------------------------
    model_size: str = "embedded"
    strategy: str = "finetune"
    pretrained_path: str = ""           # checkpoint file (timm TinyViT or pose); empty: pretrain on public
    pretrain_epochs: int = 30           # the project's own public pretraining (when no checkpoint): once per
    pretrain_lr: float = 3e-3           # setting, about 12 minutes here, stored with the study's records
    pretrain_batch_size: int = 128
    flip_test: bool = True
    joint_layer: str = "coco"           # what of the start's per-joint layer carries over (start.py): "coco", the
                                        # rows of the 12 joints COCO shares with MPII; "fresh", none; "kept", all 16
    blurred_only: bool = False          # train and evaluate on psi(x) only: the paper's public-feature baseline
    # -- privacy ---------------------------------------------------------------------------
    method: str = "nonprivate"
    epsilon: float = 0.8
    delta: float = 1e-5                 # < 1 / N_private at every N of the study; 0: the largest power of ten
                                        # below 1 / N_private (accounting.default_delta)
    clip_norm: float = 0.1
    accountant: str = "rdp"             # add/remove methods: rdp (Opacus, the paper's) | prv (Opacus) | pld (dp-accounting)
    fdp_public: str = "independent"
    public_weight_fdp: float = 0.01     # lambda on the public (blurred) gradient of feature DP ...
    public_weight_hybrid: float = 0.01  # ... and of the hybrid (the paper's scripts: 1.0 and 0.1); embedded:
                                        # chosen on the public split (tuning.py, results/embedded/tuning.json),
                                        # the ladder's lowest value: the score rises as lambda falls
    blur_kernel_256: int = 25           # psi(x): Gaussian blur kernel at 256x192 ...
    blur_sigma_256: float = 10.0        # ... and its sigma; both scaled with input_h
    subspace_k: int = 50                # embedded: chosen on the public split, like lr and lambda (paper: 100)
    subspace_m: int = 100
    # the subspace is rebuilt every subspace_interval x (the run's steps), rounded, at least every step; 0: at
    # every step. A share of the run, so that it means the same in a run of 86 steps and one of 17,000 (the
    # paper's scripts: every 50 of 17,379 steps). Embedded: chosen on the public split with k (tuning.py)
    subspace_interval: float = 0.0
    subspace_budget_mb: float = 1024.0  # above k x p floats: per-layer-group bases (projection.plan)
    # -- optimisation ----------------------------------------------------------------------
    # embedded: batch 256, one epoch (86 steps). Large expected batches help DP-SGD at a fixed epsilon (the
    # noise on the averaged gradient falls as 1/B while sigma grows more slowly), and a CPU step at 256 costs
    # 2.8x one at 64 for 4x the crops. One epoch: non-private finetuning measured 68.2 after one epoch and
    # 67.9 after two (from the start above), so a second epoch would double the study's time for nothing.
    expected_batch_size: int = 256      # paper: 32
    epochs: int = 1                     # paper: 25
    lr: float = 3e-3                    # embedded: chosen on the public split (tuning.py); paper: 1e-3
    weight_decay: float = 1e-2          # AdamW's decoupled decay; SGD's L2 term
    optimizer: str = "adamw"            # adamw (the paper's) | sgd (with momentum; the regime map's optimizer axis)
    momentum: float = 0.9               # SGD's momentum (AdamW does not read it)
    lr_decay_epoch: int = 1             # lr x lr_decay from this epoch on (paper: 20 of 25; one epoch: no decay)
    lr_decay: float = 0.1
    seed: int = 0
    device: str = "auto"
    num_workers: int = 0
    max_physical_batch_size: int = 0    # split logical batches into physical ones of this size; 0: never
    results_dir: str = "results"

    def __post_init__(self) -> None:
        validate(self, dict(preset=tuple(PRESETS), dataset=DATASETS, public_dataset=PUBLIC_DATASETS,
                            model_size=MODEL_SIZES, strategy=STRATEGIES, method=METHODS, fdp_public=FDP_PUBLIC,
                            joint_layer=JOINT_LAYERS, accountant=ACCOUNTANTS, device=DEVICES, optimizer=OPTIMIZERS))

    # -- derived values ------------------------------------------------------------------
    @property
    def size_ratio(self) -> float:
        """Input height relative to the paper's 256 pixels."""
        return self.input_h / 256.0

    @property
    def simcc_sigma(self) -> float:
        """SimCC target sigma in bins at this input size."""
        return self.simcc_sigma_256 * self.size_ratio

    @property
    def blur_sigma(self) -> float:
        return self.blur_sigma_256 * self.size_ratio

    @property
    def blur_kernel(self) -> int:
        """Odd kernel size, at least 3, scaled with the input size."""
        k = max(3, int(round(self.blur_kernel_256 * self.size_ratio)))
        return k if k % 2 == 1 else k + 1

    # -- identity ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "Config":
        """The config a stored dict describes; a retired field (RETIRED) is accepted at its one value only."""
        d = dict(d)
        for name, value in RETIRED.items():
            if name in d and (held := d.pop(name)) != value:
                raise ValueError(f"Config.from_dict: {name}={held!r} names a retired field at a "
                                 f"value no current config can express (it only ever held {value!r}); the record that "
                                 f"holds it is from older code: recompute it")
        check_names(d, context="Config.from_dict")
        return cls(**d)

    def replace(self, **changes) -> "Config":
        check_names(changes, context="Config.replace")
        return dataclasses.replace(self, **changes)

    def hash(self) -> str:
        """12 hex digits of SHA-256 over the canonical JSON of every field that affects results.

        Stable across processes and Python versions (sorted keys, repr-exact floats); the
        location and execution fields (data_root, public_root, cache_dir, results_dir, device,
        num_workers, max_physical_batch_size) are left out, the fields the method does not read
        enter at fixed values (_UNREAD_AT), and fields added since the first records are left out at
        the value those held (_ADDED_AT).
        """
        d = {k: v for k, v in self.to_dict().items() if k not in _LOCATION_FIELDS}
        for name in unread_fields(self.method, blurred_only=self.blurred_only, fdp_public=self.fdp_public):
            if _UNREAD_AT[name] is None:
                del d[name]
            else:
                d[name] = _UNREAD_AT[name]
        for name, value in _ADDED_AT.items():
            if d[name] == value or (name == "momentum" and self.optimizer != "sgd"):
                del d[name]
        d.update(RETIRED)
        blob = json.dumps(d, sort_keys=True, separators=(",", ":"), allow_nan=False)
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


_SMOKE = dict(
    preset="smoke", input_h=64, input_w=48, n_private=96, n_public=64, n_val=48, delta=0.0,
    model_size="smoke", expected_batch_size=16, epochs=1, lr_decay_epoch=1, pretrain_epochs=1,
    pretrain_batch_size=16, subspace_k=8, subspace_m=16, subspace_interval=0.6,
)
_EMBEDDED = dict(preset="embedded")
_PAPER = dict(
    preset="paper", dataset="mpii", public_dataset="coco", data_root="data/mpii",
    public_root="data/coco", input_h=256, input_w=192, model_size="5m", n_private=0,
    n_public=0, n_val=0, delta=0.0, expected_batch_size=32, epochs=25, lr=1e-3, lr_decay_epoch=20,
    subspace_k=100, subspace_interval=0.00288, public_weight_fdp=1.0, public_weight_hybrid=0.1,
    pretrain_batch_size=64, rotation_deg=30.0, scale_jitter=0.25, pretrain_epochs=210, pretrain_lr=1e-3, num_workers=4,
)
PRESETS: dict[str, dict] = {"smoke": _SMOKE, "embedded": _EMBEDDED, "paper": _PAPER}


def make_config(preset: str = "embedded", **overrides) -> Config:
    """The preset's config with `overrides` applied.

    >>> make_config("smoke", epsilon=0.4).epsilon
    0.4
    """
    if preset not in PRESETS:
        raise ValueError(f"unknown preset {preset!r}; expected one of {sorted(PRESETS)}")
    check_names(overrides, context=f"make_config({preset!r})")
    if "preset" in overrides and overrides["preset"] != preset:
        raise ValueError("the preset is chosen by make_config's first argument, not an override")
    return Config(**{**PRESETS[preset], **overrides})


def field_names() -> list[str]:
    return [f.name for f in fields(Config)]


def check_names(d: dict, *, context: str) -> None:
    """Refuse names that are not Config fields, suggesting the closest valid one."""
    valid = field_names()
    unknown = [k for k in d if k not in valid]
    if unknown:
        hints = []
        for k in unknown:
            close = difflib.get_close_matches(k, valid, n=1)
            hints.append(f"{k!r}" + (f" (did you mean {close[0]!r}?)" if close else ""))
        raise ValueError(f"{context}: unknown config field(s) {', '.join(hints)}; "
                         f"valid fields are: {', '.join(valid)}")
