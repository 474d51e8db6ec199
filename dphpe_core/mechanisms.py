"""Privatisation of a training step: the optimizer per method, from the privacy plan.

    python -m pytest tests/test_mechanisms.py

`make_optimizer` is the one place that reads `cfg.method`; per-sample gradients and their clipping
come from persample.py (Opacus' grad samplers), the noise and the accounting from the plan
(privacy.py), which also words each run's guarantee.

Every private method is one `PrivateOptimizer` (Opacus' DPOptimizer over AdamW or SGD) with up to two
additions after the noise, both post-processing of the noisy gradient:
- projection (pdp, hybrid): g <- V V^T g, V from per-sample gradients of public-split crops
  (projection.py), rebuilt every `subspace_interval` of the run's steps (SubspaceRefresh, publicpasses.py);
- a public gradient (fdp, hybrid): lambda x the mean gradient on blurred crops psi(x), no noise,
  from `fdp_public`: an independent uniform batch of the private set, the private batch itself
  (the paper's code), or a batch of the public split. It is computed with Opacus' hooks off,
  by `torch.autograd.grad`, so it never touches the private pass' per-sample buffers (PublicPass).
Both are handed to the optimizer when it is built, and run before each private pass (Mechanism.prepare).
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
from opacus.optimizers import DPOptimizer
from torch import nn

from .config import Config
from .methods import METHODS
from .persample import backward, per_sample_loss, row_chunks, trainable, wrap_for_per_sample_grads
from .privacy import PrivacyPlan, guarantee, privacy_plan
from .projection import Subspace
from .publicpasses import PUBLIC_SEED_OFFSET, IndependentBatches, PublicPass, SubspaceRefresh, rebuild_every
from .projection import plan as subspace_layout


class PrivateOptimizer(DPOptimizer):
    """DPOptimizer (clip, noise, / expected batch size) whose noisy gradient is then projected
    onto `subspace` (if set) and added to `public_weight` x `public_grads` (if set)."""

    public_grads: list[torch.Tensor] | None = None   # this step's public gradient (PublicPass; a stage may read it)
    clipping: bool = True           # False only in the audit's own sabotage test (no-clip)

    def __init__(self, optimizer, *, stages=(), subspace: Subspace | None = None, public_weight: float = 0.0, **kwargs):
        super().__init__(optimizer, **kwargs)
        self.stages = tuple(stages)     # see the module's docstring (the audit's canaries)
        self.subspace, self.public_weight = subspace, public_weight

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


def dp_optimizer(params, cfg: Config, *, plan: PrivacyPlan, stages=(), subspace: Subspace | None = None,
                 public_weight: float = 0.0) -> PrivateOptimizer:
    """cfg's optimizer (base_optimizer) behind Opacus' DPOptimizer, from the plan alone: per-sample clipping to its clip norm,
    Gaussian noise of std noise multiplier x clip norm on the sum, division by the expected batch size; then the
    projection onto `subspace` and `public_weight` x the public gradient, where the method has them."""
    return PrivateOptimizer(base_optimizer(params, cfg), noise_multiplier=plan.noise_multiplier,
                            max_grad_norm=plan.clip_norm, expected_batch_size=cfg.expected_batch_size,
                            loss_reduction="mean", stages=stages, subspace=subspace, public_weight=public_weight)


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
    hooks: tuple = ()                 # what `prepare` calls (SubspaceRefresh, PublicPass): their state is the run's

    def state_dict(self) -> dict:
        """The optimizer's state and the public preparation's (a checkpoint between epochs: loop.Checkpoint)."""
        return {"optimizer": self.optimizer.state_dict(), "hooks": [h.state_dict() for h in self.hooks]}

    def load_state_dict(self, state: dict) -> None:
        self.optimizer.load_state_dict(state["optimizer"])
        for hook, part in zip(self.hooks, state["hooks"], strict=True):
            hook.load_state_dict(part)

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


METHOD_PARTS = {m: p for m, p in METHODS.items() if p.private}     # the private methods' parts


def physical_batches(mech: Mechanism, batch: dict, size: int):
    """(chunk, is_last) pairs of a logical batch, at most `size` rows each (0: one chunk); for a
    private method every chunk but the last tells the optimizer to clip and sum only."""
    chunks = list(row_chunks(batch, size)) if mech.sum_loss else [batch]
    for i, chunk in enumerate(chunks):
        last = i == len(chunks) - 1
        if len(chunks) > 1:
            mech.optimizer.signal_skip_step(do_skip=not last)
        yield chunk, last


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
    subspace = None
    if project:
        if cfg.subspace_m > len(public_set):
            raise ValueError(f"subspace_m={cfg.subspace_m}: the public split has only {len(public_set)} crops, so the "
                             f"subspace could have rank {min(cfg.subspace_k, len(public_set))} at most while the "
                             f"config asks for k={cfg.subspace_k} from m={cfg.subspace_m}; lower subspace_m (and "
                             f"subspace_k <= it) or use a larger public split")
        layout = subspace_layout([n for n, _ in named], [p.numel() for p in params], k=cfg.subspace_k, m=cfg.subspace_m,
                                 budget_mb=cfg.subspace_budget_mb)
        subspace = Subspace(params, layout)
    opt = dp_optimizer(params, cfg, plan=plan, stages=stages, subspace=subspace,
                       public_weight=getattr(cfg, parts.weight_field) if feature else 0.0)
    hooks: list[Callable[[dict | None], None]] = []
    if project:
        every = rebuild_every(cfg, privacy["steps"])
        hooks.append(SubspaceRefresh(opt, gsm, params, public_set, cfg, every=every, device=device))
        privacy["subspace"] = dict(k=cfg.subspace_k, m=cfg.subspace_m, interval=cfg.subspace_interval, every=every,
                                   rebuilds=-(-privacy["steps"] // every), layout=layout.note,
                                   data=f"{len(public_set)} crops of the public split")
    if feature:
        kernel, sigma = cfg.blur_kernel, cfg.blur_sigma
        batches = sampler = None        # same-batch: the private batch itself
        if cfg.fdp_public != "same-batch":
            source = private_set if cfg.fdp_public == "independent" else public_set
            sampler = IndependentBatches(len(source), cfg.expected_batch_size, seed=cfg.seed + PUBLIC_SEED_OFFSET)
            batches = iter(DataLoader(Batched(source), batch_sampler=sampler, collate_fn=collate,
                                      num_workers=cfg.num_workers, persistent_workers=cfg.num_workers > 0))
        hooks.append(PublicPass(opt, gsm, params, kernel=kernel, sigma=sigma, batches=batches, sampler=sampler,
                                device=device))
        privacy.update(public_weight=opt.public_weight, blur_kernel=kernel, blur_sigma=sigma)

    def prepare(batch):
        for hook in hooks:
            hook(batch)

    return Mechanism(gsm, opt, poisson=True, sum_loss=True, privacy=privacy, guarantee=guarantee(cfg, parts, privacy),
                     plan=plan, prepare=prepare if hooks else None, hooks=tuple(hooks),
                     stats=(lambda: {"projection": opt.subspace.summary()}) if project else dict)


def noise_only_step(mech: Mechanism) -> None:
    """A Poisson batch can be empty; the step still releases noise (the accountant counted it)."""
    for p in mech.optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    mech.optimizer.step()
