"""The privacy plan is the only source: the optimizer, the Poisson sampler, the record and the audit
read it, for every method x accountant x public source; and the audit measures the trainers' noise."""

import dataclasses

import pytest

from dphpe_core import accounting, loop, make_config, mechanisms
from dphpe_core.config import ACCOUNTANTS, FDP_PUBLIC
from dphpe_core.methods import METHODS, PRIVATE_METHODS
from dphpe_core.privacy import privacy_plan


def _combos():
    for method in PRIVATE_METHODS:
        for public in FDP_PUBLIC if METHODS[method].public_gradient else ("independent",):
            for acc in ACCOUNTANTS:
                replace_one = METHODS[method].public_gradient and public != "public-set"
                if not (replace_one and acc == "prv"):     # refused by the config (tests/test_config.py)
                    yield method, public, acc


class StepCounter:
    """A stage of the optimizer: counts the noisy releases and what the optimizer held at each."""

    def __init__(self):
        self.steps, self.seen = 0, set()

    def before_clip(self, opt):
        pass

    def released(self, opt, grads):
        self.steps += 1
        self.seen.add((opt.max_grad_norm, opt.noise_multiplier))


@pytest.mark.parametrize("method, public, acc", list(_combos()))
def test_optimizer_sampler_record_and_steps_all_read_the_plan(smoke_cfg, smoke_bundle, monkeypatch, method, public, acc):
    cfg = smoke_cfg.replace(method=method, fdp_public=public, accountant=acc, clip_norm=0.37, epsilon=1.3)
    n = len(smoke_bundle.private_train)
    plan = privacy_plan(cfg, n_private=n, steps_per_epoch=loop.steps_per_epoch(cfg, n))
    samplers = []
    real = loop._poisson_loader

    def recording(ds, sample_rate, steps, **kw):
        out = real(ds, sample_rate, steps, **kw)
        samplers.append(out.batch_sampler)
        return out
    monkeypatch.setattr(loop, "_poisson_loader", recording)
    counter = StepCounter()
    model = __import__("dphpe_core.start", fromlist=["build_model"]).build_model(cfg)
    _, mech = loop.fit(model, cfg, smoke_bundle.private_train, val_set=None, device="cpu", desc="plan",
                       progress=False, public_set=smoke_bundle.public, stages=[counter])
    assert mech.plan == plan                                   # the same plan, built the same way
    assert counter.seen == {(plan.clip_norm, plan.noise_multiplier)} and plan.clip_norm == cfg.clip_norm
    [sampler] = samplers
    assert sampler.sample_rate == plan.sample_rate and sampler.steps * cfg.epochs == plan.steps == counter.steps
    assert {k: mech.privacy[k] for k in plan.record()} == plan.record()
    assert mech.privacy["epsilon_spent"] == accounting.record_epsilon(plan.record()) <= cfg.epsilon
    relation = "replace-one" if METHODS[method].public_gradient and public != "public-set" else "add-remove"
    assert plan.neighbouring == relation and plan.accountant == (
        acc if relation == "add-remove" else "pld" if public == "independent" else "gaussian-without-amplification")
    assert f"({plan.epsilon_spent:.3g}, {plan.delta:.2g})" in mech.guarantee


def test_privacy_arguments_are_keyword_only():
    with pytest.raises(TypeError):
        accounting.epsilon_spent(1.0, 1e-5, 0.01, 100)
    with pytest.raises(TypeError):
        accounting.calibrate_noise(0.8, 1e-5, 0.01, 100)
    with pytest.raises(TypeError):
        privacy_plan(make_config("smoke", method="dpsgd"), 96, 6)


def test_the_plan_is_frozen_and_the_papers_plan_says_what_it_spends():
    cfg = make_config("smoke", method="fdp", fdp_public="same-batch", delta=1e-5)
    honest = privacy_plan(cfg, n_private=96, steps_per_epoch=6)
    with pytest.raises(dataclasses.FrozenInstanceError):
        honest.noise_multiplier = 0.1
    paper = privacy_plan(cfg, n_private=96, steps_per_epoch=6, accounting="paper")
    assert paper.noise_multiplier == accounting.calibrate_noise(target_epsilon=cfg.epsilon, delta=1e-5,
                                                                sample_rate=16 / 96, steps=6)
    assert paper.noise_multiplier < honest.noise_multiplier and paper.claimed_epsilon == cfg.epsilon
    assert paper.epsilon_spent == accounting.record_epsilon(paper.record()) > cfg.epsilon   # what it really spends
    weak = honest.weakened(10)
    assert weak.noise_multiplier == honest.noise_multiplier / 10 and weak.epsilon_spent > honest.epsilon_spent


def test_a_plan_for_another_run_is_refused(smoke_cfg, smoke_bundle):
    cfg = smoke_cfg.replace(method="dpsgd")
    other = privacy_plan(cfg, n_private=200, steps_per_epoch=6)
    model = __import__("dphpe_core.start", fromlist=["build_model"]).build_model(cfg)
    with pytest.raises(ValueError, match="the privacy plan is for 200 crops"):
        mechanisms.make_optimizer(cfg, model, private_set=smoke_bundle.private_train, public_set=None,
                                  steps_per_epoch=6, plan=other)


@pytest.mark.slow
def test_the_audit_catches_trainers_that_add_less_noise_than_their_plan(cache_dir, tmp_path, monkeypatch):
    """The audit once set the optimizer's noise itself, so trainers that added a tenth of the
    calibrated noise passed it. Weaken the trainers' optimizer (not the plan, not the audit): the
    bound must rise above the claim."""
    from dphpe_core.audit import run_audit
    cfg = make_config("smoke", method="dpsgd", cache_dir=cache_dir, results_dir=str(tmp_path), device="cpu",
                      delta=1e-5)
    real = mechanisms.dp_optimizer

    def weak(params, cfg, *, plan, **kwargs):
        opt = real(params, cfg, plan=plan, **kwargs)
        opt.noise_multiplier = plan.noise_multiplier / 10
        return opt
    monkeypatch.setattr(mechanisms, "dp_optimizer", weak)
    r = run_audit(cfg, progress=False)
    assert r.epsilon_lower_bound > r.epsilon_claimed, r.summary()
