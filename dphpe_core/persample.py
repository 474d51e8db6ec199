"""Per-sample gradients: Opacus' grad samplers behind one GradSampleModule, and clipping without noise.

    python -m pytest tests/test_mechanisms.py -k "brute_force or opacus"

Per-sample gradients come from Opacus' grad samplers through `PerSampleGradients`, an Opacus
`GradSampleModule` (the model's custom layers register exact grad samplers in model.py), and
`backward(model, loss)` computes them without the summed gradient that DP-SGD discards; clipping
comes from Opacus' `DPOptimizer.clip_and_accumulate`. `clipped_grad_sum` runs exactly that pipeline
without noise, so tests can compare it with a brute-force loop of single-sample gradients;
`per_sample_gradients` gives them unclipped (the subspace of projected DP-SGD is built from them).
"""

from __future__ import annotations

from functools import partial

import torch
from opacus import GradSampleModule
from opacus.grad_sample.functorch import prepare_layer
from opacus.grad_sample.grad_sample_module import create_or_accumulate_grad_sample, promote_current_grad_sample
from opacus.optimizers import DPOptimizer
from opacus.utils.module_utils import trainable_parameters
from torch import nn

from .simcc import kl_loss


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


def row_chunks(batch: dict, size: int):
    """The batch in pieces of at most `size` rows (0: whole)."""
    n = len(batch["image"])
    for i in range(0, n, size or n):
        yield {k: v[i:i + size] if torch.is_tensor(v) and size else v for k, v in batch.items()}


def per_sample_gradients(gsm: GradSampleModule, batch: dict, params: list[nn.Parameter], *,
                         physical: int = 0) -> list[torch.Tensor]:
    """Unclipped per-sample gradients (B, *shape) of `batch`, physical rows at a time; leaves
    p.grad and p.grad_sample empty (call it between private passes, never inside one)."""
    parts: list[list[torch.Tensor]] = [[] for _ in params]
    for chunk in row_chunks(batch, physical):
        for p in params:
            p.grad_sample, p.grad = None, None
        backward(gsm, per_sample_loss(gsm, chunk).sum())
        for part, p in zip(parts, params):      # a layer no crop reaches (the audit's canaries): zeros
            part.append(p.grad_sample.detach() if p.grad_sample is not None
                        else p.new_zeros(len(chunk["image"]), *p.shape))
    for p in params:
        p.grad_sample, p.grad = None, None
    return [torch.cat(part) for part in parts]
