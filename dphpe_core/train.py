"""One training loop for every method: `train(cfg) -> RunResult`, `load_or_train(cfg)`.

    dphpe train --preset embedded --strategy finetune

The loop is the same for all methods; `make_optimizer(cfg, model, ...)` (mechanisms.py) decides
how each step is privatised, and its `prepare` hook computes what a step needs from public data
(the subspace, the blurred public gradient) before the private pass. Val PCKh (flip test) is measured after every epoch. The pretrained start
of the embedded study is this loop run without privacy on the public split, once per setting,
cached on disk (`pretrained_state`).
"""

from __future__ import annotations

import hashlib
import json
import resource
import time
from pathlib import Path

import numpy as np
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import DataLoader, Dataset

from . import results
from .config import Config
from .data import Batched, build_data, collate
from .mechanisms import Mechanism, make_optimizer, noise_only_step, per_sample_loss, physical_batches
from .model import PoseModel, build_model, calibrate_affines, predict, public_images
from .pckh import pckh_per_joint, summarize

PRETRAIN_VERSION = 2


def resolve_device(cfg: Config) -> torch.device:
    if cfg.device == "cuda" and not torch.cuda.is_available():
        raise ValueError("device='cuda' was asked for but no CUDA device is available; use 'auto' or 'cpu'")
    return torch.device("cuda" if cfg.device in ("auto", "cuda") and torch.cuda.is_available() else "cpu")


def _loader(ds: Dataset, batch_size: int, *, shuffle: bool, seed: int, workers: int) -> DataLoader:
    g = torch.Generator().manual_seed(seed)
    return DataLoader(Batched(ds), batch_size=batch_size, shuffle=shuffle, generator=g, num_workers=workers,
                      persistent_workers=workers > 0, collate_fn=collate)


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


@torch.no_grad()
def evaluate(model: PoseModel, ds: Dataset, *, device, flip_test: bool = True, batch_size: int = 128,
             workers: int = 0, view=None) -> tuple[dict, dict, np.ndarray]:
    """PCKh@0.5 and @0.1 per group on `ds` (crop pixels, head sizes scaled with the crop), and predictions.

    `view` (e.g. the blur psi) is applied to each batch of images first."""
    was_training = model.training
    model.eval()
    preds, gts, labs, heads = [], [], [], []
    for batch in _loader(ds, batch_size, shuffle=False, seed=0, workers=workers):
        images = batch["image"].to(device)
        preds.append(predict(model, view(images) if view else images, flip_test=flip_test).cpu())
        gts.append(batch["joints"])
        labs.append(batch["joints_vis"] > 0)
        heads.append(batch["head_size"])
    model.train(was_training)
    p, g, lab, h = (torch.cat(x).double().numpy() for x in (preds, gts, labs, heads))
    return (summarize(*pckh_per_joint(p, g, lab, h, 0.5)), summarize(*pckh_per_joint(p, g, lab, h, 0.1)), p)


def image_view(cfg: Config):
    """What the model sees: the crop itself, or with cfg.blurred_only its blurred view psi(x)."""
    if not cfg.blurred_only:
        return None
    from .transforms import blur
    return lambda images: blur(images, kernel=cfg.blur_kernel, sigma=cfg.blur_sigma)


def _poisson_loader(ds: Dataset, sample_rate: float, steps: int, *, seed: int, workers: int) -> DataLoader:
    sampler = UniformWithReplacementSampler(num_samples=len(ds), sample_rate=sample_rate,
                                            generator=torch.Generator().manual_seed(seed), steps=steps)
    return DataLoader(Batched(ds), batch_sampler=sampler, collate_fn=collate, num_workers=workers,
                      persistent_workers=workers > 0)


def fit(model: PoseModel, cfg: Config, train_set: Dataset, *, val_set: Dataset | None, device,
        desc: str, progress: bool = True, public_set: Dataset | None = None) -> tuple[dict, Mechanism]:
    """Train `model` in place for cfg.epochs with cfg.method's step; per-epoch curves and the mechanism.

    `public_set` (disjoint from train_set) feeds the methods that use public data. A logical batch
    larger than cfg.max_physical_batch_size is split: each physical batch is clipped and summed,
    and the noise is added once, at the last (Opacus' skip-step protocol).
    """
    from tqdm.auto import tqdm
    torch.manual_seed(cfg.seed)   # augmentation and noise draw from here: the same config gives the same run
    steps_per_epoch = max(1, round(len(train_set) / cfg.expected_batch_size))
    mech = make_optimizer(cfg, model, private_set=train_set, public_set=public_set, steps_per_epoch=steps_per_epoch,
                          device=device)
    sched = torch.optim.lr_scheduler.MultiStepLR(mech.optimizer, [cfg.lr_decay_epoch], gamma=cfg.lr_decay)
    if mech.poisson:
        loader = _poisson_loader(train_set, mech.privacy["sample_rate"], steps_per_epoch, seed=cfg.seed,
                                 workers=cfg.num_workers)
    else:
        loader = _loader(train_set, cfg.expected_batch_size, shuffle=True, seed=cfg.seed, workers=cfg.num_workers)
    view = image_view(cfg)
    curves = {"epoch": [], "loss": [], "val_pckh": [], "lr": []}
    bar = tqdm(total=cfg.epochs * len(loader), desc=desc, unit="step", disable=not progress, leave=False)
    model.train()
    for epoch in range(cfg.epochs):
        total, count = 0.0, 0
        for batch in loader:
            mech.optimizer.zero_grad(set_to_none=True)
            batch = None if batch is None else _to(batch, device)
            if view is not None and batch is not None:
                batch["image"] = view(batch["image"])
            if mech.prepare is not None:
                mech.prepare(batch)
            if batch is None:
                noise_only_step(mech)
                bar.update()
                continue
            for chunk, last in physical_batches(mech, batch, cfg.max_physical_batch_size):
                losses = per_sample_loss(mech.model, chunk)
                (losses.sum() if mech.sum_loss else losses.mean()).backward()
                mech.optimizer.step()
                if not last:
                    mech.optimizer.zero_grad(set_to_none=True)   # after a skipped step: per-sample buffers only
                total, count = total + losses.detach().sum().item(), count + len(losses)
            bar.update()
        curves["epoch"].append(epoch + 1)
        # a private run's training loss is a noise-free function of private crops: never logged
        curves["loss"].append(None if mech.privacy else total / max(count, 1))
        curves["lr"].append(mech.optimizer.param_groups[0]["lr"])
        sched.step()
        if val_set is not None:
            curves["val_pckh"].append(evaluate(model, val_set, device=device, flip_test=False, view=view)[0]["Mean"])
            bar.set_postfix(val=f"{curves['val_pckh'][-1]:.1f}")
    bar.close()
    mech.optimizer.zero_grad(set_to_none=True)
    if mech.model is not model:
        mech.model.remove_hooks()
    return curves, mech


def _pretrain_key(cfg: Config) -> str:
    fields = ("model_size", "input_h", "input_w", "simcc_split", "simcc_sigma_256", "public_dataset", "n_public",
              "data_seed", "augment", "rotation_deg", "scale_jitter", "pretrain_epochs", "pretrain_lr",
              "expected_batch_size", "weight_decay")
    blob = json.dumps({f: getattr(cfg, f) for f in fields} | {"v": PRETRAIN_VERSION}, sort_keys=True)
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def pretrained_state(cfg: Config, *, progress: bool = True) -> dict:
    """This project's stand-in for a COCO checkpoint: non-private training from scratch on the
    public split (seed 0, pretrain_epochs, pretrain_lr), cached under cache_dir/pretrained/."""
    path = Path(cfg.cache_dir).expanduser() / "pretrained" / f"{_pretrain_key(cfg)}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    pre = cfg.replace(method="nonprivate", strategy="scratch", seed=0, epochs=cfg.pretrain_epochs, blurred_only=False,
                      lr=cfg.pretrain_lr, lr_decay_epoch=max(1, int(cfg.pretrain_epochs * 0.8)))
    device = resolve_device(cfg)
    data = build_data(pre)
    torch.manual_seed(0)
    model = PoseModel(cfg.model_size, (cfg.input_h, cfg.input_w), cfg.simcc_split)
    model = calibrate_affines(model, public_images(data.public)).to(device)
    fit(model, pre, data.public, val_set=None, device=device, desc="pretraining on the public split", progress=progress)
    state = {k: v.cpu() for k, v in model.state_dict().items()}
    path.parent.mkdir(parents=True, exist_ok=True)
    torch.save(state, path.with_suffix(".tmp"))
    path.with_suffix(".tmp").replace(path)
    return state


def train(cfg: Config, *, progress: bool = True, model_path=None) -> results.RunResult:
    """Train one configuration from its start point and measure it on val (weights to model_path if given)."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = resolve_device(cfg)
    data = build_data(cfg)
    model = build_model(cfg).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    curves, mech = fit(model, cfg, data.private_train, val_set=data.val, device=device,
                       desc=f"{cfg.method}/{cfg.strategy}", progress=progress, public_set=data.public)
    pckh, pckh01, _ = evaluate(model, data.val, device=device, flip_test=cfg.flip_test, view=image_view(cfg))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)   # CPU: the process' peak so far
    if model_path is not None:
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_path)
    return results.RunResult(config=cfg.to_dict(), config_hash=cfg.hash(), pckh=pckh, pckh01=pckh01, curves=curves,
                             wall_s=time.perf_counter() - t0, peak_mem_mb=peak, device=str(device),
                             versions=results.versions(), privacy=mech.privacy, guarantee=mech.guarantee,
                             mechanism=mech.stats())


def model_path(cfg: Config) -> Path:
    return results.run_path(cfg).with_suffix(".pt")


def load_or_train(cfg: Config, *, progress: bool = True, keep_model: bool = False) -> results.RunResult:
    """The stored record for this config's hash, or a new run (then stored). With keep_model the
    trained weights are kept beside the record (`load_trained_model` reads them)."""
    path = results.run_path(cfg)
    if path.is_file() and (not keep_model or model_path(cfg).is_file()):
        try:
            return results.load(path)
        except results.StaleRecord as err:
            import warnings
            warnings.warn(f"{err}: training it again", stacklevel=2)
    result = train(cfg, progress=progress, model_path=model_path(cfg) if keep_model else None)
    results.save(result, path)
    return result


def load_trained_model(cfg: Config) -> PoseModel:
    """The weights `load_or_train(cfg, keep_model=True)` kept, in a model on the CPU, in eval mode."""
    path = model_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained weights for config {cfg.hash()}; run "
                                f"load_or_train(cfg, keep_model=True) first")
    model = PoseModel(cfg.model_size, (cfg.input_h, cfg.input_w), cfg.simcc_split)
    model.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return model.eval()
