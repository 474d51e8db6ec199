"""The audits the book shows: which (AUDITS, from the method table), where each is stored, and their table.

    dphpe audit --preset smoke --all

Each audit is stored by its config and settings under results/<preset>/audits/ and reused; the audit
itself (canaries through the trainers' optimizer) is audit.py, its statistics audit_stats.py.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from pathlib import Path

from .audit import SABOTAGE, AuditResult, run_audit
from .audit_stats import power_ceiling
from .config import Config
from .methods import METHOD_NAMES, METHODS, REFERENCE


def save_audit(result: AuditResult, path) -> Path:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(asdict(result), indent=1, sort_keys=True) + "\n")
    return path


# (method, fdp_public, accounting, sabotage, config changes): every method and feature-DP variant
# honestly, the two sabotaged mechanisms, and the paper's accounting of the paper's feature DP (its
# script's lambda of 1: how visible the same-batch leak is depends on the public term's weight) with
# the same and an independent batch
PAPER_FDP = dict(public_weight_fdp=1.0)
# (the method table's audit_sources and paper_audit_sources; the sabotage on the reference method)
AUDITS = (tuple((m, src, "honest", "none", {}) for m, p in METHODS.items() for src in p.audit_sources) +
          tuple((REFERENCE, "independent", "honest", s, {}) for s in SABOTAGE[1:]) +
          tuple((m, src, "paper", "none", PAPER_FDP) for m, p in METHODS.items() for src in p.paper_audit_sources))


# per preset: the cell audited (finetuning, epsilon 0.8, C 0.1) and what the preset must change for
# an audit to mean anything (smoke: delta 0.01 would make 2 m delta exceed alpha; a batch of one
# gives the small sampling rate and the many steps of the real study)
AUDIT_CELL = dict(strategy="finetune", epsilon=0.8, clip_norm=0.1, seed=0)


AUDIT_OVERRIDES = {"smoke": dict(delta=1e-5, expected_batch_size=1), "embedded": {}, "paper": {}}


def audit_path(cfg: Config, *, canaries: int, seed: int, accounting: str, sabotage: str) -> Path:
    import hashlib
    from .fingerprint import data_fingerprint
    from .results import run_key
    key = json.dumps([run_key(cfg.hash(), data_fingerprint(cfg)), canaries, seed, accounting, sabotage], sort_keys=True)
    return Path(cfg.results_dir) / cfg.preset / "audits" / f"{hashlib.sha256(key.encode()).hexdigest()[:12]}.json"


def load_audit(path) -> AuditResult:
    return AuditResult(**json.loads(Path(path).read_text()))


def audit_book(preset: str, *, canaries: int = 1000, fresh: bool = False, progress: bool = True,
               ran: list | None = None, **overrides) -> list[AuditResult]:
    """The preset's audits (AUDITS), each stored by config and audit settings under
    results/<preset>/audits/ and reused; `fresh` runs them again. The ones run (not reused) are
    appended to `ran` where given."""
    from .config import make_config
    out = []
    for method, public, accounting, sabotage, changes in AUDITS:
        cfg = make_config(preset, **{**AUDIT_OVERRIDES.get(preset, {}), **AUDIT_CELL, **changes, **overrides,
                                     "method": method, "fdp_public": public})
        path = audit_path(cfg, canaries=canaries, seed=0, accounting=accounting, sabotage=sabotage)
        if path.is_file() and not fresh:
            out.append(load_audit(path))
            continue
        r = run_audit(cfg, canaries=canaries, accounting=accounting, sabotage=sabotage, progress=False)
        save_audit(r, path)
        if progress:
            print(f"audit: {r.summary()}", flush=True)
        if ran is not None:
            ran.append(r)
        out.append(r)
    return out


def ceiling(a: AuditResult) -> float:
    """The audit's power ceiling: stored, or (an audit from before it was stored) recomputed from its
    canaries, delta and attack rules."""
    if a.ceiling == a.ceiling:
        return a.ceiling
    pairs = METHODS[a.method].public_gradient and a.fdp_public != "public-set"
    return power_ceiling(a.canaries, delta=a.delta, rules=4 if pairs else 1)


def audit_table(audits: list[AuditResult]):
    """One row per audit for the book."""
    import pandas as pd
    rows = [{"method": METHOD_NAMES[a.method] + (f" ({a.fdp_public})" if METHODS[a.method].public_gradient else ""),
             "accounting": "the paper's" if a.accounting == "paper" else "its own",
             "sabotage": "" if a.sabotage == "none" else a.sabotage, "neighbours": a.neighbouring,
             "lambda": "" if a.public_weight != a.public_weight else f"{a.public_weight:g}",
             "claimed epsilon": round(a.epsilon_claimed, 3), "lower bound": round(a.epsilon_lower_bound, 3),
             "bound > claim": "YES" if a.epsilon_lower_bound > a.epsilon_claimed else "",
             "power": "no power" if ceiling(a) < a.epsilon_claimed else f"up to {ceiling(a):.2f}",
             "right / guesses": f"{a.correct} / {a.guesses}", "canaries": a.canaries,
             "wall (s)": round(a.wall_s)} for a in audits]
    return pd.DataFrame(rows).set_index(["method", "accounting", "sabotage"])


def audit_numbers(audits: list[AuditResult]) -> dict:
    """The audit chapter's numbers and verdicts (glued into its prose), from the book's audits (AUDITS)."""
    by = {(a.method, a.fdp_public, a.accounting, a.sabotage): a for a in audits}
    honest = [a for a in audits if a.accounting == "honest" and a.sabotage == "none"]
    sabotage = {s: by[(REFERENCE, "independent", "honest", s)] for s in SABOTAGE[1:]}
    paper = {src: by[(m, src, "paper", "none")] for m, p in METHODS.items() for src in p.paper_audit_sources}
    same, indep = paper["same-batch"], paper["independent"]
    bad = [a for a in honest if a.epsilon_lower_bound > a.epsilon_claimed]
    caught = all(a.epsilon_lower_bound > a.epsilon_claimed for a in sabotage.values())
    return {"aud_canaries": audits[0].canaries, "aud_max_honest": max(a.epsilon_lower_bound for a in honest),
            "aud_claim": max(a.epsilon_claimed for a in honest),
            "aud_noise": sabotage["noise-div-10"].epsilon_lower_bound, "aud_noclip": sabotage["no-clip"].epsilon_lower_bound,
            "aud_same": same.epsilon_lower_bound, "aud_indep": indep.epsilon_lower_bound,
            "aud_paper_claim": same.epsilon_claimed, "aud_paper_lambda": same.public_weight,
            "aud_honest_verdict": "no correctly accounted mechanism audits above its claim" if not bad else
            "PRIVACY BUG: " + ", ".join(f"{a.method}/{a.fdp_public}" for a in bad) + " audit above their claims",
            "aud_sabotage_verdict": "are caught" if caught else "are NOT all caught: the audit lacks power here",
            "aud_same_verdict": "above" if same.epsilon_lower_bound > same.epsilon_claimed else "not above",
            "aud_indep_verdict": "above" if indep.epsilon_lower_bound > indep.epsilon_claimed else "not above"}


def score_panels(audits: list[AuditResult]):
    """The attack's scores for canaries in (heads) and out (tails): a correct DP-SGD, DP-SGD with a tenth of
    the noise, and the paper's feature DP on the same batch under the paper's accounting."""
    import matplotlib.pyplot as plt
    import pandas as pd
    import seaborn as sns
    by = {(a.method, a.fdp_public, a.accounting, a.sabotage): a for a in audits}
    paper = next((m, s) for m, p in METHODS.items() for s in p.paper_audit_sources)
    rows = [(f"{METHOD_NAMES[REFERENCE]}, correct", by[(REFERENCE, "independent", "honest", "none")]),
            (f"{METHOD_NAMES[REFERENCE]}, a tenth of the noise", by[(REFERENCE, "independent", "honest", "noise-div-10")]),
            (f"{METHOD_NAMES[paper[0]]} {paper[1].replace('-', ' ')}, the paper's accounting",
             by[(*paper, "paper", "none")])]
    fig, axes = plt.subplots(1, 3, figsize=(12, 3.2))
    for ax, (title, a) in zip(axes, rows):
        data = pd.DataFrame({"score": a.scores_in + a.scores_out,
                             "coin": ["heads"] * len(a.scores_in) + ["tails"] * len(a.scores_out)})
        sns.histplot(data, x="score", hue="coin", bins=40, element="step", stat="density", common_norm=False, ax=ax)
        ax.set(title=f"{title}\nbound {a.epsilon_lower_bound:.2f} (claim {a.epsilon_claimed:.2f})", xlabel="attack score")
    fig.tight_layout()
    return fig
