"""A model for a run: the untrained network of a config, which of its parameters train (the strategy),
its data-dependent initialisation on public images, and its cost in multiply-adds.

    python -c "from dphpe_core import make_config; from dphpe_core.strategies import for_config, count_macs; print(count_macs(for_config(make_config('smoke'))))"

The network itself is model.py's; a run's model with its pretrained start is start.build_model(cfg).
"""

from __future__ import annotations

import torch
from torch import nn

from .config import STRATEGIES
from .model import ConvNorm, PoseModel


def for_config(cfg) -> PoseModel:
    """The untrained network of a config (its model size, input size and SimCC split), drawn from
    torch's generator: the one place the package calls PoseModel. start.build_model(cfg) gives a
    run's model (its start and strategy); this is for what needs only the architecture."""
    return PoseModel(cfg.model_size, (cfg.input_h, cfg.input_w), cfg.simcc_split)


def set_strategy(model: PoseModel, strategy: str) -> PoseModel:
    """finetune: stages 1-3 (and the stem) frozen, stage 4, every LayerNorm and the head trained;
    full and scratch: every parameter trained."""
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}; expected one of {list(STRATEGIES)}")
    for name, p in model.named_parameters():
        p.requires_grad = strategy != "finetune" or name.startswith(("backbone.stages.3.", "head."))
    if strategy == "finetune":
        for m in model.modules():
            if isinstance(m, nn.LayerNorm):
                m.weight.requires_grad = m.bias.requires_grad = True
    return model


def count_macs(model: PoseModel) -> int:
    """Multiply-adds of one forward pass at the model's input size."""
    from torch.utils.flop_counter import FlopCounterMode
    x = torch.zeros(1, 3, *model.input_hw)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        model(x)
    return counter.get_total_flops() // 2


@torch.no_grad()
def calibrate_affines(model: PoseModel, images: torch.Tensor) -> PoseModel:
    """Data-dependent initialisation of a randomly initialised model: each `ChannelAffine` is set
    so that its output has zero mean and unit variance per channel on `images` (what a freshly
    trained BatchNorm would do), layer by layer in forward order; zero-initialised residual
    branches stay zero. Call it with public images only: the statistics become weights.
    """
    def hook(module, _inputs, out):
        mean = out.mean(dim=(0, 2, 3))
        std = out.std(dim=(0, 2, 3)).clamp_min(1e-3)
        keep = module.affine.weight != 0
        module.affine.weight.copy_(torch.where(keep, 1.0 / std, module.affine.weight))
        module.affine.bias.copy_(torch.where(keep, -mean / std, module.affine.bias))

    handles = [m.conv.register_forward_hook(lambda mod, i, o, cn=m: hook(cn, i, o))
               for m in model.modules() if isinstance(m, ConvNorm)]
    try:
        was_training = model.training
        model.eval()(images)
        model.train(was_training)
    finally:
        for h in handles:
            h.remove()
    return model


def public_images(public, n: int = 256) -> torch.Tensor:
    """The first n public crops, unaugmented: the batch `calibrate_affines` measures."""
    ds = public.without_augmentation()
    return torch.stack([ds[i]["image"] for i in range(min(n, len(ds)))])
