"""What a private step computes from public data before its private pass: the public crops each step draws
(independent uniform batches with generators of their own), the subspace rebuild of projected DP-SGD, and
feature DP's noise-free gradient on blurred crops.

    python -m pytest tests/test_methods.py

All of it is post-processing of the noisy gradient or reads nothing private (the public split; or, for
feature DP, a private batch's public part under its own neighbouring relation: privacy.py's plan). The
optimizer that consumes it is mechanisms.py's.
"""

from __future__ import annotations

import torch
from opacus import GradSampleModule
from torch import nn

from .config import Config
from .persample import per_sample_gradients, per_sample_loss
from .transforms import blur


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


class IndependentBatches:
    """Uniformly random batches of `batch_size` distinct rows of 0..n-1, one per step (`steps` of
    them, or without end for None), drawn from a generator of their own: independent of every
    other draw in the run."""

    def __init__(self, n: int, batch_size: int, *, seed: int, steps: int | None = None):
        self.n, self.batch_size, self.steps = n, min(batch_size, n), steps
        self.generator = torch.Generator().manual_seed(seed)

    def __iter__(self):
        step = 0
        while self.steps is None or step < self.steps:
            yield torch.randperm(self.n, generator=self.generator)[:self.batch_size].tolist()
            step += 1

    def __len__(self) -> int:
        if self.steps is None:
            raise TypeError("IndependentBatches without a step count has no length")
        return self.steps


def rebuild_every(cfg: Config, steps: int) -> int:
    """Steps between two rebuilds of the subspace in a run of `steps` steps: cfg.subspace_interval
    of the run, rounded, at least 1 (0: every step).

    >>> from dphpe_core import make_config
    >>> rebuild_every(make_config("paper"), 17379), rebuild_every(make_config("paper"), 86)
    (50, 1)
    """
    return max(1, round(cfg.subspace_interval * steps))


PUBLIC_SEED_OFFSET = 7919        # public draws use seed + this: not the private sampler's stream


SUBSPACE_SEED_OFFSET = 104729


def public_gradient(gsm: GradSampleModule, batch: dict, params: list[nn.Parameter], *, kernel: int,
                    sigma: float) -> list[torch.Tensor]:
    """Mean gradient of the loss on the blurred crops psi(x) of `batch`, no clipping, no noise.

    Opacus' hooks are off and the gradient comes from torch.autograd.grad, so neither p.grad
    nor the per-sample buffers of the private pass are touched.
    """
    public = dict(batch, image=blur(batch["image"], kernel=kernel, sigma=sigma))
    gsm.disable_hooks()
    try:
        loss = per_sample_loss(gsm, public).mean()
        grads = torch.autograd.grad(loss, params, allow_unused=True)     # unused: the audit's canary layers
        return [torch.zeros_like(p) if g is None else g.detach() for g, p in zip(grads, params)]
    finally:
        gsm.enable_hooks()


class SubspaceRefresh:
    """Before each private pass: the next draw of `m` public crops, and at every `every`-th step the
    optimizer's subspace rebuilt from their per-sample gradients (drawn at every step, so that the stream
    of draws is the same whatever `every` is)."""

    def __init__(self, opt, gsm: GradSampleModule, params, public_set, cfg: Config, *, every: int,
                 device):
        from .data import Batched
        self.opt, self.gsm, self.params, self.every, self.device = opt, gsm, params, every, device
        self.public, self.physical = Batched(public_set), cfg.max_physical_batch_size
        self.sampler = IndependentBatches(len(public_set), cfg.subspace_m, seed=cfg.seed + SUBSPACE_SEED_OFFSET)
        self.draws = iter(self.sampler)
        self.step = 0

    def state_dict(self) -> dict:
        """Where the rebuilds stand (a checkpoint: loop.Checkpoint): the step, the draws' generator, the bases."""
        sub = self.opt.subspace
        return {"step": self.step, "draws": self.sampler.generator.get_state(), "bases": list(sub.bases),
                "kept": list(sub.kept)}

    def load_state_dict(self, state: dict) -> None:
        self.step = state["step"]
        self.sampler.generator.set_state(state["draws"])
        self.opt.subspace.bases, self.opt.subspace.kept = list(state["bases"]), list(state["kept"])

    def __call__(self, _batch) -> None:
        from .data import collate
        idx = next(self.draws)
        if self.step % self.every == 0:
            public = _to(collate(self.public.__getitems__(idx)), self.device)
            self.opt.subspace.refresh(per_sample_gradients(self.gsm, public, self.params, physical=self.physical))
        self.step += 1


class PublicPass:
    """Before each private pass: the noise-free gradient on blurred crops that the optimizer adds after the
    noise, from `batches` (an iterator of public batches: an independent draw of the private set, or the
    public split) or, where it is None, from the private batch itself (the paper's same-batch variant)."""

    def __init__(self, opt, gsm: GradSampleModule, params, *, kernel: int, sigma: float,
                 batches=None, sampler: IndependentBatches | None = None, device=None):
        self.opt, self.gsm, self.params, self.kernel, self.sigma = opt, gsm, params, kernel, sigma
        self.batches, self.sampler, self.device = batches, sampler, device     # sampler: what `batches` draws from

    def state_dict(self) -> dict:
        """The public draws' generator (a checkpoint: loop.Checkpoint; exact where `batches` reads ahead of
        nothing, i.e. without loader workers)."""
        return {} if self.sampler is None else {"draws": self.sampler.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        if self.sampler is not None:
            self.sampler.generator.set_state(state["draws"])

    def __call__(self, batch) -> None:
        if self.batches is not None:
            batch = _to(next(self.batches), self.device)
        self.opt.public_grads = None if batch is None else public_gradient(self.gsm, batch, self.params,
                                                                           kernel=self.kernel, sigma=self.sigma)
