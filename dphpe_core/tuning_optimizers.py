"""The regime map's optimizer axis, tuned on public data: DP-SGD's learning rate under each optimizer (AdamW,
the paper's, and SGD with momentum) at each epsilon of the axis, on tuning.py's stand-in.

    dphpe tune --preset embedded --optimizers

Every method of the axis then uses that rate. The stand-in's N x epsilon equals the real study's at each
epsilon: SGD's steps grow with the gradient's norm where AdamW's do not, so the rate that suits one noise
level need not suit another. The preset's other tuned values (k, the schedule, lambda) stay. Written to
results/<preset>/tuning_optimizers.json with its provenance; no private or val crop is read.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from .config import Config, make_config
from .grid import GRIDS
from .methods import REFERENCE
from .tuning import LRS, TUNING_SEED, stand_in_run, stand_in_setup, walk


OPTIMIZER_LRS = {"adamw": LRS, "sgd": (0.003, 0.01, 0.03, 0.1, 0.3, 1.0, 3.0)}


OPTIMIZER_FIRST = {"adamw": (1e-3, 3e-3, 1e-2), "sgd": (0.03, 0.1, 0.3)}


def optimizer_tuning_path(cfg: Config) -> Path:
    return Path(cfg.results_dir) / cfg.preset / "tuning_optimizers.json"


def axis_epsilons(preset: str) -> tuple[float, ...]:
    """The epsilons of the optimizer axis: the grid's largest and those of its paper-equivalent cells."""
    grid = GRIDS[preset]
    return tuple(sorted({max(grid.epsilons), *(e for e, _ in grid.paper_cells)}, reverse=True))


def tune_optimizers(preset: str, *, progress: bool = True, fresh: bool = False, **overrides) -> dict:
    """Per optimizer and epsilon of the axis: DP-SGD's learning rate on the stand-in (stored in
    optimizer_tuning_path; `fresh` reruns it). Reads no private or val crop, as tune()."""
    from .provenance import provenance
    cfg = make_config(preset, **overrides)
    path = optimizer_tuning_path(cfg)
    if path.is_file() and not fresh:
        return json.loads(path.read_text())
    t0 = time.perf_counter()
    grid, device, data, n_real, clip, start = stand_in_setup(cfg, progress=progress)
    rows, notes, chosen = [], [], {}
    for optimizer, ladder in OPTIMIZER_LRS.items():
        for eps in axis_epsilons(preset):
            stand_in = eps * n_real / len(data["private"])       # equal N x epsilon
            accountant = cfg.accountant if eps in grid.epsilons else grid.cost_accountant

            def score(lr, optimizer=optimizer, eps=eps, stand_in=stand_in, accountant=accountant):
                c = cfg.replace(method=REFERENCE, strategy="finetune", epsilon=stand_in, clip_norm=clip, seed=0, delta=0.0,
                                optimizer=optimizer, lr=lr, accountant=accountant)
                row = stand_in_run(c, data, start, device, progress=progress, what=f"{optimizer} eps={eps:g} lr={lr:g}")
                rows.append({"optimizer": optimizer, "epsilon_real": eps, "epsilon": stand_in, "lr": lr, **row})
                return row["pckh_mean"]
            best, why = walk(OPTIMIZER_FIRST[optimizer], ladder, score)
            chosen.setdefault(optimizer, {})[f"{eps:g}"] = best
            notes.append({"optimizer": optimizer, "epsilon_real": eps, "chosen": best, "note": why})
    out = {"preset": preset, "n_real": n_real, "clip_norm": clip, "split": {k: len(v) for k, v in data.items()},
           "split_seed": TUNING_SEED, "rows": rows, "stages": notes, "chosen": chosen,
           "wall_s": time.perf_counter() - t0, "provenance": provenance(device)}
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(json.dumps(out, indent=1, sort_keys=True) + "\n")
    return out


def read_optimizer_tuning(preset: str, results_dir: str = "results") -> dict:
    """The committed optimizer tuning of `preset` (tune_optimizers), or an error that says how to make it."""
    path = optimizer_tuning_path(make_config(preset, results_dir=results_dir))
    if not path.is_file():
        raise FileNotFoundError(f"{path}: no optimizer tuning yet; run `dphpe tune --preset {preset} --optimizers`")
    return json.loads(path.read_text())


def optimizer_choice_table(tuning: dict):
    """The optimizer tuning as the book's table: per optimizer and epsilon, the learning rates tried with
    their stand-in val PCKh@0.5 ('3e-03: 46.6'), the chosen one marked with an asterisk."""
    import pandas as pd
    rows = {}
    for r in tuning["rows"]:
        chosen = tuning["chosen"][r["optimizer"]][f"{r['epsilon_real']:g}"] == r["lr"]
        rows.setdefault((r["optimizer"], r["epsilon_real"]), []).append((r["lr"], f"{r['lr']:.0e}: {r['pckh_mean']:.1f}"
                                                                          + ("*" if chosen else "")))
    table = pd.DataFrame([{"optimizer": o, "epsilon": e, "learning rates tried (stand-in val PCKh@0.5)":
                           ", ".join(t for _, t in sorted(v))} for (o, e), v in rows.items()])
    return table.set_index(["optimizer", "epsilon"]).sort_index(ascending=[True, False])
