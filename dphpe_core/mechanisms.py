"""Privatisation of a training step: per-sample gradients, clipping, and the optimizer per method.

    python -m pytest tests/test_mechanisms.py

Per-sample gradients come from Opacus' grad samplers through `PerSampleGradients`, an Opacus
`GradSampleModule` (the model's custom layers register exact grad samplers in model.py), and
`backward(model, loss)` computes them without the summed gradient that DP-SGD discards; clipping
comes from Opacus' `DPOptimizer.clip_and_accumulate`.
`clipped_grad_sum` runs exactly that pipeline without noise, so tests can compare it with a
brute-force loop of single-sample gradients. `make_optimizer` is the one place that reads
`cfg.method`.

Every private method is one `PrivateOptimizer` (Opacus' DPOptimizer over AdamW) with up to two
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
from functools import partial
from typing import Callable

import torch
from opacus import GradSampleModule
from opacus.grad_sample.functorch import prepare_layer
from opacus.grad_sample.grad_sample_module import create_or_accumulate_grad_sample, promote_current_grad_sample
from opacus.utils.module_utils import trainable_parameters
from opacus.optimizers import DPOptimizer
from torch import nn

from .privacy import PrivacyPlan, privacy_plan
from .config import Config
from .methods import METHODS, Parts
from .projection import Subspace
from .projection import plan as subspace_layout
from .simcc import kl_loss
from .transforms import blur


def per_sample_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """SimCC KL loss of each crop in the batch, shape (B,)."""
    pred_x, pred_y = model(batch["image"])
    return kl_loss(pred_x, pred_y, batch["target_x"], batch["target_y"], batch["target_weight"], reduction="none")


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


class PerSampleGradients(GradSampleModule):
    """Opacus' GradSampleModule with its grad samplers, taking each layer's output gradient from a
    hook on the output tensor, and able to skip the parameters' own gradients.

    - Hooks: Opacus' forward hook stores each trainable layer's input; where Opacus adds a full
      backward hook (two identity autograd functions around every layer, Python at each pass), a
      hook on the layer's output tensor hands its gradient to the same grad sampler. It fires in
      `loss.backward()` as well, so the module is a drop-in GradSampleModule.
    - `backward(loss)`: asks autograd (`torch.autograd.grad`) for the gradients of the outputs of
      the layers whose inputs need none (the first trained layer, a bias table); every later
      trained layer lies on their path, so its output gradient is made on the way, and the summed
      weight gradients (`p.grad`, which DPOptimizer overwrites with its clipped, noisy sum) are
      never computed: one matrix product per linear layer and one weight gradient per convolution
      saved.
    - Opacus writes every per-sample gradient into a freshly zeroed buffer of the batch's length
      (for packed sequences and layers used more than once); in this model each layer runs once
      per forward pass on the whole batch, so here the grad sampler's tensor is kept as it is.
    The per-sample gradients are the same to the bit as Opacus' own path (tests).
    """

    def forward(self, *args, **kwargs):
        self._outputs: dict[int, tuple] = {}    # this pass' hooked layers: (output, root, layer)
        return super().forward(*args, **kwargs)

    def add_hooks(self, *, loss_reduction: str = "mean", batch_first: bool = True,
                  force_functorch: bool = False) -> None:
        if hasattr(self._module, "autograd_grad_sample_hooks"):
            raise ValueError("Trying to add hooks twice to the same model")
        self._module.autograd_grad_sample_hooks = self.autograd_grad_sample_hooks = []
        self._outputs = {}
        for module in self.iterate_submodules(self._module):
            if force_functorch or self._get_module_type(module) not in self.GRAD_SAMPLERS:
                prepare_layer(module, batch_first=batch_first)
            self.autograd_grad_sample_hooks.append(module.register_forward_hook(
                partial(self._capture, loss_reduction=loss_reduction, batch_first=batch_first)))
        self.enable_hooks()

    def _capture(self, module, inputs, output, *, loss_reduction, batch_first):
        before = len(getattr(module, "activations", ()))
        self.capture_activations_hook(module, inputs, output)
        if len(getattr(module, "activations", ())) == before:     # Opacus stored nothing: no pass to hook
            return
        if not torch.is_tensor(output) or not output.requires_grad:
            raise TypeError(f"per-sample gradients need {type(module).__name__} to return one tensor that "
                            f"requires grad; got {type(output).__name__}")
        outputs, key = self._outputs, len(self._outputs)    # this pass' dict: a later pass makes a new one
        # root: no input needs a gradient, so no later layer's path leads here
        outputs[key] = (output, not any(torch.is_tensor(t) and t.requires_grad for t in inputs), module)

        def hook(grad):
            outputs.pop(key, None)
            self.capture_backprops_hook(module, None, (grad,), loss_reduction, batch_first)
        output.register_hook(hook)

    def backward(self, loss: torch.Tensor) -> None:
        """Per-sample gradients of `loss` into p.grad_sample, without computing p.grad."""
        roots = [out for out, root, _ in self._outputs.values() if root]
        if not roots:
            raise RuntimeError("no hooked layer ran since the last backward: call the model first (hooks enabled, "
                               "training mode, gradients on)")
        try:
            torch.autograd.grad(loss, roots, allow_unused=True)
            if self._outputs:         # a hook that did not fire: that layer's per-sample gradient is missing
                missed = sorted({type(m).__name__ for _, _, m in self._outputs.values()})
                raise RuntimeError(f"the output of {len(self._outputs)} hooked layer(s) ({', '.join(missed)}) did not "
                                   f"reach the loss: no per-sample gradient for their parameters")
        finally:
            self._outputs.clear()

    def capture_backprops_hook(self, module, _forward_input, forward_output, loss_reduction, batch_first):
        kind = self._get_module_type(module)
        if not self.hooks_enabled or self.force_functorch or kind not in self.GRAD_SAMPLERS:
            return super().capture_backprops_hook(module, _forward_input, forward_output, loss_reduction, batch_first)
        backprops = forward_output[0].detach()
        activations, backprops = self.rearrange_grad_samples(module=module, backprops=backprops,
                                                             loss_reduction=loss_reduction, batch_first=batch_first)
        for param, gs in self.GRAD_SAMPLERS[kind](module, activations, backprops).items():
            if not param.requires_grad:
                continue
            if hasattr(param, "_current_grad_sample") or gs.shape[0] != module.max_batch_len:
                create_or_accumulate_grad_sample(param=param, grad_sample=gs, max_batch_len=module.max_batch_len)
            else:   # a fresh tensor of the sampler's (a view of the backprops would be copied)
                shares = gs.untyped_storage().data_ptr() == backprops.untyped_storage().data_ptr()
                param._current_grad_sample = gs.clone() if shares else gs
        for _, p in trainable_parameters(module):
            p._forward_counter -= 1
            if p._forward_counter == 0:
                promote_current_grad_sample(p)
            if not self.grad_accumulation_allowed and isinstance(p.grad_sample, list) and len(p.grad_sample) > 1:
                raise ValueError("Poisson sampling is not compatible with grad accumulation: call optimizer.step() "
                                 "after every forward/backward pass")
        if len(module.activations) == 0 and hasattr(module, "max_batch_len"):
            del module.max_batch_len


def backward(model: nn.Module, loss: torch.Tensor) -> None:
    """`loss.backward()`, or for per-sample gradients only what they need (`PerSampleGradients.backward`)."""
    if isinstance(model, PerSampleGradients) and model.hooks_enabled:
        model.backward(loss)
    else:
        loss.backward()


def wrap_for_per_sample_grads(model: nn.Module) -> GradSampleModule:
    """Opacus hooks on `model` (strict validation: refuses BatchNorm and other batch-mixing layers).

    The loss is summed over the batch, so each grad_sample is the gradient of one crop's loss.
    """
    if isinstance(model, GradSampleModule):
        return model
    return PerSampleGradients(model, batch_first=True, loss_reduction="sum", strict=True)


def clipped_grad_sum(model: nn.Module, batch: dict, clip_norm: float) -> dict[str, torch.Tensor]:
    """Sum over the batch of per-sample gradients of the trainable parameters, each sample's
    gradient clipped to total L2 norm `clip_norm` (flat clipping); no noise.

    Opacus' DPOptimizer.clip_and_accumulate does the clipping, as in the private trainers.
    `model` may be a plain module (hooks are added and removed here) or a GradSampleModule.
    """
    if not clip_norm > 0:
        raise ValueError(f"clip_norm must be > 0, got {clip_norm}")
    owned = not isinstance(model, GradSampleModule)
    gsm = wrap_for_per_sample_grads(model)
    named = trainable(gsm._module)
    if not named:
        raise ValueError("the model has no trainable parameters")
    opt = DPOptimizer(torch.optim.SGD([p for _, p in named], lr=0.0), noise_multiplier=0.0, max_grad_norm=clip_norm,
                      expected_batch_size=len(batch["image"]), loss_reduction="sum")
    try:
        opt.zero_grad(set_to_none=True)
        backward(gsm, per_sample_loss(gsm, batch).sum())
        opt.clip_and_accumulate()
        return {n: p.summed_grad.detach().clone() for n, p in named}
    finally:
        opt.zero_grad(set_to_none=True)
        if owned:
            gsm.remove_hooks()


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


def _chunks(batch: dict, size: int):
    n = len(batch["image"])
    for i in range(0, n, size or n):
        yield {k: v[i:i + size] if torch.is_tensor(v) and size else v for k, v in batch.items()}


def physical_batches(mech: Mechanism, batch: dict, size: int):
    """(chunk, is_last) pairs of a logical batch, at most `size` rows each (0: one chunk); for a
    private method every chunk but the last tells the optimizer to clip and sum only."""
    chunks = list(_chunks(batch, size)) if mech.sum_loss else [batch]
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


def per_sample_gradients(gsm: GradSampleModule, batch: dict, params: list[nn.Parameter], *,
                         physical: int = 0) -> list[torch.Tensor]:
    """Unclipped per-sample gradients (B, *shape) of `batch`, physical rows at a time; leaves
    p.grad and p.grad_sample empty (call it between private passes, never inside one)."""
    parts: list[list[torch.Tensor]] = [[] for _ in params]
    for chunk in _chunks(batch, physical):
        for p in params:
            p.grad_sample, p.grad = None, None
        backward(gsm, per_sample_loss(gsm, chunk).sum())
        for part, p in zip(parts, params):      # a layer no crop reaches (the audit's canaries): zeros
            part.append(p.grad_sample.detach() if p.grad_sample is not None
                        else p.new_zeros(len(chunk["image"]), *p.shape))
    for p in params:
        p.grad_sample, p.grad = None, None
    return [torch.cat(part) for part in parts]


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


PAPER_BLUR_256 = (25, 10.0)        # the paper's psi(x) at 256 x 192: kernel and sigma (the preset's default)


def view_clause(cfg: Config) -> str:
    """What a blur other than the paper's makes public, in words ('' at the paper's blur)."""
    if (cfg.blur_kernel_256, cfg.blur_sigma_256) == PAPER_BLUR_256:
        return ""
    paper = cfg.replace(blur_kernel_256=PAPER_BLUR_256[0], blur_sigma_256=PAPER_BLUR_256[1])
    lighter = "lighter" if cfg.blur_sigma_256 < PAPER_BLUR_256[1] else "heavier"
    return (f" Its psi(x) is a Gaussian blur of sigma {cfg.blur_sigma:.3g} px (kernel {cfg.blur_kernel}), {lighter} than "
            f"the paper's at this size (sigma {paper.blur_sigma:.3g} px, kernel {paper.blur_kernel}): "
            + ("more of each crop is public, and none of what the blurred view shows is protected."
               if lighter == "lighter" else "less of each crop is public."))


def guarantee(cfg: Config, parts: Parts, privacy: dict) -> str:
    """The run's guarantee in words: what is protected, against which neighbours, and what is not."""
    eps, delta = privacy["epsilon_spent"], privacy["delta"]
    paper = privacy["epsilon_paper_accounting"]
    tail = ("It covers the final and every intermediate model. The per-epoch PCKh uses the separate val split; "
            "the training loss is not logged.")
    post = (" The projection onto a subspace of public-split gradients is post-processing and costs nothing."
            if parts.project else "")
    if parts.public_gradient:
        post += view_clause(cfg)
    if not parts.public_gradient or cfg.fdp_public == "public-set":
        extra = (" The noise-free public gradient uses blurred crops of the separate public split only."
                 if parts.public_gradient else "")
        return (f"({eps:.3g}, {delta:.2g})-DP for each private training crop (image and keypoint labels alike) "
                f"under add/remove-one neighbours ({parts.name}; {privacy['accountant']} accountant, sensitivity C)."
                f"{post}{extra} "
                f"{tail}")
    what = (f"({eps:.3g}, {delta:.2g}) feature-DP ({parts.name}): it protects what a private crop shows beyond its blurred "
            f"view psi(x), against neighbours that replace one crop's image while its blurred view and keypoint "
            f"labels stay (replace-one, sensitivity 2C). The blurred views and the keypoint labels of private "
            f"crops enter a noise-free gradient and are NOT protected.")
    if cfg.fdp_public == "independent":
        how = ("The public batch is drawn independently of the private Poisson batch, so amplification by "
               "subsampling holds (PLD accountant).")
    else:
        how = (f"The public gradient is computed on the private batch itself (the paper's released code), "
               f"which reveals which crops were sampled: no amplification; each crop's participations are "
               f"bounded by {privacy['participations']} (the Binomial tail is added to delta), each a full "
               f"Gaussian mechanism.")
    return (f"{what}{post} {how} The paper's accounting (add/remove, RDP, with amplification) would claim "
            f"epsilon {paper:.3g} for the same noise. {tail}")


def noise_only_step(mech: Mechanism) -> None:
    """A Poisson batch can be empty; the step still releases noise (the accountant counted it)."""
    for p in mech.optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    mech.optimizer.step()
