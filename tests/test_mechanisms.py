import dataclasses
import pytest
import torch
from torch import nn

from conftest import make_batch
from dphpe_core import make_config
from dphpe_core.privacy import privacy_plan
from dphpe_core.mechanisms import dp_optimizer, make_optimizer, noise_only_step, physical_batches
from dphpe_core.publicpasses import public_gradient
from dphpe_core.persample import clipped_grad_sum, per_sample_loss, trainable, wrap_for_per_sample_grads
from dphpe_core.transforms import blur
from dphpe_core.model import PoseModel
from dphpe_core.strategies import set_strategy

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
    mech = make_optimizer(make_config("smoke"), m, private_set=range(96), public_set=None, steps_per_epoch=6)
    assert isinstance(mech.optimizer, torch.optim.AdamW) and mech.model is m and not mech.poisson
    n = sum(p.numel() for g in mech.optimizer.param_groups for p in g["params"])
    assert n == sum(p.numel() for _, p in trainable(m))


def test_nonprivate_equals_dpsgd_without_noise_or_clipping():
    cfg = make_config("smoke")
    a, b = _model("smoke", (64, 48), "full"), _model("smoke", (64, 48), "full")
    batch = make_batch(64, 48, 4, dtype=torch.float64)
    plain = torch.optim.AdamW(a.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    per_sample_loss(a, batch).mean().backward()
    plain.step()
    gsm = wrap_for_per_sample_grads(b)
    plan = privacy_plan(cfg.replace(method="dpsgd", clip_norm=1e12), n_private=96, steps_per_epoch=6)
    private = dp_optimizer([p for _, p in trainable(b)], cfg.replace(expected_batch_size=4),
                           plan=dataclasses.replace(plan, noise_multiplier=0.0))
    per_sample_loss(gsm, batch).sum().backward()
    private.step()
    for (n, p), q in zip(a.named_parameters(), b.parameters()):
        assert torch.allclose(p, q, rtol=1e-9, atol=1e-12), n


def test_sgd_takes_two_hand_computed_momentum_steps_behind_the_private_optimizer():
    """cfg.optimizer='sgd': v <- mu v + g, p <- p - lr v on the released gradient (no noise, no clipping,
    no decay), for the private optimizer as for the plain one."""
    cfg = make_config("smoke", optimizer="sgd", lr=0.5, momentum=0.9, weight_decay=0.0, expected_batch_size=4)
    m = _model("smoke", (64, 48), "finetune")
    gsm = wrap_for_per_sample_grads(m)
    plan = privacy_plan(cfg.replace(method="dpsgd", clip_norm=1e12), n_private=96, steps_per_epoch=6)
    params = [p for _, p in trainable(m)]
    opt = dp_optimizer(params, cfg, plan=dataclasses.replace(plan, noise_multiplier=0.0))
    assert type(opt.original_optimizer) is torch.optim.SGD
    start = [p.detach().clone() for p in params]
    grads = []
    for seed in (1, 2):
        batch = make_batch(64, 48, 4, dtype=torch.float64, seed=seed)
        per_sample_loss(gsm, batch).sum().backward()
        grads.append([p.grad_sample.sum(0) / 4 for p in params])
        opt.step()
        opt.zero_grad()
    for p, p0, g1, g2 in zip(params, start, *grads):
        v2 = 0.9 * g1 + g2
        assert torch.allclose(p, p0 - 0.5 * g1 - 0.5 * v2, rtol=1e-9, atol=1e-12)
    gsm.remove_hooks()
    plain = make_optimizer(cfg, _model("smoke", (64, 48), "finetune"), private_set=range(96), public_set=None,
                           steps_per_epoch=6)
    assert type(plain.optimizer) is torch.optim.SGD and plain.optimizer.defaults["momentum"] == 0.9


def test_dpsgd_mechanism_calibrates_and_survives_an_empty_batch():
    cfg = make_config("smoke", method="dpsgd", epsilon=1.0, clip_norm=0.1)
    m = _model("smoke", (64, 48), "full", dtype=torch.float32)
    before = [p.detach().clone() for p in m.parameters()]
    mech = make_optimizer(cfg, m, private_set=range(96), public_set=None, steps_per_epoch=6)
    assert mech.poisson and mech.sum_loss and mech.privacy["epsilon_spent"] <= 1.0
    assert mech.privacy["noise_multiplier"] > 0 and mech.privacy["sample_rate"] == 16 / 96
    noise_only_step(mech)                     # the released update is noise alone
    assert any(not torch.equal(p, q) for p, q in zip(m.parameters(), before))
    mech.model.remove_hooks()


def test_public_gradient_leaves_the_private_buffers_alone_and_is_the_plain_mean_gradient():
    m = _model("smoke", (64, 48), "finetune")
    gsm = wrap_for_per_sample_grads(m)
    params = [p for _, p in trainable(m)]
    private, public = make_batch(64, 48, 3, dtype=torch.float64, seed=1), make_batch(64, 48, 5, dtype=torch.float64)
    per_sample_loss(gsm, private).sum().backward()
    buffers = [(p.grad.clone(), p.grad_sample.clone()) for p in params]
    got = public_gradient(gsm, public, params, kernel=5, sigma=2.0)
    for p, (g, gs) in zip(params, buffers):
        assert torch.equal(p.grad, g) and torch.equal(p.grad_sample, gs)   # same values, same batch size
    gsm.remove_hooks()
    m.zero_grad(set_to_none=True)
    blurred = dict(public, image=blur(public["image"], kernel=5, sigma=2.0))
    per_sample_loss(m, blurred).mean().backward()
    for p, g in zip(params, got):
        assert torch.allclose(p.grad, g, rtol=1e-10, atol=1e-14)


@pytest.mark.parametrize("method", ["dpsgd", "hybrid"])
def test_physical_batches_give_the_same_step_as_one_logical_batch(method, smoke_bundle):
    cfg = make_config("smoke", method=method)
    batch = make_batch(64, 48, 7)
    after = []
    for physical in (0, 3):
        m = _model("smoke", (64, 48), "finetune", dtype=torch.float32)
        mech = make_optimizer(cfg.replace(max_physical_batch_size=physical), m, private_set=smoke_bundle.private_train,
                              public_set=smoke_bundle.public, steps_per_epoch=6)
        mech.optimizer.noise_multiplier = 0.0     # compare the clipped sums, not two noise draws
        mech.optimizer.zero_grad(set_to_none=True)
        torch.manual_seed(0)
        if mech.prepare is not None:
            mech.prepare(batch)
        chunks = 0
        for chunk, _last in physical_batches(mech, batch, physical):
            per_sample_loss(mech.model, chunk).sum().backward()
            mech.optimizer.step()
            chunks += 1
            if not _last:
                mech.optimizer.zero_grad(set_to_none=True)
        assert chunks == (1 if physical == 0 else 3)
        after.append([p.detach().clone() for p in m.parameters()])
        mech.model.remove_hooks()
    start = _model("smoke", (64, 48), "finetune", dtype=torch.float32).parameters()
    assert any(not torch.equal(p, q) for p, q in zip(after[0], start))
    for p, q in zip(*after):
        assert torch.allclose(p, q, rtol=1e-5, atol=1e-6)


@pytest.mark.parametrize("strategy", ["finetune", "full"])
def test_per_sample_gradients_are_opacus_own_to_the_bit(strategy):
    """PerSampleGradients (hooks on the layers' outputs, no zeroed copy) gives Opacus' own per-sample
    gradients bit for bit, through loss.backward() and through its own backward, which leaves p.grad
    uncomputed (the bias table of the attention is a root of its own: it must be reached too)."""
    from opacus import GradSampleModule

    from dphpe_core.persample import PerSampleGradients, backward
    torch.manual_seed(0)
    model = set_strategy(PoseModel("embedded", (64, 48), 2.0), strategy)
    batch = make_batch(64, 48, 6)
    grads = []
    for cls, own in ((GradSampleModule, False), (PerSampleGradients, False), (PerSampleGradients, True)):
        gsm = cls(model, batch_first=True, loss_reduction="sum", strict=True)
        loss = per_sample_loss(gsm, batch).sum()
        backward(gsm, loss) if own else loss.backward()
        named = [(n, p) for n, p in model.named_parameters() if p.requires_grad]
        assert all((p.grad is None) == own for _, p in named)
        grads.append({n: p.grad_sample.clone() for n, p in named})
        for p in model.parameters():
            p.grad, p.grad_sample = None, None
        gsm.remove_hooks()
    assert "backbone.stages.3.blocks.0.attn.bias.attention_biases" in grads[0]
    assert grads[0].keys() == grads[1].keys() == grads[2].keys() and len(grads[0]) > 10
    for name in grads[0]:
        assert torch.equal(grads[0][name], grads[1][name]) and torch.equal(grads[0][name], grads[2][name]), name


def test_own_backward_refuses_a_missing_pass_and_names_a_layer_the_loss_does_not_reach():
    from dphpe_core.persample import PerSampleGradients

    class TwoHeads(nn.Module):
        def __init__(self):
            super().__init__()
            self.used, self.unused = nn.Linear(3, 2), nn.Conv2d(3, 2, 1)

        def forward(self, x):
            self.unused(x[:, :, None, None])
            return self.used(x)

    gsm = PerSampleGradients(TwoHeads(), batch_first=True, loss_reduction="sum", strict=True)
    with pytest.raises(RuntimeError, match="call the model first"):
        gsm.backward(torch.zeros((), requires_grad=True))
    with pytest.raises(RuntimeError, match=r"1 hooked layer\(s\) \(Conv2d\) did not reach the loss"):
        gsm.backward(gsm(torch.randn(4, 3)).sum())
    assert gsm.used.weight.grad_sample.shape == (4, 2, 3)    # what did reach it is there
    gsm.remove_hooks()


def test_a_guarantee_names_a_blur_other_than_the_papers_and_what_it_makes_public():
    from dphpe_core.privacy import guarantee
    from dphpe_core.methods import METHODS
    privacy = dict(epsilon_spent=0.5, delta=1e-5, epsilon_paper_accounting=0.4, accountant="pld", participations=3)
    for method in ("fdp", "hybrid"):
        paper = guarantee(make_config("embedded", method=method), METHODS[method], privacy)
        light = guarantee(make_config("embedded", method=method, blur_sigma_256=2.5), METHODS[method], privacy)
        assert "Its psi(x)" not in paper
        assert "sigma 0.625 px (kernel 7), lighter than the paper's at this size (sigma 2.5 px" in light
        assert "more of each crop is public" in light and light.startswith(paper.split(" The projection")[0][:60])
    dp = guarantee(make_config("embedded", method="dpsgd", blur_sigma_256=2.5), METHODS["dpsgd"], privacy)
    assert "psi" not in dp                                   # DP-SGD reads no blur
