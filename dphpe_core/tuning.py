"""Hyperparameters chosen on public data only: the public split stands in for the whole study.

    dphpe tune --preset embedded

Choosing a hyperparameter by its accuracy on private data spends privacy that no accountant
counts. So whatever the private methods tune (the learning rate, the schedule on which PDP-SGD
rebuilds its subspace and its rank k, the weight lambda of the blurred public gradient in feature DP
and the hybrid) is chosen here, on the public split alone. One seeded permutation cuts it into three disjoint stand-ins (TUNING_SPLIT):
a private training set, a public set and a val set. A start is pretrained on the stand-in public
set alone (so that stand-in val is unseen), then every candidate trains on the stand-in private set
with its method, at the grid's middle clipping norm, seed 0, and is scored by PCKh@0.5 on stand-in
val. The stand-in private set is smaller than the real one, so its epsilon is raised until N x epsilon,
which sets the signal-to-noise of DP training, equals the real study's at the grid's largest
epsilon. The stages run in order, each taking the choices before it: DP-SGD's learning rate (every
method then uses it), PDP-SGD's rebuild schedule (a share of the run's steps, so that the choice
carries from the stand-in's shorter run to the study's), then its k (the hybrid takes both), then
lambda for feature DP and for the hybrid. Each stage walks its ladder (STAGES) until no value on either side
of its choice scores higher or the axis ends, and says which (`tuning_notes`).

The table and the choice are written to results/<preset>/tuning.json with their provenance. The
preset's fields hold the chosen values as literals, and a test checks that they agree with the
committed file. No private or val crop is read (a test runs it on a data set that raises if one is).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import Config, make_config
from .data import PoseDataset, public_source
from .sources import split_source
from .loop import evaluate, fit, resolve_device
from .start import build_model, pretrain
from .grid import GRIDS

TUNING_SPLIT = {"private": 0.4, "public": 0.4, "val": 0.2}
TUNING_SEED = 2024
MPII_TRAIN_CROPS = 22246      # the paper's private set (PAPER.md): N is public under add/remove accounting
# The ladders the stages move along. subspace_interval is a share of the run's steps between two rebuilds
# of the subspace (0: at every step, the axis' end); k is a share of subspace_m (k <= m, the axis' end).
LRS = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2)
INTERVALS = (1.0, 0.5, 0.2, 0.1, 0.05, 0.0)
K_SHARES = (0.1, 0.25, 0.5, 1.0)
LAMBDAS = (0.01, 0.03, 0.1, 0.3, 1.0, 3.0, 10.0, 30.0)
# (method, field, first candidates, ladder), in the order they are chosen. A stage tries its first
# candidates; while the best is the first or last value tried and the ladder goes on beyond it, it tries
# the next ladder value that way (at most EXTEND more), so that the choice is one that no value beside it on
# either side beats, or the end of its axis; the stage's note says which.
STAGES = (("dpsgd", "lr", (1e-3, 3e-3, 1e-2), LRS),
          ("pdp", "subspace_interval", (0.5, 0.2, 0.1, 0.05, 0.0), INTERVALS),
          ("pdp", "subspace_k", (0.25, 0.5, 1.0), K_SHARES),
          ("fdp", "public_weight_fdp", (0.1, 0.3, 1.0, 3.0), LAMBDAS),
          ("hybrid", "public_weight_hybrid", (0.1, 0.3, 1.0, 3.0), LAMBDAS))
EXTEND = 3


def candidates(cfg: Config, field: str, values: tuple) -> tuple:
    """The config values of a stage's ladder values under `cfg` (k: shares of subspace_m, rounded, at least 1)."""
    if field == "subspace_k":
        return tuple(max(1, round(cfg.subspace_m * v)) for v in values)
    return tuple(values)


def next_candidate(scores: dict, ladder: tuple) -> tuple[float | None, str]:
    """The ladder value to try next (None: the stage is done) and why, given {ladder value: score}.

    >>> next_candidate({0.1: 40.0, 0.3: 45.0, 1.0: 44.0}, LAMBDAS)
    (None, 'no value on either side of the choice scores higher')
    >>> next_candidate({0.1: 46.0, 0.3: 45.0}, LAMBDAS)
    (0.03, 'best at the first value tried')
    >>> next_candidate({0.05: 20.0, 0.0: 22.0}, INTERVALS)
    (None, 'best at the end of its axis (0)')
    """
    tried = [v for v in ladder if v in scores]
    best = max(scores, key=scores.get)           # ties: the value tried first, as the choice takes it
    i = ladder.index(best)
    if best == tried[0] and i > 0:
        return ladder[i - 1], "best at the first value tried"
    if best == tried[-1] and i < len(ladder) - 1:
        return ladder[i + 1], "best at the last value tried"
    if best in (tried[0], tried[-1]):         # and the ladder ends there
        return None, f"best at the end of its axis ({best:g})"
    return None, "no value on either side of the choice scores higher"


def walk(first, ladder, score) -> tuple[float, str]:
    """A stage: `score` (ladder value -> stand-in val PCKh@0.5) at its first candidates, then along the
    ladder (next_candidate, at most EXTEND more): the best value and why the stage stopped there."""
    scores, todo, extra = {}, list(first), 0
    while todo:
        for value in todo:
            scores[value] = score(value)
        nxt, why = next_candidate(scores, ladder)
        todo = [nxt] if nxt is not None and extra < EXTEND else []
        extra += bool(todo)
        if nxt is not None and not todo:
            why = f"{why}; the stage's {EXTEND} extensions are spent"
    return max(scores, key=scores.get), why


def stand_in_run(c: Config, data, start, device, *, progress: bool, what: str) -> dict:
    """Train `c` on the stand-in private set from `start`; its stand-in val PCKh@0.5 and time."""
    t = time.perf_counter()
    model = build_model(c, start=start).to(device)
    fit(model, c, data["private"], val_set=None, device=device, public_set=data["public"], desc=f"tuning {what}",
        progress=progress)
    pckh = evaluate(model, data["val"], device=device, flip_test=c.flip_test)[0]["Mean"]
    if progress:
        print(f"tuning {what} -> stand-in val PCKh@0.5 {pckh:.2f}", flush=True)
    return {"pckh_mean": pckh, "wall_s": time.perf_counter() - t}


def stand_in_start(cfg: Config, data: dict, *, progress: bool = True) -> dict:
    """The start pretrained on the stand-in public set alone (so that stand-in val is unseen), kept in
    cfg.cache_dir under its pretraining fields and the split: tune() and tune_optimizers() share it."""
    import hashlib

    import torch

    from .start import pretrain_key
    key = hashlib.sha256(json.dumps([pretrain_key(cfg), TUNING_SPLIT, TUNING_SEED]).encode()).hexdigest()[:12]
    path = Path(cfg.cache_dir).expanduser() / "stand-in-starts" / f"{key}.pt"
    if path.is_file():
        return torch.load(path, map_location="cpu", weights_only=True)
    start = pretrain(cfg, data["public"], progress=progress)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_suffix(".tmp")
    torch.save(start, tmp)
    tmp.replace(path)
    return start


def tuning_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "tuning.json"


def stand_in_splits(cfg: Config) -> dict[str, PoseDataset]:
    """The public split cut into stand-in private, public and val sets (disjoint, seeded)."""
    source, _ = public_source(cfg)
    parts = split_source(source, TUNING_SPLIT, seed=TUNING_SEED)
    return {name: PoseDataset(src, cfg, train=name != "val", name=f"stand-in {name}") for name, src in parts.items()}


def stand_in_setup(cfg: Config, *, progress: bool):
    """What every tuning stage shares: the grid, the device, the stand-in splits, the real private set's
    size, the grid's middle clipping norm and the stand-in start."""
    grid = GRIDS[cfg.preset]
    data = stand_in_splits(cfg)
    n_real = cfg.n_private if cfg.dataset == "synthpose" else MPII_TRAIN_CROPS
    clip = sorted(grid.clip_norms)[len(grid.clip_norms) // 2]
    return grid, resolve_device(cfg), data, n_real, clip, stand_in_start(cfg, data, progress=progress)


def tune(preset: str, *, progress: bool = True, fresh: bool = False, **overrides) -> dict:
    """The tuning table and the chosen values for `preset` (stored in tuning_path; `fresh` reruns it)."""
    from .provenance import provenance
    cfg = make_config(preset, **overrides)
    path = tuning_path(cfg)
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    grid, device, data, n_real, clip, start = stand_in_setup(cfg, progress=progress)
    epsilon = max(grid.epsilons) * n_real / len(data["private"])        # equal N x epsilon
    steps = max(1, round(len(data["private"]) / cfg.expected_batch_size))
    chosen: dict = {}
    rows, notes = [], []
    for method, name, first, ladder in STAGES:
        def score(share, method=method, name=name):
            value = candidates(cfg, name, (share,))[0]
            c = cfg.replace(method=method, strategy="finetune", epsilon=epsilon, clip_norm=clip, seed=0,
                            delta=0.0, **chosen, **{name: value})
            row = stand_in_run(c, data, start, device, progress=progress, what=f"{method} {name}={value:g}")
            rows.append({"method": method, "field": name, "value": value, **row})
            return row["pckh_mean"]
        best, why = walk(first, ladder, score)
        chosen[name] = candidates(cfg, name, (best,))[0]
        notes.append({"method": method, "field": name, "chosen": chosen[name], "note": why})
    out = {"preset": preset, "epsilon": epsilon, "epsilon_real": max(grid.epsilons), "n_real": n_real, "clip_norm": clip, "steps_per_epoch": steps,
           "split": {k: len(v) for k, v in data.items()}, "split_seed": TUNING_SEED, "rows": rows, "stages": notes, "chosen": chosen,
           "wall_s": time.perf_counter() - t0, "provenance": provenance(device)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def schedule(cfg: Config, tuning: dict) -> dict:
    """The subspace schedule the tuning chose, in steps: between rebuilds and the bases built, in the
    stand-in's run and in a run of `cfg` (its private set: n_private, or MPII's size)."""
    from .publicpasses import rebuild_every
    chosen = cfg.replace(subspace_interval=tuning["chosen"]["subspace_interval"])
    n = cfg.n_private if cfg.dataset == "synthpose" else MPII_TRAIN_CROPS
    out = {"interval": chosen.subspace_interval, "k": tuning["chosen"]["subspace_k"]}
    for name, steps in (("stand_in", tuning["steps_per_epoch"]),
                        ("study", cfg.epochs * max(1, round(n / cfg.expected_batch_size)))):
        every = rebuild_every(chosen, steps)
        out.update({f"{name}_steps": steps, f"{name}_every": every, f"{name}_rebuilds": -(-steps // every)})
    return out


def disagreements(cfg: Config, tuning: dict) -> dict:
    """{field: (preset value, chosen value)} where the config does not hold the tuning's choice."""
    return {k: (getattr(cfg, k), v) for k, v in tuning["chosen"].items() if getattr(cfg, k) != v}


def tuning_table(tuning: dict, cfg: Config):
    """The tuning's rows as a table for the book: stage, candidate, stand-in val PCKh@0.5, whether it
    was chosen and whether the preset uses it."""
    import pandas as pd
    from .results import METHOD_NAMES
    rows = [{"method": METHOD_NAMES[r["method"]], "field": r["field"], "value": r["value"],
             "stand-in val PCKh@0.5": round(r["pckh_mean"], 2),
             "chosen": "yes" if tuning["chosen"][r["field"]] == r["value"] else "",
             "preset uses": "yes" if getattr(cfg, r["field"]) == r["value"] else ""} for r in tuning["rows"]]
    return pd.DataFrame(rows).set_index(["method", "field", "value"])


# What the end of each axis means, where a stage stops at it
AXIS_ENDS = {
    ("subspace_interval", "low"): "a rebuild at every step: the subspace cannot be fresher",
    ("subspace_k", "high"): "k = m: the m public gradients span no more",
    ("public_weight_fdp", "low"): ("the score still rises towards lambda = 0, where feature DP is DP-SGD with "
                                   "replace-one accounting: the blurred gradient did not help on the stand-in"),
    ("public_weight_hybrid", "low"): ("the score still rises towards lambda = 0, where the hybrid is PDP-SGD with "
                                      "replace-one accounting: the blurred gradient did not help on the stand-in"),
}


def tuning_notes(tuning: dict):
    """Per stage: the value chosen and why the stage stopped where it did (no value beside the choice
    scores higher, or the choice is the end of its axis, and what that end means)."""
    import pandas as pd
    from .results import METHOD_NAMES
    rows = []
    for n in tuning["stages"]:
        method, field = n["method"], n["field"]
        ladder = candidates(make_config(tuning["preset"]), field, next(s[3] for s in STAGES if s[1] == field))
        end = {min(ladder): "low", max(ladder): "high"}.get(n["chosen"]) if "end of its axis" in n["note"] else None
        meaning = AXIS_ENDS.get((field, end), "the end of the ladder tried") if end else ""
        rows.append({"method": METHOD_NAMES[method], "field": field, "chosen": f"{n['chosen']:g}",
                     "why the candidates stop there": n["note"] + (f": {meaning}" if meaning else "")})
    return pd.DataFrame(rows).set_index(["method", "field"])


def tuning_numbers(cfg: Config, tuning: dict) -> dict:
    """The tuning's numbers for the baselines chapter's prose: the stand-in's split, its epsilon and the real
    one it stands for, its C, and the subspace schedule at the study's length (`schedule`)."""
    out = {f"tune_split_{k}": v for k, v in tuning["split"].items()}
    out.update(tune_eps=tuning["epsilon"], tune_eps_real=tuning["epsilon_real"], tune_clip=tuning["clip_norm"])
    out.update({f"tune_{k.removeprefix('study_')}": v for k, v in schedule(cfg, tuning).items()})
    return out
