"""The privacy plan: every privacy number of a run, built once, frozen, read by everything else.

    python -c "from dphpe_core import make_config; from dphpe_core.privacy import privacy_plan; \
print(privacy_plan(make_config('embedded', method='dpsgd'), n_private=22000, steps_per_epoch=86))"

`privacy_plan` turns a config and the private set's size into a `PrivacyPlan`: the noise multiplier
that meets the config's epsilon under the method's own neighbouring relation, the clip norm, the
Poisson sample rate, the number of steps, delta, the accountant, whether sampling amplifies, and
the epsilon it spends. The optimizer (its `max_grad_norm` and `noise_multiplier`), the Poisson
sampler (its rate and step count), the run's record and its guarantee text, and the audit all read
the plan and nothing else (tests/test_privacy.py checks each against it for every method, accountant
and public source). An accountant the plan cannot honour (PRV for a replace-one relation) is
refused by the config's validation, and every argument is keyword-only: a plan cannot be built with two floats in (0, 1) swapped.

`accounting="paper"` builds the plan the paper's released code would use: the noise calibrated
under add/remove neighbours with amplification and Opacus' RDP, whatever the method's true relation
is. Only the audit asks for it, to test the paper's claim with the paper's noise; its epsilon_spent
stays what the method's own accountant gives for that noise, so the plan never misstates it.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

from .accounting import (calibrate_noise, default_delta, epsilon_spent, participations,
                         record_epsilon)
from .config import Config
from .methods import METHODS, Parts

ACCOUNTING = ("honest", "paper")


@dataclass(frozen=True, kw_only=True)
class PrivacyPlan:
    """A run's privacy, as the optimizer, the sampler, the record and the audit use it."""
    n_private: int
    sample_rate: float
    steps: int
    delta: float
    accountant: str                 # rdp | prv | pld | gaussian-without-amplification
    neighbouring: str               # add-remove | replace-one
    amplification: bool
    sensitivity: str                # "C" or "2C"
    clip_norm: float
    epsilon_target: float
    noise_multiplier: float
    epsilon_spent: float            # what `accountant` gives for this noise (<= the target when honest)
    epsilon_paper_accounting: float  # what the paper's accounting (add/remove, RDP) gives for it
    fdp_public: str | None = None   # methods with a public gradient: where its batch comes from
    participations: int | None = None   # without amplification: a crop's participations bounded at this
    accounting: str = "honest"      # "paper": the paper's noise (the audit's test of the paper's claim)

    @property
    def claimed_epsilon(self) -> float:
        """The epsilon the run claims: its own (honest), or the config's target (the paper's claim)."""
        return self.epsilon_target if self.accounting == "paper" else self.epsilon_spent

    def record(self) -> dict:
        """The record's `privacy` numbers (results.RunResult.privacy), in their stored order."""
        out = {k: getattr(self, k) for k in ("n_private", "sample_rate", "steps", "delta", "accountant",
                                             "neighbouring", "amplification", "sensitivity", "clip_norm",
                                             "epsilon_target")}
        if self.fdp_public is not None:
            out["fdp_public"] = self.fdp_public
        out.update(noise_multiplier=self.noise_multiplier, epsilon_spent=self.epsilon_spent,
                   epsilon_paper_accounting=self.epsilon_paper_accounting)
        if self.participations is not None:
            out["participations"] = self.participations
        return out

    def weakened(self, factor: float) -> PrivacyPlan:
        """The same plan with its noise divided by `factor` (the audit's sabotage): its epsilon_spent is
        recomputed, its claim is not."""
        return self._with_noise(self.noise_multiplier / factor)

    def _with_noise(self, sigma: float, **changes) -> PrivacyPlan:
        plan = dataclasses.replace(self, noise_multiplier=sigma, **changes)
        return dataclasses.replace(plan, epsilon_spent=record_epsilon(plan.record()),
                                   epsilon_paper_accounting=epsilon_spent(
                                       noise_multiplier=sigma, delta=plan.delta, sample_rate=plan.sample_rate,
                                       steps=plan.steps, accountant="rdp"))


def privacy_plan(cfg: Config, *, n_private: int, steps_per_epoch: int, accounting: str = "honest") -> PrivacyPlan:
    """The plan of a private run of `cfg` on `n_private` crops, `steps_per_epoch` Poisson steps an
    epoch: under the method's own relation (replace-one, PLD, for a public gradient drawn from the
    private crops; without amplification when it is drawn from the very batch), or the paper's."""
    parts = METHODS[cfg.method]
    if not parts.private:
        raise ValueError(f"method={cfg.method!r} is not private: it has no privacy plan")
    if accounting not in ACCOUNTING:
        raise ValueError(f"accounting={accounting!r}: expected one of {list(ACCOUNTING)}")
    sample_rate = cfg.expected_batch_size / n_private
    steps = cfg.epochs * steps_per_epoch
    delta = cfg.delta or default_delta(n_private)
    feature = parts.public_gradient and cfg.fdp_public != "public-set"
    neighbouring = "replace-one" if feature else "add-remove"
    amplification = not (feature and cfg.fdp_public == "same-batch")
    accountant = cfg.accountant if not feature else ("pld" if amplification else "gaussian-without-amplification")
    sigma = calibrate_noise(target_epsilon=cfg.epsilon, delta=delta, sample_rate=sample_rate, steps=steps,
                            accountant="pld" if feature else accountant, neighbouring=neighbouring,
                            n_private=n_private, amplification=amplification)
    plan = PrivacyPlan(n_private=n_private, sample_rate=sample_rate, steps=steps, delta=delta, accountant=accountant,
                       neighbouring=neighbouring, amplification=amplification, sensitivity="2C" if feature else "C",
                       clip_norm=cfg.clip_norm, epsilon_target=cfg.epsilon, noise_multiplier=sigma,
                       epsilon_spent=0.0, epsilon_paper_accounting=0.0,
                       fdp_public=cfg.fdp_public if parts.public_gradient else None,
                       participations=None if amplification else participations(sample_rate, steps, delta / 2))
    if accounting == "paper":       # the paper's claim: add/remove, amplified, RDP, whatever the variant
        sigma = calibrate_noise(target_epsilon=cfg.epsilon, delta=delta, sample_rate=sample_rate, steps=steps,
                                accountant="rdp")
    return plan._with_noise(sigma, accounting=accounting)


def relations_table(runs):
    """What DP-SGD's noise would spend under feature DP's relations: per epsilon of `runs` (summary
    rows of DP-SGD runs), the noise multiplier, the epsilon it claims (add/remove, subsampled: the
    paper's accounting), the same relation under the exact PLD accountant (`add_remove_pld`), and
    the epsilon of the same noise under replace-one neighbours with an independent public batch (PLD)
    and with the public gradient on the very batch (no amplification)."""
    import pandas as pd

    from .accounting import epsilon_without_amplification
    rows = []
    for r in runs.drop_duplicates("epsilon").itertuples():
        run = dict(noise_multiplier=r.noise_multiplier, delta=r.delta, sample_rate=r.sample_rate, steps=int(r.steps))
        rows.append(dict(target=r.epsilon, sigma=r.noise_multiplier, paper_claims=r.epsilon_spent,
                         add_remove_pld=epsilon_spent(**run, accountant="pld"),
                         replace_one=epsilon_spent(**run, accountant="pld", neighbouring="replace-one"),
                         same_batch=epsilon_without_amplification(**run, neighbouring="replace-one")))
    return pd.DataFrame(rows, columns=["target", "sigma", "paper_claims", "add_remove_pld", "replace_one", "same_batch"]
                        ).sort_values("target").reset_index(drop=True)


# -- the guarantee in words ---------------------------------------------------------------------

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
