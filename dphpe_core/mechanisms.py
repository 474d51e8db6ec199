"""Privatisation of a training step: per-sample gradients, clipping, and the optimizer per method.

    python -m pytest tests/test_mechanisms.py

Per-sample gradients come from Opacus' `GradSampleModule` (hooks; the model's custom layers
register exact grad samplers in model.py), clipping from Opacus' `DPOptimizer.clip_and_accumulate`.
`clipped_grad_sum` runs exactly that pipeline without noise, so tests can compare it with a
brute-force loop of single-sample gradients. `make_optimizer` is the one place that reads
`cfg.method`.
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

from .accounting import calibrate_noise, default_delta, epsilon_spent
from .config import Config
from .simcc import kl_loss

# The first hooked layer sees an input (the image) that needs no gradient; PyTorch says so at
# every backward pass. It is expected here and changes nothing.
warnings.filterwarnings("ignore", message="Full backward hook is firing when gradients are computed with respect to module outputs")


def per_sample_loss(model: nn.Module, batch: dict) -> torch.Tensor:
    """SimCC KL loss of each crop in the batch, shape (B,)."""
    pred_x, pred_y = model(batch["image"])
    return kl_loss(pred_x, pred_y, batch["target_x"], batch["target_y"], batch["target_weight"], reduction="none")


def trainable(model: nn.Module) -> list[tuple[str, nn.Parameter]]:
    return [(n, p) for n, p in model.named_parameters() if p.requires_grad]


def wrap_for_per_sample_grads(model: nn.Module) -> GradSampleModule:
    """Opacus hooks on `model` (strict validation: refuses BatchNorm and other batch-mixing layers).

    The loss is summed over the batch, so each grad_sample is the gradient of one crop's loss.
    """
    if isinstance(model, GradSampleModule):
        return model
    return GradSampleModule(model, batch_first=True, loss_reduction="sum", strict=True)


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
        per_sample_loss(gsm, batch).sum().backward()
        opt.clip_and_accumulate()
        return {n: p.summed_grad.detach().clone() for n, p in named}
    finally:
        opt.zero_grad(set_to_none=True)
        if owned:
            gsm.remove_hooks()


@dataclass
class Mechanism:
    """How the training loop takes a step for one method."""
    model: nn.Module                  # what the loop calls: a GradSampleModule for private methods
    optimizer: torch.optim.Optimizer  # a DPOptimizer (clip, noise, / expected batch) for private methods
    poisson: bool                     # Poisson sampling at `sample_rate`, else shuffled fixed-size batches
    sum_loss: bool                    # backward on the sum of per-crop losses (per-sample gradients)
    privacy: dict = field(default_factory=dict)
    guarantee: str = "none: trained without differential privacy"


def dp_optimizer(params, cfg: Config, *, noise_multiplier: float, clip_norm: float,
                 expected_batch_size: int) -> DPOptimizer:
    """AdamW behind Opacus' DPOptimizer: per-sample clipping to clip_norm, Gaussian noise of std
    noise_multiplier * clip_norm on the sum, division by the expected batch size."""
    base = torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
    return DPOptimizer(base, noise_multiplier=noise_multiplier, max_grad_norm=clip_norm,
                       expected_batch_size=expected_batch_size, loss_reduction="mean")


def make_optimizer(cfg: Config, model: nn.Module, *, n_private: int, steps_per_epoch: int) -> Mechanism:
    """The step of `cfg.method` (the only reader of cfg.method), for n_private training crops."""
    params = [p for _, p in trainable(model)]
    match cfg.method:
        case "nonprivate":
            return Mechanism(model, torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay),
                             poisson=False, sum_loss=False)
        case "dpsgd":
            privacy = privacy_budget(cfg, n_private=n_private, steps_per_epoch=steps_per_epoch)
            gsm = wrap_for_per_sample_grads(model)
            opt = dp_optimizer(params, cfg, noise_multiplier=privacy["noise_multiplier"], clip_norm=cfg.clip_norm,
                               expected_batch_size=cfg.expected_batch_size)
            guarantee = (f"({privacy['epsilon_spent']:.3g}, {privacy['delta']:.2g})-DP for each private training "
                         f"crop (image and labels alike) under add/remove-one neighbours (DP-SGD, "
                         f"{privacy['accountant']} accountant); it covers the final and every intermediate model. "
                         f"The per-epoch PCKh uses the separate val split; the training loss is not logged")
            return Mechanism(gsm, opt, poisson=True, sum_loss=True, privacy=privacy, guarantee=guarantee)
        case "pdp" | "fdp" | "hybrid":
            raise NotImplementedError(f"method {cfg.method!r}: projected and feature-DP trainers are not built yet "
                                      f"(issue 4); 'nonprivate' and 'dpsgd' train today")
        case other:
            raise ValueError(f"unknown method {other!r}")


def privacy_budget(cfg: Config, *, n_private: int, steps_per_epoch: int) -> dict:
    """The noise multiplier that meets cfg.epsilon for this run's sample rate and steps (add/remove)."""
    sample_rate = cfg.expected_batch_size / n_private
    steps = cfg.epochs * steps_per_epoch
    delta = cfg.delta or default_delta(n_private)
    sigma = calibrate_noise(cfg.epsilon, delta, sample_rate, steps, cfg.accountant, n_private=n_private)
    return dict(noise_multiplier=sigma, sample_rate=sample_rate, steps=steps, delta=delta, accountant=cfg.accountant,
                neighbouring="add-remove", clip_norm=cfg.clip_norm, epsilon_target=cfg.epsilon,
                epsilon_spent=epsilon_spent(sigma, delta, sample_rate, steps, cfg.accountant))


def noise_only_step(mech: Mechanism) -> None:
    """A Poisson batch can be empty; the step still releases noise (the accountant counted it)."""
    for p in mech.optimizer.params:
        p.grad_sample = torch.zeros((0, *p.shape), dtype=p.dtype, device=p.device)
    mech.optimizer.step()
