"""Privatisation of a training step: the optimizer per method, from the privacy plan.

    python -m pytest tests/test_mechanisms.py

`make_optimizer` is the one place that reads `cfg.method`; per-sample gradients and their clipping
come from persample.py (Opacus' grad samplers), the noise and the accounting from the plan
(privacy.py), which also words each run's guarantee.

Every private method is one `PrivateOptimizer` (Opacus' DPOptimizer over AdamW or SGD) with up to two
additions after the noise, both post-processing of the noisy gradient:
- projection (pdp, hybrid): g <- V V^T g, V from per-sample gradients of public-split crops
  (projection.py), rebuilt every `subspace_interval` of the run's steps (`rebuild_every`);
- a public gradient (fdp, hybrid): lambda x the mean gradient on blurred crops psi(x), no noise,
  from `fdp_public`: an independent uniform batch of the private set, the private batch itself
  (the paper's code), or a batch of the public split. It is computed with Opacus' hooks off,
  by `torch.autograd.grad`, so it never touches the private pass' per-sample buffers.
Each choice is accounted under its own neighbouring relation (privacy.py's plan, which the optimizer
reads: its clip norm and noise multiplier, and the loop's Poisson sampler its rate and steps).

The optimizer offers `stages`: objects whose `before_clip(opt)` runs before the per-sample gradients
are clipped and whose `released(opt, grads)` sees the noisy gradient as released, before any
post-processing (the audit's canaries enter the step this way, tests count steps this way).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Callable

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from .config import Config
from .methods import METHODS
from .persample import backward, per_sample_gradients, per_sample_loss, row_chunks, trainable, wrap_for_per_sample_grads
from .privacy import PrivacyPlan, guarantee, privacy_plan
from .projection import Subspace
from .projection import plan as subspace_layout
from .transforms import blur


class PrivateOptimizer(DPOptimizer):
    """DPOptimizer (clip, noise, / expected batch size) whose noisy gradient is then projected
    onto `subspace` (if set) and added to `public_weight` x `public_grads` (if set)."""

    subspace: Subspace | None = None
    public_weight: float = 0.0
    public_grads: list[torch.Tensor] | None = None
    stages: tuple = ()              # see the module's docstring (the audit's canaries)
    clipping: bool = True           # False only in the audit's own sabotage test (no-clip)

    def pre_step(self, closure=None):
        for stage in self.stages:
            stage.before_clip(self)
        return super().pre_step(closure)

    def clip_and_accumulate(self):
        if self.clipping:
            return super().clip_and_accumulate()
        saved, self.max_grad_norm = self.max_grad_norm, float("inf")
        try:
            return super().clip_and_accumulate()
        finally:
            self.max_grad_norm = saved

    def scale_grad(self):
        super().scale_grad()
        grads = [p.grad for p in self.params]
        for stage in self.stages:               # the released noisy gradient, before any post-processing
            stage.released(self, grads)
        if self.subspace is not None:
            self.subspace.project_(grads)
        if self.public_grads is not None:
            for g, pub in zip(grads, self.public_grads):
                g.add_(pub, alpha=self.public_weight)
            self.public_grads = None


def base_optimizer(params, cfg: Config) -> torch.optim.Optimizer:
    """The update rule that consumes the (private or plain) gradient: AdamW, the paper's, or SGD with
    momentum (cfg.optimizer). foreach: one update over all tensors at once (torch picks it only on CUDA)."""
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, foreach=True)
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, foreach=True)


def dp_optimizer(params, cfg: Config, *, plan: PrivacyPlan, stages=()) -> PrivateOptimizer:
    """cfg's optimizer (base_optimizer) behind Opacus' DPOptimizer, from the plan alone: per-sample clipping to its clip norm,
    Gaussian noise of std noise multiplier x clip norm on the sum, division by the expected batch size."""
    base = base_optimizer(params, cfg)
    opt = PrivateOptimizer(base, noise_multiplier=plan.noise_multiplier, max_grad_norm=plan.clip_norm,
                           expected_batch_size=cfg.expected_batch_size, loss_reduction="mean")
    opt.stages = tuple(stages)
    return opt


@dataclass
class Mechanism:
    """How the training loop takes a step for one method."""
    model: nn.Module                  # what the loop calls: a GradSampleModule for private methods
    optimizer: torch.optim.Optimizer  # a PrivateOptimizer for private methods
    poisson: bool                     # Poisson sampling at `sample_rate`, else shuffled fixed-size batches
    sum_loss: bool                    # backward on the sum of per-crop losses (per-sample gradients)
    privacy: dict = field(default_factory=dict)   # the record's numbers: the plan's, and the mechanism's
    guarantee: str = "none: trained without differential privacy"
    plan: PrivacyPlan | None = None   # what the optimizer and the Poisson sampler read (private methods)
    prepare: Callable[[dict | None], None] | None = None   # before each logical batch's private pass
    stats: Callable[[], dict] = dict  # what the mechanism measured (the projection's kept norm)

    def backward(self, losses: torch.Tensor) -> None:
        """The gradients of a pass' per-crop `losses`: per-sample (their sum) or the mean's."""
        backward(self.model, losses.sum() if self.sum_loss else losses.mean())

    def step(self, batch: dict | None, *, physical: int = 0) -> tuple[float, int]:
        """One training step on a logical `batch` (on the model's device, in the run's image view; None: an
        empty Poisson batch, which still releases noise): the method's public preparation, then per physical
        batch of at most `physical` rows (0: one) the forward pass, the backward pass and the optimizer,
        which clips and sums each and adds the noise once, at the last. The step `fit`, `dphpe bench` and the
        audit (through the optimizer's stages) all take. Returns the summed per-crop loss and the crops."""
        self.optimizer.zero_grad(set_to_none=True)
        if self.prepare is not None:
            self.prepare(batch)
        if batch is None:
            noise_only_step(self)
            return 0.0, 0
        total, count = 0.0, 0
        for chunk, last in physical_batches(self, batch, physical):
            losses = per_sample_loss(self.model, chunk)
            self.backward(losses)
            self.optimizer.step()
            if not last:
                self.optimizer.zero_grad(set_to_none=True)   # after a skipped step: per-sample buffers only
            total, count = total + losses.detach().sum().item(), count + len(losses)
        return total, count


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


METHOD_PARTS = {m: p for m, p in METHODS.items() if p.private}     # the private methods' parts


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


def _to(batch: dict, device) -> dict:
    return {k: v.to(device, non_blocking=True) if torch.is_tensor(v) else v for k, v in batch.items()}


def physical_batches(mech: Mechanism, batch: dict, size: int):
    """(chunk, is_last) pairs of a logical batch, at most `size` rows each (0: one chunk); for a
    private method every chunk but the last tells the optimizer to clip and sum only."""
    chunks = list(row_chunks(batch, size)) if mech.sum_loss else [batch]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        if len(chunks) > 1:
            mech.optimizer.signal_skip_step(do_skip=not last)
        yield chunk, last


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


def make_optimizer(cfg: Config, model: nn.Module, *, private_set, public_set, steps_per_epoch: int,
                   device=None, plan: PrivacyPlan | None = None, stages=()) -> Mechanism:
    """The step of `cfg.method` (the only reader of cfg.method) for training on `private_set`;
    `public_set` feeds the subspace (pdp, hybrid) and, with fdp_public="public-set", the public gradient.
    `plan`: the privacy plan (default: privacy_plan(cfg) for this private set); `stages`: see above."""
    from torch.utils.data import DataLoader

    from .data import Batched, collate
    device = device or torch.device("cpu")
    named = trainable(model)
    params = [p for _, p in named]
    if not METHODS[cfg.method].private:
        return Mechanism(model, base_optimizer(params, cfg),
                         poisson=False, sum_loss=False)
    if cfg.method not in METHOD_PARTS:
        raise ValueError(f"unknown method {cfg.method!r}; expected nonprivate or one of {sorted(METHOD_PARTS)}")
    parts = METHOD_PARTS[cfg.method]
    project, feature = parts.project, parts.public_gradient
    plan = plan or privacy_plan(cfg, n_private=len(private_set), steps_per_epoch=steps_per_epoch)
    if (plan.n_private, plan.steps, plan.clip_norm) != (len(private_set), cfg.epochs * steps_per_epoch, cfg.clip_norm):
        raise ValueError(f"the privacy plan is for {plan.n_private} crops, {plan.steps} steps and C {plan.clip_norm}; "
                         f"this run has {len(private_set)}, {cfg.epochs * steps_per_epoch} and {cfg.clip_norm}")
    privacy = plan.record()
    gsm = wrap_for_per_sample_grads(model)
    opt = dp_optimizer(params, cfg, plan=plan, stages=stages)
    hooks: list[Callable[[dict | None], None]] = []
    if project:
        if cfg.subspace_m > len(public_set):
            raise ValueError(f"subspace_m={cfg.subspace_m}: the public split has only {len(public_set)} crops, so the "
                             f"subspace could have rank {min(cfg.subspace_k, len(public_set))} at most while the "
                             f"config asks for k={cfg.subspace_k} from m={cfg.subspace_m}; lower subspace_m (and "
                             f"subspace_k <= it) or use a larger public split")
        layout = subspace_layout([n for n, _ in named], [p.numel() for p in params], k=cfg.subspace_k, m=cfg.subspace_m,
                      budget_mb=cfg.subspace_budget_mb)
        opt.subspace = Subspace(params, layout)
        draws = iter(IndependentBatches(len(public_set), cfg.subspace_m, seed=cfg.seed + SUBSPACE_SEED_OFFSET))
        step = [0]
        every = rebuild_every(cfg, privacy["steps"])

        def refresh(_batch):
            idx = next(draws)      # drawn every step, used every `every`-th: the stream stays fixed
            if step[0] % every == 0:
                public = _to(collate(Batched(public_set).__getitems__(idx)), device)
                opt.subspace.refresh(per_sample_gradients(gsm, public, params, physical=cfg.max_physical_batch_size))
            step[0] += 1
        hooks.append(refresh)
        privacy["subspace"] = dict(k=cfg.subspace_k, m=cfg.subspace_m, interval=cfg.subspace_interval, every=every,
                                   rebuilds=-(-privacy["steps"] // every), layout=layout.note,
                                   data=f"{len(public_set)} crops of the public split")
    if feature:
        opt.public_weight = getattr(cfg, parts.weight_field)
        kernel, sigma = cfg.blur_kernel, cfg.blur_sigma
        if cfg.fdp_public == "same-batch":
            def public_pass(batch):
                opt.public_grads = None if batch is None else public_gradient(gsm, batch, params, kernel=kernel,
                                                                              sigma=sigma)
        else:
            source = private_set if cfg.fdp_public == "independent" else public_set
            loader = DataLoader(Batched(source), batch_sampler=IndependentBatches(
                len(source), cfg.expected_batch_size, seed=cfg.seed + PUBLIC_SEED_OFFSET),
                collate_fn=collate, num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0)
            batches = iter(loader)

            def public_pass(_batch):
                opt.public_grads = public_gradient(gsm, _to(next(batches), device), params, kernel=kernel,
                                                   sigma=sigma)
        hooks.append(public_pass)
        privacy.update(public_weight=opt.public_weight, blur_kernel=kernel, blur_sigma=sigma)

    def prepare(batch):
        for hook in hooks:
            hook(batch)

    return Mechanism(gsm, opt, poisson=True, sum_loss=True, privacy=privacy, guarantee=guarantee(cfg, parts, privacy),
                     plan=plan, prepare=prepare if hooks else None,
                     stats=(lambda: {"projection": opt.subspace.summary()}) if project else dict)


def noise_only_step(mech: Mechanism) -> None:
    """A Poisson batch can be empty; the step still releases noise (the accountant counted it)."""
    for p in mech.optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    mech.optimizer.step()
