"""Where a run starts: `build_model(cfg)` and the pretrained start it loads.

    dphpe pretrain --preset embedded

The paper finetunes from a COCO-pretrained pose checkpoint. A run here starts from a checkpoint
file (`cfg.pretrained_path`: timm's TinyViT or a pose model), or from this project's stand-in for
it: the same model trained without privacy on the public split (SynthPose's public domain, or
COCO), once per setting. That start is a result of the code like a run record: it is stored under
results/<preset>/starts/<key>.pt beside a JSON file with its provenance, and the embedded study's
start is committed with the study's records.

The per-joint layer (`head.conv`, one output row per joint) is the one part of a COCO start that
does not fit MPII: COCO has 12 of MPII's 16 joints (ankles, knees, hips, wrists, elbows, shoulders)
and lacks pelvis, thorax, upper neck and head top. `cfg.joint_layer` says what carries over:
"coco" keeps the rows of the 12 shared joints and begins the other 4 afresh (what a real COCO
checkpoint gives), "fresh" begins the whole layer afresh, "kept" keeps all 16 rows of a start
trained on MPII's joints. Fresh rows are drawn from cfg.seed, the same whether or not the start
was cached.
"""

from __future__ import annotations

import hashlib
import json
import time
from pathlib import Path

import torch
import torch.nn.functional as F

from .coco import COCO_TO_MPII
from .config import Config
from .methods import NONPRIVATE
from .data import PoseDataset, public_dataset
from .loop import fit, resolve_device
from .model import PoseModel
from .strategies import calibrate_affines, for_config, public_images, set_strategy

PRETRAIN_VERSION = 3
# the fields a start depends on: a run's other fields (method, epsilon, seed, ...) share one start
PRETRAIN_FIELDS = ("model_size", "input_h", "input_w", "simcc_split", "simcc_sigma_256", "public_dataset",
                   "n_public", "data_seed", "augment", "rotation_deg", "scale_jitter", "pretrain_epochs",
                   "pretrain_lr", "pretrain_batch_size", "weight_decay")


# -- checkpoints: timm's TinyViT, a TinyViT-SimCC pose model, or this project's own --------------

_HEAD_KEYS = {"head.final_layer.weight": "head.conv.weight", "head.final_layer.bias": "head.conv.bias",
              "head.mlp_head_x.weight": "head.mlp_x.weight", "head.mlp_head_x.bias": "head.mlp_x.bias",
              "head.mlp_head_y.weight": "head.mlp_y.weight", "head.mlp_head_y.bias": "head.mlp_y.bias"}
_IGNORED = ("attention_bias_idxs", "num_batches_tracked", "head.fc.", "head.norm.")


def convert_checkpoint(state: dict, model: PoseModel) -> dict[str, torch.Tensor]:
    """A timm TinyViT (ImageNet) or TinyViT-SimCC pose state dict -> this model's keys.

    BatchNorm statistics fold into `ChannelAffine` (scale = gamma / sqrt(var + eps), shift =
    beta - mean * scale); attention-bias tables are resized bicubically when the window size
    differs; a state dict of this project's own model passes through unchanged.
    """
    for wrapper in ("state_dict", "model"):
        if wrapper in state and isinstance(state[wrapper], dict):
            state = state[wrapper]
    if any(k.startswith("backbone.") and ".affine." in k for k in state):
        return dict(state)
    out, target = {}, model.state_dict()
    for key, value in state.items():
        if any(s in key for s in _IGNORED):
            continue
        if key in _HEAD_KEYS:
            out[_HEAD_KEYS[key]] = value
            continue
        name = key.removeprefix("backbone.")
        if ".bn." in name:
            stem, leaf = name.rsplit(".bn.", 1)
            if leaf != "weight":
                continue  # bias and statistics are read together with the weight
            bn = {k: state[f"{key.rsplit('.', 1)[0]}.{k}"] for k in ("weight", "bias", "running_mean", "running_var")}
            scale = bn["weight"] / torch.sqrt(bn["running_var"] + 1e-5)
            out[f"backbone.{stem}.affine.weight"] = scale
            out[f"backbone.{stem}.affine.bias"] = bn["bias"] - bn["running_mean"] * scale
        elif name.endswith("attn.attention_biases"):
            new = f"backbone.{name.replace('attn.attention_biases', 'attn.bias.attention_biases')}"
            out[new] = _resize_bias(value, target[new].shape) if new in target else value
        else:
            out[f"backbone.{name}"] = value
    return out


def _resize_bias(table: torch.Tensor, shape) -> torch.Tensor:
    heads, n_old = table.shape
    if table.shape == tuple(shape):
        return table
    old, new = int(round(n_old ** 0.5)), int(round(shape[1] ** 0.5))
    grid = table.reshape(1, heads, old, old)
    return F.interpolate(grid, size=(new, new), mode="bicubic", align_corners=False).reshape(heads, new * new)


def load_checkpoint(model: PoseModel, state: dict, *, require_head: bool = False) -> list[str]:
    """Load a converted state dict; every backbone tensor must be present with the right shape.

    Returns the keys left at their initial values (the head, for an ImageNet backbone; the
    per-joint `head.conv`, for a pose checkpoint of another joint count). Raises ValueError
    listing the first mismatches otherwise.
    """
    state = convert_checkpoint(state, model)
    target = model.state_dict()
    # the per-joint layer of a start trained on another joint set (COCO's 17) does not carry over
    other_joints = {k for k, v in state.items() if k.startswith("head.conv.") and k in target
                    and v.shape[0] != target[k].shape[0]}
    state = {k: v for k, v in state.items() if k not in other_joints}
    unexpected = [k for k in state if k not in target]
    wrong = [f"{k}: checkpoint {tuple(state[k].shape)} vs model {tuple(target[k].shape)}"
             for k in state if k in target and state[k].shape != target[k].shape]
    missing = [k for k in target if k not in state and k not in other_joints
               and (require_head or not k.startswith("head."))]
    if unexpected or wrong or missing:
        parts = [f"{name} ({len(keys)}): {keys[:5]}" for name, keys in
                 (("unexpected keys", unexpected), ("shape mismatches", wrong), ("missing keys", missing)) if keys]
        raise ValueError(f"checkpoint does not fit the {model.size} model: " + "; ".join(parts))
    model.load_state_dict(state, strict=False)
    return [k for k in target if k not in state]


# -- the public pretraining ------------------------------------------------------------------

def pretrain_key(cfg: Config) -> str:
    """12 hex digits naming the start of `cfg` (its PRETRAIN_FIELDS and PRETRAIN_VERSION)."""
    blob = json.dumps({f: getattr(cfg, f) for f in PRETRAIN_FIELDS} | {"v": PRETRAIN_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def start_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "starts" / f"{pretrain_key(cfg)}.pt"


def pretrain(cfg: Config, public: PoseDataset, *, progress: bool = True, checkpoint=None) -> dict:
    """Non-private training from scratch on `public` (seed 0, pretrain_epochs at pretrain_lr and
    pretrain_batch_size, lr x0.1 for the last fifth): the weights, on the CPU. `checkpoint`
    (loop.Checkpoint): go on from a stopped pretraining's last epoch, and keep its state after each."""
    pre = cfg.replace(method=NONPRIVATE, strategy="scratch", seed=0, epochs=cfg.pretrain_epochs, blurred_only=False,
                      optimizer="adamw",
                      lr=cfg.pretrain_lr, expected_batch_size=cfg.pretrain_batch_size,
                      lr_decay_epoch=max(1, int(cfg.pretrain_epochs * 0.8)))
    device = resolve_device(cfg)
    torch.manual_seed(0)
    model = for_config(cfg)
    model = calibrate_affines(model, public_images(public)).to(device)
    fit(model, pre, public, val_set=None, device=device, desc="pretraining on the public split", progress=progress,
        checkpoint=checkpoint)
    return {k: v.cpu() for k, v in model.state_dict().items()}


def read_weights(path, *, rebuild: str) -> dict:
    """A state dict saved with torch.save; a missing, truncated or foreign file is an error that names
    it and says how to rebuild it (`rebuild`)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no such weights file; {rebuild}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:      # torch raises several types on truncated or foreign files
        raise ValueError(f"{path}: cannot be read as saved weights ({type(e).__name__}: {str(e)[:200]}); "
                         f"{rebuild}") from None
    if not isinstance(state, dict):
        raise ValueError(f"{path}: holds a {type(state).__name__}, not a state dict of weights; {rebuild}")
    return state


def pretrained_state(cfg: Config, *, progress: bool = True, fresh: bool = False) -> dict:
    """The public pretraining's weights for `cfg`: read from start_path(cfg), else trained (`pretrain`
    on the whole public split) and stored there with its provenance. `fresh` trains it again even
    when it is stored. No private or val crop is read. A pretraining that was stopped goes on from its
    last finished epoch (loop.Checkpoint, beside the start until the start is stored)."""
    from .loop import Checkpoint
    from .provenance import provenance
    path = start_path(cfg)
    if path.is_file() and not fresh:
        return read_weights(path, rebuild=f"delete it and run `dphpe pretrain --preset {cfg.preset} --fresh`")
    t0 = time.perf_counter()
    if fresh:
        path.with_suffix(".ckpt").unlink(missing_ok=True)
    checkpoint = Checkpoint(path.with_suffix(".ckpt"), key={"start": pretrain_key(cfg), "pretrain_version": PRETRAIN_VERSION,
                                                            **provenance(resolve_device(cfg), method=NONPRIVATE)})
    public = public_dataset(cfg)
    state = pretrain(cfg, public, progress=progress, checkpoint=checkpoint)
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    path.with_suffix(".ckpt").unlink(missing_ok=True)
    info = {"key": pretrain_key(cfg), "pretrain_version": PRETRAIN_VERSION,
            "wall_s": time.perf_counter() - t0 + checkpoint.elapsed_before,
            "fields": {f: getattr(cfg, f) for f in PRETRAIN_FIELDS}, "n_public": len(public),
            "provenance": provenance(resolve_device(cfg), method=NONPRIVATE)}
    path.with_suffix(".json").write_text(json.dumps(info, indent=1, sort_keys=True) + "\n")
    return state


def _start_rows(state: dict, cfg: Config, model: PoseModel) -> dict[int, int]:
    """Which rows of the start's per-joint layer carry over: {model row: start row}."""
    rows = state.get("head.conv.weight")
    if cfg.joint_layer == "fresh" or rows is None:
        return {}
    joints = model.head.conv.weight.shape[0]
    if rows.shape[0] == joints:          # a start trained on MPII's joints
        return {j: j for j in (range(joints) if cfg.joint_layer == "kept" else COCO_TO_MPII)}
    if rows.shape[0] == 17 and cfg.joint_layer == "coco":    # a COCO pose checkpoint: its keypoint order
        return dict(COCO_TO_MPII)
    raise ValueError(f"joint_layer={cfg.joint_layer!r} cannot use a start whose per-joint layer has "
                     f"{rows.shape[0]} rows; expected {joints} (MPII's joints) or 17 (COCO's, with 'coco'), "
                     f"or joint_layer='fresh'")


def build_model(cfg: Config, *, start: dict | None = None) -> PoseModel:
    """The model for `cfg` with the strategy's trainable parameters set: for `scratch` a random
    initialisation calibrated on public images (`calibrate_affines`), else the start (`start` if given,
    cfg.pretrained_path, or the public pretraining) with its per-joint layer carried over as
    cfg.joint_layer says."""
    torch.manual_seed(cfg.seed)
    model = for_config(cfg)
    if cfg.strategy == "scratch":
        calibrate_affines(model, public_images(public_dataset(cfg)))
        return set_strategy(model, cfg.strategy)
    if start is not None:
        state = start
        load_checkpoint(model, state, require_head=True)
    elif cfg.pretrained_path:
        state = convert_checkpoint(read_weights(cfg.pretrained_path, rebuild="download the checkpoint again, or point "
                                                "pretrained_path at another one"), model)
        load_checkpoint(model, state)
    else:
        state = pretrained_state(cfg)
        load_checkpoint(model, state, require_head=True)
    rows = _start_rows(state, cfg, model)
    conv = model.head.conv
    with torch.random.fork_rng(), torch.no_grad():      # the same draw whether or not the start was cached
        torch.manual_seed(cfg.seed)
        conv.reset_parameters()
        for mine, theirs in rows.items():
            conv.weight[mine] = state["head.conv.weight"][theirs]
            conv.bias[mine] = state["head.conv.bias"][theirs]
    return set_strategy(model, cfg.strategy)
