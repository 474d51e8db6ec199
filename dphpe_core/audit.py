"""The one-run privacy audit: canaries through the very optimizer the trainers use, and an epsilon
lower bound from how well a white-box attacker guesses them.

    dphpe audit --preset smoke --method dpsgd --sabotage noise-div-10

The method (Steinke, Nasr and Jagielski 2023) and its statistics: audit_stats.py; the audits the book
shows: audits.py.

The canaries live in gradient space. The model gets a canary layer (`m` weights) that no crop ever
touches; canary i is a row whose per-sample gradient is 10 C along weight i. Each step, every
present canary joins the batch with the private rows' probability q (its own Poisson draw), and its
row is appended to the per-sample gradients before Opacus' clipping, so the canaries go through
the project's clipping, noise and scaling exactly as crops do. They enter as a stage of the
trainers' own optimizer (`Canaries.stage`; mechanisms.PrivateOptimizer's `stages`), which is built
from the run's privacy plan (privacy.py): the audit never sets the noise, so it measures the noise
the trainers add (tests/test_privacy.py weakens the trainers' optimizer and sees the bound rise).
The paper's accounting is the plan built with accounting="paper" (the paper's noise for the claim),
and the sabotage tests train with the plan's noise divided by 10 or with clipping off. The attacker reads the released noisy
gradient at every step (after noise and scaling, before projection, the public term and Adam):
projection is post-processing of that gradient and keeps its guarantee, and auditing after it
would erase the canary layer (no public gradient spans it) and report a vacuous bound.

- DP-SGD, PDP-SGD and feature DP with a public-split batch: add/remove canaries (S_i: present or not).
- Feature DP and the hybrid with a batch from the private set: canary pairs under replace-one; both
  members share their public part (a noise-free row in a second canary layer, standing for the
  blurred view's gradient and the labels) and differ in the private part (+10 C or -10 C along
  weight i: after clipping, a difference of 2 C). The public part enters the noise-free public
  gradient whenever the canary is in the public batch: with `same-batch` that is exactly when it was
  sampled, so the attacker learns the steps where it took part; with `independent` it is an
  independent draw and tells nothing.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np
import torch
from torch import nn

from .audit_stats import best_bound, power_ceiling, powered_settings
from .config import Config
from .methods import METHODS, PRIVATE_METHODS, label

SABOTAGE = ("none", "noise-div-10", "no-clip")
ACCOUNTING = ("honest", "paper")
CANARY_SCALE = 10.0          # a canary's gradient norm in units of C (well above the clipping norm)


@dataclass(frozen=True, kw_only=True)
class AuditResult:
    method: str
    fdp_public: str
    accounting: str
    sabotage: str
    neighbouring: str
    epsilon_claimed: float
    epsilon_lower_bound: float
    delta: float
    canaries: int
    guesses: int
    correct: int
    rule: str
    noise_multiplier: float
    sample_rate: float
    steps: int
    wall_s: float
    config_hash: str
    what: str                       # what was audited, in words
    ceiling: float = float("nan")   # the largest bound these canaries and delta could show (power_ceiling)
    public_weight: float = float("nan")   # lambda of the public term (feature DP, the hybrid)
    scores_in: list = field(default_factory=list)    # the best rule's scores, S_i = 1 / S_i = 0
    scores_out: list = field(default_factory=list)
    provenance: dict = field(default_factory=dict)

    def report(self) -> str:
        """The audit as `dphpe audit` prints it: a table row, what was audited, and whether it had power."""
        name = label(self.method, self.fdp_public)
        lines = [f"{'method':<22}{'accounting':<12}{'sabotage':<14}{'claimed eps':>12}{'lower bound':>13}"
                 f"{'right/guesses':>15}{'canaries':>10}",
                 f"{name:<22}{self.accounting:<12}{self.sabotage:<14}{self.epsilon_claimed:>12.3f}"
                 f"{self.epsilon_lower_bound:>13.3f}{f'{self.correct}/{self.guesses}':>15}{self.canaries:>10}",
                 f"audited: {self.what}; best rule: {self.rule}"]
        if self.ceiling < self.epsilon_claimed:
            lines.append(f"NO POWER: these canaries and delta can show at most {self.ceiling:.3g}, below the claim")
        return "\n".join(lines)

    def summary(self) -> str:
        return (f"{label(self.method, self.fdp_public)} "
                f"[{self.accounting}, sabotage {self.sabotage}]: claimed epsilon {self.epsilon_claimed:.3g}, "
                f"lower bound {self.epsilon_lower_bound:.3g} ({self.correct}/{self.guesses} right, "
                f"{self.canaries} canaries) in {self.wall_s:.0f} s")


class Canaries:
    """Canary rows for one audited run: their bits, their Poisson draws and what the attacker reads."""

    def __init__(self, m: int, *, pairs: bool, public_channel: bool, public_rate: float, seed: int):
        self.m, self.pairs, self.public_channel, self.public_rate = m, pairs, public_channel, public_rate
        self.gen = torch.Generator().manual_seed(seed)
        self.bits = torch.randint(0, 2, (m,), generator=self.gen)
        self.private_layer = nn.Linear(m, 1, bias=False)       # weight i: canary i's private part
        self.public_layer = nn.Linear(m, 1, bias=False) if public_channel else None
        for layer in filter(None, (self.private_layer, self.public_layer)):
            nn.init.zeros_(layer.weight)
        self.released_steps: list[torch.Tensor] = []  # per step: the noisy gradient of the canary weights
        self.public_seen: list[torch.Tensor] = []    # per step: the update's gradient on the public layer
        self.public_norm = self.public_level = 0.0

    def attach(self, model: nn.Module) -> None:
        model.audit_private = self.private_layer
        if self.public_layer is not None:
            model.audit_public = self.public_layer

    def stage(self, *, clip_norm: float, sample_rate: float, sabotage: str = "none") -> "Canaries":
        """Make these canaries a stage of the trainers' own optimizer (mechanisms.PrivateOptimizer's
        `stages`): before clipping they append their rows, after the noise they read the release. The
        noise is the trainers' (the plan's); `sabotage='no-clip'` turns the optimizer's clipping off
        (the audit's own test that it catches a broken mechanism)."""
        self.clip_norm, self.sample_rate, self.sabotage, self._ready = clip_norm, sample_rate, sabotage, False
        return self

    def _setup(self, opt) -> None:
        pub = None if self.public_layer is None else self.public_layer.weight
        self.public_norm = CANARY_SCALE * self.clip_norm / opt.expected_batch_size
        self.public_level = self.public_norm * opt.public_weight        # what it adds to the update
        if pub is not None:
            opt.original_optimizer.register_step_pre_hook(
                lambda *_: self.public_seen.append(pub.grad.detach().flatten().to("cpu", copy=True)))
        if self.sabotage == "no-clip":
            opt.clipping = False
        self._ready = True

    def before_clip(self, opt) -> None:
        """Append this step's sampled canary rows to the per-sample gradients (and, with a public
        channel, each sampled canary's public gradient to the public term)."""
        if not self._ready:
            self._setup(opt)
        params = opt.params
        priv = self.private_layer.weight
        pub = None if self.public_layer is None else self.public_layer.weight
        present = torch.ones(self.m, dtype=torch.bool) if self.pairs else self.bits.bool()
        sign = (2.0 * self.bits - 1.0) if self.pairs else torch.ones(self.m)
        sampled = present & (torch.rand(self.m, generator=self.gen) < self.sample_rate)
        idx = sampled.nonzero().flatten()
        rows = torch.zeros(len(idx), self.m)
        rows[torch.arange(len(idx)), idx] = CANARY_SCALE * self.clip_norm * sign[idx]
        rows = rows.to(priv.device)
        n_real = _rows(params, (priv, pub))
        for p in params:
            if p is priv:
                p.grad_sample = torch.cat([p.new_zeros(n_real, *p.shape), rows.view(-1, *p.shape)])
            elif p is pub:
                p.grad_sample = p.new_zeros(n_real + len(idx), *p.shape)
            else:
                p.grad_sample = torch.cat([p.grad_sample, p.grad_sample.new_zeros(len(idx), *p.shape)])
        if pub is not None:
            in_public = sampled if self.public_channel == "same-batch" else (
                torch.rand(self.m, generator=self.gen) < self.public_rate)
            grads = opt.public_grads if opt.public_grads is not None else [torch.zeros_like(q) for q in params]
            grads = [g.clone() for g in grads]
            # a canary's public gradient has the norm of its raw gradient (10 C), averaged over a batch
            grads[_index(params, pub)] = (in_public.float() * self.public_norm).view(pub.shape).to(pub.device)
            opt.public_grads = grads

    def released(self, opt, grads) -> None:
        """The noisy gradient of the canary weights as released this step."""
        self.released_steps.append(grads[_index(opt.params, self.private_layer.weight)].detach().flatten()
                                   .to("cpu", copy=True))

    def scores(self) -> dict[str, np.ndarray]:
        """Attack rules: the sum of every step's release; with a public channel, also the sum over
        the steps where the canary's public part shows in the update (the public term is noise-free,
        but it lands on parameters that carry the private noise too: the attacker thresholds it at
        a few multiples of its known size, each threshold a rule of its own)."""
        released = torch.stack(self.released_steps)              # (T, m)
        out = {"sum over all steps": released.sum(0).numpy()}
        if self.public_layer is not None and self.public_seen:
            public = torch.stack(self.public_seen)                # (T, m): white-box, it knows the level
            for share in (0.5, 1.0, 1.5):
                seen = public > share * self.public_level
                out[f"sum over the steps its public part showed (> {share:g} x its size)"] = \
                    (released * seen).sum(0).numpy()
        return out


def _index(params, param) -> int:
    """Position of `param` in `params` by identity (== on tensors compares values)."""
    return next(i for i, p in enumerate(params) if p is param)


def _rows(params, canary_params) -> int:
    """The number of real per-sample rows this step (0 for an empty Poisson batch)."""
    for p in params:
        if all(p is not c for c in canary_params) and p.grad_sample is not None:
            return p.grad_sample.shape[0]
    return 0


def run_audit(cfg: Config, *, canaries: int = 1000, seed: int = 0, accounting: str = "honest",
              sabotage: str = "none", alpha: float = 0.05, progress: bool = True,
              allow_no_power: bool = False) -> AuditResult:
    """Train `cfg` once with `canaries` canaries through its mechanism; the bound and what it rests on.

    Before training, the largest bound these canaries and delta could show (power_ceiling) is set
    against the claimed epsilon: below it the audit has no power and is refused, naming settings that
    would have it, unless `allow_no_power` (then the result says so: `ceiling` < `epsilon_claimed`)."""
    from .data import build_data
    from .loop import fit, resolve_device, steps_per_epoch
    from .privacy import privacy_plan
    from .provenance import provenance
    from .start import build_model
    if not METHODS[cfg.method].private:
        raise ValueError(f"method={cfg.method!r} claims no epsilon: audit one of {', '.join(PRIVATE_METHODS)}")
    if accounting not in ACCOUNTING:
        raise ValueError(f"accounting={accounting!r}: expected one of {list(ACCOUNTING)}")
    if sabotage not in SABOTAGE:
        raise ValueError(f"sabotage={sabotage!r}: expected one of {list(SABOTAGE)}")
    if canaries < 2:
        raise ValueError(f"canaries={canaries}: expected at least 2")
    t0 = time.perf_counter()
    cfg = cfg.replace(max_physical_batch_size=0)
    device = resolve_device(cfg)
    data = build_data(cfg)
    model = build_model(cfg)
    parts = METHODS[cfg.method]
    feature = parts.public_gradient and cfg.fdp_public != "public-set"
    channel = cfg.fdp_public if feature else None
    n = len(data.private_train)
    can = Canaries(canaries, pairs=feature, public_channel=channel, public_rate=cfg.expected_batch_size / n,
                   seed=seed + 7)
    can.attach(model)
    model.to(device)
    plan = privacy_plan(cfg, n_private=n, steps_per_epoch=steps_per_epoch(cfg, n),
                        accounting="paper" if accounting == "paper" else "honest")
    claim = plan.claimed_epsilon
    rules = 4 if can.public_layer is not None else 1         # Canaries.scores' attack rules
    ceiling = power_ceiling(canaries, delta=plan.delta, rules=rules, alpha=alpha)
    if ceiling < claim and not allow_no_power:
        better = powered_settings(claim, canaries=canaries, delta=plan.delta, rules=rules, alpha=alpha)
        raise ValueError(f"this audit has no power: {canaries} canaries at delta {plan.delta:g} can show a bound "
                         f"of at most {ceiling:.3g}, below the claimed epsilon {claim:.3g}, so it could not catch "
                         f"a broken mechanism. Use {better} (or allow_no_power / --allow-no-power to run it "
                         f"labelled 'no power')")
    trained = plan.weakened(10) if sabotage == "noise-div-10" else plan   # the sabotage test: less noise
    _, mech = fit(model, cfg, data.private_train, val_set=None, device=device, public_set=data.public,
                  desc=f"audit {cfg.method}", progress=progress, plan=trained,
                  stages=[can.stage(clip_norm=cfg.clip_norm, sample_rate=plan.sample_rate, sabotage=sabotage)])
    p = mech.privacy
    scores = can.scores()
    best = best_bound(scores, can.bits.numpy(), delta=p["delta"], alpha=alpha)
    chosen = scores[best["rule"]]
    bits = can.bits.numpy().astype(bool)
    what = ("the noisy gradient as released at each step, before " +
            ("the projection (post-processing) and " if parts.project else "") +
            ("the public term and " if parts.public_gradient else "") + "Adam")
    return AuditResult(method=cfg.method, fdp_public=cfg.fdp_public, accounting=accounting, sabotage=sabotage,
                       neighbouring=plan.neighbouring, epsilon_claimed=claim,
                       epsilon_lower_bound=best["epsilon_lower_bound"], delta=p["delta"], canaries=canaries,
                       guesses=best["guesses"], correct=best["correct"], rule=best["rule"],
                       noise_multiplier=mech.optimizer.noise_multiplier,
                       sample_rate=p["sample_rate"], steps=p["steps"], wall_s=time.perf_counter() - t0,
                       config_hash=cfg.hash(), what=what, ceiling=ceiling,
                       public_weight=p.get("public_weight", float("nan")),
                       scores_in=[float(x) for x in chosen[bits]], scores_out=[float(x) for x in chosen[~bits]],
                       provenance=provenance(device, method=cfg.method))


