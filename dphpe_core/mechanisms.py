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

import torch
from opacus import GradSampleModule
from opacus.optimizers import DPOptimizer
from torch import nn

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


def make_optimizer(cfg: Config, model: nn.Module) -> torch.optim.Optimizer:
    """The optimizer that privatises each step for `cfg.method` (the only reader of cfg.method)."""
    params = [p for _, p in trainable(model)]
    match cfg.method:
        case "nonprivate":
            return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay)
        case "dpsgd" | "pdp" | "fdp" | "hybrid":
            raise NotImplementedError(f"method {cfg.method!r}: the private trainers are not built yet "
                                      f"(issue 4); only 'nonprivate' trains today")
        case other:
            raise ValueError(f"unknown method {other!r}")
