import pytest
import torch
from torch import nn

from conftest import make_batch
from dphpe_core import make_config
from dphpe_core.mechanisms import clipped_grad_sum, make_optimizer, per_sample_loss, trainable
from dphpe_core.model import PoseModel, set_strategy

CASES = [(size, hw, strategy) for size, hw in (("smoke", (64, 48)), ("embedded", (96, 72)))
         for strategy in ("finetune", "full", "scratch")]
CASES += [pytest.param("5m", (256, 192), s, marks=pytest.mark.slow) for s in ("finetune", "full", "scratch")]


def _model(size, hw, strategy, dtype=torch.float64, seed=0):
    torch.manual_seed(seed)
    m = set_strategy(PoseModel(size, hw, 2.0), strategy).to(dtype)
    with torch.no_grad():  # move off the zero-initialised residual branches so every layer has a gradient
        for p in m.parameters():
            p.add_(torch.randn_like(p) * 0.05)
    return m


def _single_grads(m, batch):
    out = []
    for i in range(len(batch["image"])):
        m.zero_grad(set_to_none=True)
        per_sample_loss(m, {k: v[i:i + 1] for k, v in batch.items()}).sum().backward()
        out.append({n: p.grad.detach().clone() for n, p in trainable(m)})
    m.zero_grad(set_to_none=True)
    return out


def _norm(g):
    return torch.sqrt(sum((v ** 2).sum() for v in g.values()))


@pytest.mark.parametrize("size, hw, strategy", CASES)
def test_equals_brute_force_loop_of_clipped_single_sample_gradients(size, hw, strategy):
    m = _model(size, hw, strategy)
    batch = make_batch(*hw, 4, dtype=torch.float64)
    singles = _single_grads(m, batch)
    norms = torch.stack([_norm(g) for g in singles])
    clip = norms.median().item()          # some samples are clipped, some are not
    expected = {n: sum(min(1.0, clip / (nrm.item() + 1e-6)) * g[n] for g, nrm in zip(singles, norms))
                for n in singles[0]}
    got = clipped_grad_sum(m, batch, clip)
    assert got.keys() == expected.keys()
    for n in expected:
        scale = expected[n].abs().max().clamp_min(1e-30)
        assert ((got[n] - expected[n]).abs().max() / scale).item() < 1e-5, n


@pytest.mark.parametrize("size, hw, strategy", CASES)
def test_each_sample_is_clipped_and_samples_do_not_mix(size, hw, strategy):
    m = _model(size, hw, strategy, dtype=torch.float32)
    n = 3 if size == "5m" else 6
    batch = make_batch(*hw, n, seed=1)
    clip = 1e-3
    parts = [clipped_grad_sum(m, {k: v[i:i + 1] for k, v in batch.items()}, clip) for i in range(n)]
    for p in parts:
        assert _norm(p).item() <= clip * (1 + 1e-4)
    whole = clipped_grad_sum(m, batch, clip)
    for name in whole:
        assert torch.allclose(whole[name], sum(p[name] for p in parts), rtol=1e-4, atol=1e-9)


@pytest.mark.parametrize("size, hw, strategy", CASES)
def test_deterministic(size, hw, strategy):
    m = _model(size, hw, strategy, dtype=torch.float32)
    batch = make_batch(*hw, 3)
    a, b = clipped_grad_sum(m, batch, 0.01), clipped_grad_sum(m, batch, 0.01)
    assert all(torch.equal(a[n], b[n]) for n in a)


def test_leaves_no_hooks():
    m = _model("smoke", (64, 48), "full", dtype=torch.float32)
    clipped_grad_sum(m, make_batch(64, 48, 5), 0.01)
    assert not hasattr(m, "autograd_grad_sample_hooks")
    assert all(getattr(p, "grad_sample", None) is None and p.grad is None for p in m.parameters())


def test_bad_inputs():
    m = _model("smoke", (64, 48), "full", dtype=torch.float32)
    with pytest.raises(ValueError, match="clip_norm must be > 0"):
        clipped_grad_sum(m, make_batch(64, 48, 2), 0.0)
    bn = nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4))
    with pytest.raises(NotImplementedError, match="BatchNorm"):
        clipped_grad_sum(bn, {"image": torch.zeros(2, 3, 8, 8)}, 1.0)


def test_nonprivate_optimizer_sees_only_trainable_parameters():
    m = set_strategy(PoseModel("smoke", (64, 48), 2.0), "finetune")
    opt = make_optimizer(make_config("smoke"), m)
    assert isinstance(opt, torch.optim.AdamW)
    assert sum(p.numel() for g in opt.param_groups for p in g["params"]) == sum(p.numel() for _, p in trainable(m))
