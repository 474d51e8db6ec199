"""The regime map's schedule axis, tuned on public data: per schedule (grid.Schedule: the expected batch, the
epochs, the epoch of the lr's x0.1), DP-SGD's learning rate and then PDP-SGD's rebuild interval, on tuning.py's
stand-in, at the grid's largest epsilon, walked as the preset's own tuning walks (tuning.STAGES), the rate's
ladder one rung lower (LADDERS).

    dphpe tune --preset embedded --schedule b128x3

The stand-in trains at the schedule (its smaller private set: fewer steps per epoch, the same epochs) at the
real study's N x epsilon. Each schedule's choice is written to results/<preset>/schedules/<name>.json with its
provenance, each stand-in run as it ends: a candidate already stored is reused (`fresh` reruns them), so that
the paper's schedule, whose stand-in runs take minutes each, can be tuned one stage per sitting and a walk
cut short resumes where it stopped. A stage's entry holds the commit and the stand-in time (wall_s) of the call
that ran its candidates. k and lambda stay the preset's. No private or val crop is read.
"""

from __future__ import annotations

import json
from pathlib import Path

from .config import Config, make_config
from .grid import GRIDS
from .methods import PROJECTING, REFERENCE
from .tuning import INTERVALS, LRS, STAGES, TUNING_SEED, stand_in_run, stand_in_setup, walk

SCHEDULE_FIELDS = ("lr", "subspace_interval")      # the stages, in order: each takes the choices before it
# each stage's first candidates and ladder are the preset's tuning's (tuning.STAGES), but the learning rate's
# ladder goes two rungs lower: a schedule of many small steps may want a smaller rate than the preset's one epoch
# (the paper's schedule on the stand-in: 1e-4 scored above 3e-4, the preset ladder's end)
LADDERS = {"lr": (3e-5, 1e-4, *LRS), "subspace_interval": INTERVALS}
FIRST = {field: first for _, field, first, _ in STAGES}


class _NotStored(Exception):
    """A walk needs a stand-in run that the schedule's file does not hold."""


def schedule_tuning_path(cfg: Config, name: str) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "schedules" / f"{name}.json"


def _stored(path: Path, fresh: bool) -> dict:
    """The schedule's file, each row with the choices it was run under (`given`) and its code's commit (rows
    written before they carried them: the choices of the stages before it, and its stage's commit)."""
    if not path.is_file() or fresh:
        return {"stages": [], "rows": [], "chosen": {}}
    out = json.loads(path.read_text())
    commits = {st["field"]: st["provenance"]["commit"] for st in out["stages"]}
    for row in out["rows"]:
        before = SCHEDULE_FIELDS[:SCHEDULE_FIELDS.index(row["field"])]
        row.setdefault("given", {f: out["chosen"][f] for f in before if f in out["chosen"]})
        row.setdefault("commit", commits[row["field"]])
    return out


def _walk(out: dict, fields, run) -> tuple[dict, list]:
    """Every stage in `fields` walked along its ladder (tuning.walk), the others kept as stored: the choices and
    the stages' notes. run(field, value, given) scores one candidate (a stored row, or a stand-in run)."""
    chosen, notes = {}, []
    for field in SCHEDULE_FIELDS:
        if field not in fields:
            if field in out["chosen"]:
                chosen[field] = out["chosen"][field]
            continue
        missing = [f for f in SCHEDULE_FIELDS[:SCHEDULE_FIELDS.index(field)] if f not in chosen]
        if missing:
            raise ValueError(f"stage {field} takes the choice of {missing}: tune that stage first (--stages)")
        given = dict(chosen)
        best, why = walk(FIRST[field], LADDERS[field], lambda v, f=field, g=given: run(f, v, g))
        chosen[field] = best
        notes.append({"method": REFERENCE if field == "lr" else PROJECTING[0], "field": field, "chosen": best,
                      "note": why})
    return chosen, notes


def tune_schedule(preset: str, name: str, *, fields: tuple[str, ...] = SCHEDULE_FIELDS, progress: bool = True,
                  fresh: bool = False, **overrides) -> dict:
    """The stages `fields` of schedule `name` (a Schedule of the preset's grid) walked on the stand-in and written
    to its file. A candidate already stored under the same earlier choices is reused, not run again (`fresh`:
    every one is run), so that a file whose walks are complete costs nothing and a longer ladder runs only its
    new rungs. Reads no private or val crop, as tune()."""
    from .provenance import provenance
    cfg = make_config(preset, **overrides)
    by_name = {s.name: s for s in GRIDS[preset].schedules}
    if name not in by_name:
        raise ValueError(f"the {preset} grid has no schedule {name!r}; expected one of {sorted(by_name)}")
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ValueError(f"cannot tune {sorted(unknown)} per schedule; expected some of {list(SCHEDULE_FIELDS)}")
    sched, path = by_name[name], schedule_tuning_path(cfg, name)
    out = _stored(path, fresh)
    rows = {(r["field"], r["value"], json.dumps(r["given"], sort_keys=True)): r for r in out["rows"]}

    def from_file(field, value, given):
        row = rows.get((field, value, json.dumps(given, sort_keys=True)))
        if row is None:
            raise _NotStored
        return row["pckh_mean"]
    try:
        chosen, notes = _walk(out, fields, from_file)
        if notes and {n["field"]: n["chosen"] for n in notes}.items() <= out["chosen"].items():
            return out                                    # every walk complete from the file: nothing to run
    except _NotStored:
        pass
    grid, device, data, n_real, clip, start = stand_in_setup(cfg, progress=progress)
    epsilon = max(grid.epsilons) * n_real / len(data["private"])        # equal N x epsilon
    at = dict(expected_batch_size=sched.expected_batch_size, epochs=sched.epochs, lr_decay_epoch=sched.lr_decay_epoch)
    prov, ran = provenance(device), {}

    def run(field, value, given):
        key = (field, value, json.dumps(given, sort_keys=True))
        if key not in rows:
            method = REFERENCE if field == "lr" else PROJECTING[0]
            c = cfg.replace(method=method, strategy="finetune", epsilon=epsilon, clip_norm=clip, seed=0, delta=0.0,
                            **at, **given, **{field: value})
            row = stand_in_run(c, data, start, device, progress=progress, what=f"{name} {method} {field}={value:g}")
            rows[key] = {"method": method, "field": field, "value": value, "given": given, "commit": prov["commit"], **row}
            out["rows"].append(rows[key])
            ran[field] = ran.get(field, 0.0) + row["wall_s"]
            path.parent.mkdir(parents=True, exist_ok=True)       # each run kept at once: an interrupted walk resumes
            path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
        return rows[key]["pckh_mean"]
    chosen, notes = _walk(out, fields, run)
    # a stage's entry is renewed where this call ran one of its candidates or changed what it says; a stage walked
    # again from stored rows alone keeps the commit and time of the call that ran it
    old = {st["field"]: st for st in out["stages"]}
    renew = [n for n in notes if n["field"] in ran or {k: old.get(n["field"], {}).get(k) for k in n} != n]
    out["stages"] = [st for st in out["stages"] if st["field"] not in {n["field"] for n in renew}] + [
        dict(n, provenance=prov, wall_s=ran.get(n["field"], 0.0)) for n in renew]
    out["stages"].sort(key=lambda st: SCHEDULE_FIELDS.index(st["field"]))
    out.update(chosen=chosen, preset=preset, schedule=name, **at, epsilon=epsilon, epsilon_real=max(grid.epsilons),
               n_real=n_real, clip_norm=clip, split={k: len(v) for k, v in data.items()}, split_seed=TUNING_SEED)
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def read_schedule_tuning(preset: str, name: str, results_dir: str = "results") -> dict:
    """A schedule's committed tuning (tune_schedule), or an error that says how to make it."""
    path = schedule_tuning_path(make_config(preset, results_dir=results_dir), name)
    if not path.is_file():
        raise FileNotFoundError(f"{path}: schedule {name!r} is not tuned yet; run "
                                f"`dphpe tune --preset {preset} --schedule {name}`")
    return json.loads(path.read_text())


def schedule_choice_table(preset: str, results_dir: str = "results"):
    """Every tuned schedule of the preset's grid as the book's table: per schedule and stage, the values tried with
    their stand-in val PCKh@0.5 ('1e-03: 48.2'), the chosen one marked with an asterisk."""
    import pandas as pd
    rows = []
    for s in GRIDS[preset].schedules:
        path = schedule_tuning_path(make_config(preset, results_dir=results_dir), s.name)
        if not path.is_file():
            continue
        tuning = json.loads(path.read_text())
        for field, chosen in tuning["chosen"].items():
            tried = sorted((r["value"], r["pckh_mean"]) for r in tuning["rows"] if r["field"] == field)
            rows.append({"schedule": f"{s.expected_batch_size} x {s.epochs}", "field": field,
                         "values tried (stand-in val PCKh@0.5)": ", ".join(
                             f"{v:g}: {p:.1f}" + ("*" if v == chosen else "") for v, p in tried)})
    return pd.DataFrame(rows).set_index(["schedule", "field"]) if rows else pd.DataFrame()
