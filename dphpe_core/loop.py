"""The training loop every method and the public pretraining share: `fit` and `evaluate`.

    python -c "from dphpe_core.loop import fit, evaluate; help(fit)"

`fit(model, cfg, train_set, ...)` trains a model in place for cfg.epochs: it draws the batches and
takes `Mechanism.step` on each, the step that `make_optimizer(cfg, ...)` (mechanisms.py) builds for the
method (its public preparation, the private pass, the privatised update), the one `dphpe bench` times.
`evaluate` measures PCKh@0.5 and @0.1 on a split, with the flip test. The loop knows nothing of
run records (train.py) or of where a model's start comes from (start.py).
"""

from __future__ import annotations

import ctypes
import functools
import os
import sys
import time
from pathlib import Path

import numpy as np
import torch
from opacus.utils.uniform_sampler import UniformWithReplacementSampler
from torch.utils.data import DataLoader, Dataset

from .config import Config
from .data import Batched, collate
from .mechanisms import Mechanism, make_optimizer
from .model import PoseModel, predict
from .pckh import pckh_per_joint, summarize


# -- the C allocator -----------------------------------------------------------------------------
# A private step allocates B x P floats of per-sample gradients and frees them again. glibc's
# malloc hands allocations above its mmap threshold to fresh mmap'd pages and unmaps them on free,
# so every step page-faults (and the kernel zeroes) its whole working set anew: measured here at
# a third of DP-SGD's overhead over non-private training (bench/README.md). `keep_freed_memory`
# tells glibc to serve every allocation from its heap and keep what is freed for the next step.
# The values computed are the same to the bit; the process keeps its peak memory instead of
# returning it between steps. `fit` does it when it trains on the CPU; DPHPE_KEEP_FREED_MEMORY=0
# turns it off.
_M_TRIM_THRESHOLD, _M_MMAP_MAX = -1, -4


class _MallInfo2(ctypes.Structure):
    _fields_ = [(name, ctypes.c_size_t) for name in ("arena", "ordblks", "smblks", "hblks", "hblkhd", "usmblks",
                                                     "fsmblks", "uordblks", "fordblks", "keepcost")]


@functools.lru_cache(maxsize=1)
def _glibc():
    """glibc, loaded once (allocated_bytes is sampled every half millisecond by the benchmark)."""
    try:
        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.mallinfo2           # glibc >= 2.33
    except (OSError, AttributeError):
        return None
    libc.mallinfo2.restype = _MallInfo2
    return libc


def keep_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse (see above); whether it now does. A no-op off glibc
    or with DPHPE_KEEP_FREED_MEMORY=0."""
    libc = _glibc()
    if libc is None or os.environ.get("DPHPE_KEEP_FREED_MEMORY", "1") == "0":
        return False
    return bool(libc.mallopt(_M_MMAP_MAX, 0)) and bool(libc.mallopt(_M_TRIM_THRESHOLD, 2**31 - 1))


def allocated_bytes() -> int | None:
    """Bytes the C allocator has handed out and not taken back (glibc's mallinfo2; None elsewhere):
    on a CPU, what torch's tensors hold, like CUDA's memory_allocated."""
    libc = _glibc()
    if libc is None:
        return None
    info = libc.mallinfo2()
    return int(info.uordblks + info.hblkhd)


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


def steps_per_epoch(cfg: Config, n: int) -> int:
    """Poisson steps an epoch on `n` private crops: n / expected batch size, rounded, at least 1."""
    return max(1, round(n / cfg.expected_batch_size))


def training_batches(cfg: Config, mech: Mechanism, train_set: Dataset) -> DataLoader:
    """A private method's Poisson batches at its plan's rate, the plan's steps spread over the epochs; a
    non-private run's shuffled batches of the expected batch size."""
    if mech.poisson:
        return _poisson_loader(train_set, mech.plan.sample_rate, mech.plan.steps // cfg.epochs, seed=cfg.seed,
                               workers=cfg.num_workers)
    return _loader(train_set, cfg.expected_batch_size, shuffle=True, seed=cfg.seed, workers=cfg.num_workers)


def _rng_state() -> dict:
    """Every random generator a run draws from outside its own objects: torch's (and CUDA's), numpy's, Python's."""
    import random
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    return {"torch": torch.get_rng_state(), "cuda": torch.cuda.get_rng_state_all() if torch.cuda.is_initialized() else [],
            "numpy": [kind, torch.from_numpy(keys.astype(np.int64)), pos, has_gauss, cached], "python": random.getstate()}


def _set_rng_state(state: dict) -> None:
    import random
    torch.set_rng_state(state["torch"])
    if state["cuda"]:
        torch.cuda.set_rng_state_all(state["cuda"])
    kind, keys, pos, has_gauss, cached = state["numpy"]
    np.random.set_state((kind, keys.numpy().astype(np.uint32), pos, has_gauss, cached))
    random.setstate(state["python"])


def _batch_generator(loader: DataLoader) -> torch.Generator:
    """The generator a training loader's batches are drawn from: the shuffle's, or the Poisson sampler's."""
    return loader.generator if loader.generator is not None else loader.batch_sampler.generator


class Checkpoint:
    """A run's state after each finished epoch but the last, in one file, so that a run that was stopped (a
    killed process, a Colab runtime that disconnected) goes on from there: the model, the optimizer and
    its lr schedule, the method's public preparation (the subspace and its draws, the public batches' draws),
    every random generator the run draws from, the curves and the time spent (`elapsed_before`).

    Without loader workers a resumed run is the uninterrupted run to the bit (a test checks every method).
    With workers it is not: they draw from generators seeded when they start, and their loaders read ahead,
    so the draws after the stop are new ones; the Poisson rate, the noise multiplier and the steps are the
    plan's either way, so the guarantee and its accounting are the same. A file written for another
    config or another provenance (commit, clean tree, training-code version, device, threads) is not used:
    the run starts over and says why. Written atomically (a temporary file, then renamed)."""

    def __init__(self, path, key: dict):
        import json
        self.path, self.key = Path(path), json.loads(json.dumps(key))   # plain values (torch's version is a str subclass)
        self.elapsed_before = 0.0

    def load(self) -> dict | None:
        if not self.path.is_file():
            return None
        state = torch.load(self.path, weights_only=True)
        if state.get("key") != self.key:
            theirs = state.get("key") or {}
            differ = sorted(k for k in set(self.key) | set(theirs) if self.key.get(k) != theirs.get(k))
            print(f"{self.path}: a checkpoint of another run ({', '.join(differ)} differ); starting the run over",
                  flush=True)
            return None
        self.elapsed_before = float(state["elapsed"])
        return state

    def save(self, *, epoch: int, model, mech: Mechanism, sched, loader: DataLoader, curves: dict,
             elapsed: float) -> None:
        state = {"key": self.key, "epoch": epoch, "curves": curves, "elapsed": self.elapsed_before + elapsed,
                 "model": model.state_dict(), "mech": mech.state_dict(), "sched": sched.state_dict(),
                 "batches": _batch_generator(loader).get_state(), "rng": _rng_state()}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_suffix(".tmp")
        torch.save(state, tmp)
        os.replace(tmp, self.path)

    def remove(self) -> None:
        self.path.unlink(missing_ok=True)


def _epoch_line(desc: str, done: int, epochs: int, elapsed: float, val: list) -> str:
    """One epoch's line for a log file: the val score where there is one, time spent and left."""
    score = f", val PCKh@0.5 {val[-1]:.1f}" if val else ""
    return f"{desc}: epoch {done}/{epochs}{score}; {elapsed:.0f} s elapsed, ~{elapsed / done * (epochs - done):.0f} s left"


def fit(model: PoseModel, cfg: Config, train_set: Dataset, *, val_set: Dataset | None, device,
        desc: str, progress: bool = True, public_set: Dataset | None = None,
        plan=None, stages=(), checkpoint: Checkpoint | None = None) -> tuple[dict, Mechanism]:
    """Train `model` in place for cfg.epochs with cfg.method's step; per-epoch curves and the mechanism.

    `public_set` (disjoint from train_set) feeds the methods that use public data. A logical batch
    larger than cfg.max_physical_batch_size is split: each physical batch is clipped and summed,
    and the noise is added once, at the last (Opacus' skip-step protocol). `plan` and `stages` go to
    make_optimizer (a private method's privacy plan, default its own; the audit's canaries).
    `checkpoint`: the run goes on from the file's last epoch where there is one, and writes it after
    every epoch but the last (Checkpoint).
    """
    from tqdm.auto import tqdm
    if torch.device(device).type == "cpu":      # on a GPU the per-sample gradients live in CUDA's own allocator
        keep_freed_memory()
    torch.manual_seed(cfg.seed)   # augmentation and noise draw from here: the same config gives the same run
    per_epoch = steps_per_epoch(cfg, len(train_set))
    mech = make_optimizer(cfg, model, private_set=train_set, public_set=public_set, steps_per_epoch=per_epoch,
                          device=device, plan=plan, stages=stages)
    sched = torch.optim.lr_scheduler.MultiStepLR(mech.optimizer, [cfg.lr_decay_epoch], gamma=cfg.lr_decay)
    loader = training_batches(cfg, mech, train_set)
    view = image_view(cfg)
    curves = {"epoch": [], "loss": [], "val_pckh": [], "lr": []}
    first = 0
    state = checkpoint.load() if checkpoint is not None else None
    if state is not None:
        model.load_state_dict(state["model"])
        mech.load_state_dict(state["mech"])
        sched.load_state_dict(state["sched"])
        _batch_generator(loader).set_state(state["batches"])
        _set_rng_state(state["rng"])
        curves, first = state["curves"], state["epoch"]
        if progress:
            print(f"{desc}: going on from the checkpoint after epoch {first}/{cfg.epochs} ({checkpoint.path})", flush=True)
    # on a terminal a bar; elsewhere (a log file) one line per epoch
    lines = progress and not sys.stderr.isatty()
    bar = tqdm(total=cfg.epochs * len(loader), initial=first * len(loader), desc=desc, unit="step",
               disable=not progress or lines, leave=False)
    t0, before = time.perf_counter(), checkpoint.elapsed_before if checkpoint is not None else 0.0
    model.train()
    for epoch in range(first, cfg.epochs):
        total, count = 0.0, 0
        for batch in loader:
            batch = None if batch is None else _to(batch, device)
            if view is not None and batch is not None:
                batch["image"] = view(batch["image"])
            loss, crops = mech.step(batch, physical=cfg.max_physical_batch_size)
            total, count = total + loss, count + crops
            bar.update()
        curves["epoch"].append(epoch + 1)
        # a private run's training loss is a noise-free function of private crops: never logged
        curves["loss"].append(None if mech.privacy else total / max(count, 1))
        curves["lr"].append(mech.optimizer.param_groups[0]["lr"])
        sched.step()
        if val_set is not None:
            curves["val_pckh"].append(evaluate(model, val_set, device=device, flip_test=False, view=view)[0]["Mean"])
            bar.set_postfix(val=f"{curves['val_pckh'][-1]:.1f}")
        if lines:
            print(_epoch_line(desc, epoch + 1, cfg.epochs, before + time.perf_counter() - t0, curves["val_pckh"]), flush=True)
        if checkpoint is not None and epoch + 1 < cfg.epochs:
            checkpoint.save(epoch=epoch + 1, model=model, mech=mech, sched=sched, loader=loader, curves=curves,
                            elapsed=time.perf_counter() - t0)
    bar.close()
    mech.optimizer.zero_grad(set_to_none=True)
    if mech.model is not model:
        mech.model.remove_hooks()
    return curves, mech
