"""A run: `train(cfg) -> RunResult` and `load_or_train(cfg)`, the study's cache of run records.

    dphpe train --preset embedded --strategy finetune

`train(cfg)` builds the data and the model's start (start.py), trains it with the one loop
(loop.py; `make_optimizer` in mechanisms.py privatises each step for cfg.method), measures val
PCKh with the flip test and returns the record, provenance included. `load_or_train(cfg)`
returns the stored record whose config hash matches, or trains and stores it; a run it stopped goes on
from its last finished epoch (loop.Checkpoint, beside the record until the record is stored).
"""

from __future__ import annotations

import resource
import time
from pathlib import Path

import numpy as np
import torch

from . import results
from .provenance import provenance, versions
from .config import Config
from .data import build_data
from .fingerprint import data_fingerprint
from .loop import Checkpoint, evaluate, fit, image_view, resolve_device
from .model import PoseModel
from .strategies import for_config
from .start import build_model, read_weights


def train(cfg: Config, *, progress: bool = True, model_path=None, checkpoint_path=None) -> results.RunResult:
    """Train one configuration from its start point and measure it on val (weights to model_path if given).
    With `checkpoint_path` the run goes on from the checkpoint there, if it is this run's, and writes one
    after every epoch but the last (loop.Checkpoint); its wall time then adds the earlier epochs' time."""
    t0 = time.perf_counter()
    torch.manual_seed(cfg.seed)
    np.random.seed(cfg.seed)
    device = resolve_device(cfg)
    data = build_data(cfg)
    model = build_model(cfg).to(device)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats()
    checkpoint = (None if checkpoint_path is None else
                  Checkpoint(checkpoint_path, key={"config": cfg.hash(), **provenance(device, method=cfg.method)}))
    curves, mech = fit(model, cfg, data.private_train, val_set=data.val, device=device,
                       desc=f"{cfg.method}/{cfg.strategy}", progress=progress, public_set=data.public,
                       checkpoint=checkpoint)
    pckh, pckh01, _ = evaluate(model, data.val, device=device, flip_test=cfg.flip_test, view=image_view(cfg))
    peak = (torch.cuda.max_memory_allocated() / 2**20 if device.type == "cuda"
            else resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024)   # CPU: the process' peak so far
    if model_path is not None:
        Path(model_path).parent.mkdir(parents=True, exist_ok=True)
        torch.save({k: v.cpu() for k, v in model.state_dict().items()}, model_path)
    return results.RunResult(config=cfg.to_dict(), config_hash=cfg.hash(), pckh=pckh, pckh01=pckh01, curves=curves,
                             wall_s=time.perf_counter() - t0 + (checkpoint.elapsed_before if checkpoint else 0.0),
                             peak_mem_mb=peak, device=str(device),
                             versions=versions(), privacy=mech.privacy, guarantee=mech.guarantee,
                             mechanism=mech.stats(), provenance=provenance(device, method=cfg.method),
                             training_version=results.training_version(cfg.method),
                             data_fingerprint=data_fingerprint(cfg))


REPRODUCE_POINTS = 1.0      # PCKh@0.5 points a rerun of a record's config may differ by (float rounding elsewhere)


def model_path(cfg: Config) -> Path:
    return results.run_path(cfg).with_suffix(".pt")


def checkpoint_path(cfg: Config) -> Path:
    """Where a run of load_or_train keeps its state between epochs until its record is stored."""
    return results.run_path(cfg).with_suffix(".ckpt")


def load_or_train(cfg: Config, *, progress: bool = True, keep_model: bool = False,
                  fresh: bool = False) -> results.RunResult:
    """The stored record for this config's hash, or a new run (then stored). A stored record of another
    training-code version is refused (results.StaleRecord says how to recompute); `fresh` trains again
    and overwrites it. With keep_model the trained weights are kept beside the record
    (`load_trained_model` reads them); a stored record without them is trained again to get them."""
    path = results.run_path(cfg)
    if path.is_file() and not fresh:
        stored = results.load(path, expect=cfg)
        if not keep_model or model_path(cfg).is_file():
            return stored
    results.check_writable(path.parent)           # before the training, not after it
    if fresh:                                     # recomputed from the start, not from a stopped run's epochs
        checkpoint_path(cfg).unlink(missing_ok=True)
    result = train(cfg, progress=progress, model_path=model_path(cfg) if keep_model else None,
                   checkpoint_path=checkpoint_path(cfg))
    if fresh or not path.is_file():
        results.save(result, path)
    elif abs(result.pckh["Mean"] - stored.pckh["Mean"]) > REPRODUCE_POINTS:
        # retrained for its weights only: the same config on another device or thread count differs at float
        # rounding, but a larger gap says the record was not made by this code on this data
        model_path(cfg).unlink()
        checkpoint_path(cfg).unlink(missing_ok=True)
        raise results.UntrustedRecord(f"{path}: retrained for its weights, the run scores PCKh@0.5 {result.pckh['Mean']:.2f} "
                                      f"where the record says {stored.pckh['Mean']:.2f} (more than {REPRODUCE_POINTS:g} "
                                      f"point apart): recompute the record (fresh=True)")
    checkpoint_path(cfg).unlink(missing_ok=True)  # the run is done: its record (or its weights) stands for it
    return result


def load_trained_model(cfg: Config) -> PoseModel:
    """The weights `load_or_train(cfg, keep_model=True)` kept, in a model on the CPU, in eval mode."""
    path = model_path(cfg)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no trained weights for config {cfg.hash()}; run "
                                f"load_or_train(cfg, keep_model=True) first")
    model = for_config(cfg)
    model.load_state_dict(read_weights(path, rebuild="delete it and run load_or_train(cfg, keep_model=True) again"))
    return model.eval()
