"""The regime map's schedule axis, tuned on public data: per schedule (grid.Schedule: the expected batch, the
epochs, the epoch of the lr's x0.1), DP-SGD's learning rate and then PDP-SGD's rebuild interval, on tuning.py's
stand-in, at the grid's largest epsilon, walked along the ladders of the preset's own tuning (tuning.STAGES).

    dphpe tune --preset embedded --schedule b128x3

The stand-in trains at the schedule (its smaller private set: fewer steps per epoch, the same epochs) at the
real study's N x epsilon. Each schedule's choice is written to results/<preset>/schedules/<name>.json with its
provenance, one stage at a time: a stage already stored is reused (`fresh` reruns them), so that the paper's
schedule, whose stand-in runs take minutes each, can be tuned one stage per sitting. k and lambda stay the
preset's. No private or val crop is read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import Config, make_config
from .grid import GRIDS
from .methods import PROJECTING, REFERENCE
from .tuning import STAGES, TUNING_SEED, stand_in_run, stand_in_setup, walk

SCHEDULE_FIELDS = ("lr", "subspace_interval")      # the stages, in order: each takes the choices before it


def schedule_tuning_path(cfg: Config, name: str) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "schedules" / f"{name}.json"


def tune_schedule(preset: str, name: str, *, fields: tuple[str, ...] = SCHEDULE_FIELDS, progress: bool = True,
                  fresh: bool = False, **overrides) -> dict:
    """The stages `fields` of schedule `name` (a Schedule of the preset's grid) on the stand-in, added to its
    file (stages stored there are reused unless `fresh`). Reads no private or val crop, as tune()."""
    from .provenance import provenance
    cfg = make_config(preset, **overrides)
    by_name = {s.name: s for s in GRIDS[preset].schedules}
    if name not in by_name:
        raise ValueError(f"the {preset} grid has no schedule {name!r}; expected one of {sorted(by_name)}")
    unknown = set(fields) - set(SCHEDULE_FIELDS)
    if unknown:
        raise ValueError(f"cannot tune {sorted(unknown)} per schedule; expected some of {list(SCHEDULE_FIELDS)}")
    sched = by_name[name]
    path = schedule_tuning_path(cfg, name)
    out = json.loads(path.read_text()) if path.is_file() and not fresh else {"stages": [], "rows": [], "chosen": {}}
    todo = [f for f in SCHEDULE_FIELDS if f in fields and f not in out["chosen"]]
    if not todo:
        return out
    t0 = time.perf_counter()
    grid, device, data, n_real, clip, start = stand_in_setup(cfg, progress=progress)
    epsilon = max(grid.epsilons) * n_real / len(data["private"])        # equal N x epsilon
    at = dict(expected_batch_size=sched.expected_batch_size, epochs=sched.epochs, lr_decay_epoch=sched.lr_decay_epoch)
    for field in todo:
        method = REFERENCE if field == "lr" else PROJECTING[0]
        first, ladder = next((s[2], s[3]) for s in STAGES if s[1] == field)

        def score(value, method=method, field=field):
            c = cfg.replace(method=method, strategy="finetune", epsilon=epsilon, clip_norm=clip, seed=0, delta=0.0,
                            **at, **out["chosen"], **{field: value})
            row = stand_in_run(c, data, start, device, progress=progress, what=f"{name} {method} {field}={value:g}")
            out["rows"].append({"method": method, "field": field, "value": value, **row})
            return row["pckh_mean"]
        best, why = walk(first, ladder, score)
        out["chosen"][field] = best
        out["stages"].append({"method": method, "field": field, "chosen": best, "note": why,
                              "wall_s": time.perf_counter() - t0, "provenance": provenance(device)})
        out.update(preset=preset, schedule=name, **at, epsilon=epsilon, epsilon_real=max(grid.epsilons), n_real=n_real,
                   clip_norm=clip, split={k: len(v) for k, v in data.items()}, split_seed=TUNING_SEED)
        t0 = time.perf_counter()
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
