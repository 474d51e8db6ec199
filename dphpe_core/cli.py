"""The `dphpe` command.

    dphpe --help
    dphpe config --preset embedded --set epsilon=0.4       # flags and --set: overrides.py
    dphpe eval-mpii preds.npy data/mpii/annot/gt_valid.mat
    dphpe bench --preset embedded --json bench/embedded.json
    dphpe bench-data --n 4096
    dphpe notebooks --preset smoke --out book
    dphpe sweep --preset embedded --jobs 2
    dphpe pretrain --preset embedded
    dphpe tune --preset embedded
    dphpe audit --preset smoke --method fdp --fdp-public same-batch --accounting paper
"""

from __future__ import annotations

import argparse
import json
import sys
import time

import numpy as np

from . import audit as audit_mod
from . import config as config_mod
from .grid import GRID_NAMES, GRIDS
from .methods import PRIVATE_METHODS
from .cli_bench import BRIEF, add_bench_commands
from .overrides import FIELD_FLAG, field_flags, parse_overrides


def _cfg(args) -> config_mod.Config:
    try:
        return config_mod.make_config(args.preset, **parse_overrides(args))
    except ValueError as e:
        raise SystemExit(str(e)) from None


def cmd_config(args) -> None:
    cfg = _cfg(args)
    print(json.dumps({**cfg.to_dict(), "hash": cfg.hash()}, indent=2))


def cmd_data(args) -> None:
    from .data import build_data
    bundle = build_data(_cfg(args))
    print(bundle)
    for name in ("private_train", "public", "val"):
        print(f"  {name}: {getattr(bundle, name)!r}")


def cmd_eval_mpii(args) -> None:
    from .mpii import evaluate_mpii
    from .pckh import format_table
    preds = np.load(args.preds)
    for t in args.threshold:
        print(f"PCKh@{t}")
        print(format_table(evaluate_mpii(preds, args.gt, threshold=t)))


def cmd_notebooks(args) -> None:
    from .runbook import run_notebooks
    run_notebooks(args.preset, args.out, results_dir=args.results_dir, jobs=args.jobs)


def cmd_train(args) -> None:
    from .train import load_or_train
    result = load_or_train(_cfg(args))
    print(result.summary())


def cmd_sweep(args) -> None:
    from . import results
    from .grid import grid_configs
    from .sweep import sweep
    overrides = parse_overrides(args)
    try:
        configs = grid_configs(args.preset, args.grid, **overrides)
        stored = 0 if args.fresh else sum(results.run_path(c).is_file() for c in configs)
        t0 = time.perf_counter()
        path = sweep(args.preset, grid=args.grid, jobs=args.jobs, fresh=args.fresh, **overrides)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    trained = len(configs) - stored
    print(f"sweep: {len(configs)} runs, {stored} reused, {trained} trained"
          + (f" in {(time.perf_counter() - t0) / 60:.1f} min" if trained else "") + f"; summary: {path}")


def cmd_pretrain(args) -> None:
    from .start import pretrained_state, start_path
    cfg = _cfg(args)
    pretrained_state(cfg, fresh=args.fresh)
    print(f"start: {start_path(cfg)}")


def _took(stored: bool, t0: float) -> str:
    return "reused" if stored else f"ran on the public split in {(time.perf_counter() - t0) / 60:.1f} min"


def cmd_tune(args) -> None:
    from .tuning import disagreements, tune, tuning_path
    from .tuning_optimizers import optimizer_tuning_path, tune_optimizers
    cfg = _cfg(args)
    if args.schedule or args.schedules:
        from .tuning_schedules import schedule_tuning_path, tune_schedule
        names = [args.schedule] if args.schedule else [s.name for s in GRIDS[args.preset].schedules if not s.separate]
        for name in names:
            path, fields = schedule_tuning_path(cfg, name), set(args.stages.split(","))
            stored = path.is_file() and not args.fresh and fields <= set(json.loads(path.read_text())["chosen"])
            t0 = time.perf_counter()
            out = tune_schedule(args.preset, name, fields=tuple(fields), fresh=args.fresh,
                                **parse_overrides(args))
            chosen = ", ".join(f"{k}={v:g}" for k, v in out["chosen"].items())
            print(f"schedule tuning of {name}: {_took(stored, t0)}; chosen {chosen} ({schedule_tuning_path(cfg, name)})")
        return
    if args.optimizers:
        if not GRIDS[args.preset].optimizer_cells:
            print(f"optimizer tuning: the {args.preset} grid has no optimizer axis; nothing to tune")
            return
        stored, t0 = optimizer_tuning_path(cfg).is_file() and not args.fresh, time.perf_counter()
        out = tune_optimizers(args.preset, fresh=args.fresh, **parse_overrides(args))
        how = _took(stored, t0)
        chosen = "; ".join(f"{o} at epsilon {e}: lr {lr:g}" for o, by in out["chosen"].items() for e, lr in by.items())
        print(f"optimizer tuning: {how}; chosen {chosen} ({optimizer_tuning_path(cfg)})")
        return
    stored, t0 = tuning_path(cfg).is_file() and not args.fresh, time.perf_counter()
    out = tune(args.preset, fresh=args.fresh, **parse_overrides(args))
    how = _took(stored, t0)
    chosen = ", ".join(f"{k}={v:g}" for k, v in out["chosen"].items())
    print(f"tuning: {how}; chosen {chosen} ({tuning_path(cfg)})")
    for field, (have, want) in disagreements(cfg, out).items():
        print(f"note: the {args.preset} preset has {field}={have!r}; the tuning chose {want!r}")


def cmd_audit(args) -> None:
    from .audit import run_audit
    from .audits import audit_book, audit_table, save_audit
    if args.all:
        ran = []
        audits = audit_book(args.preset, canaries=args.canaries, fresh=args.fresh,
                            ran=ran, **parse_overrides(args))
        if not args.brief:
            print(audit_table(audits).to_string())
        print(f"audits: {len(audits)}, {len(audits) - len(ran)} reused, {len(ran)} run")
        return
    if getattr(args, FIELD_FLAG + "method") is None:
        raise SystemExit("dphpe audit: give --method (one audit) or --all (the preset's audits for the book)")
    r = run_audit(_cfg(args), canaries=args.canaries, seed=args.seed, accounting=args.accounting,
                  sabotage=args.sabotage, allow_no_power=args.allow_no_power)
    print(r.report())
    if args.json:
        print(f"wrote {save_audit(r, args.json)}")


def cmd_sync_notebooks(args) -> None:
    from .colab import repository_url, sync_notebooks
    changed = sync_notebooks(args.repo)
    print(f"{len(changed)} notebook(s) now point to {repository_url(args.repo)}")


def cmd_model(args) -> None:
    from .strategies import count_macs
    from .start import build_model
    cfg = _cfg(args)
    model = build_model(cfg) if args.pretrained else None
    if model is None:
        from .strategies import for_config, set_strategy
        model = set_strategy(for_config(cfg), cfg.strategy)
    total = sum(p.numel() for p in model.parameters())
    trainable = sum(p.numel() for p in model.parameters() if p.requires_grad)
    print(f"{cfg.preset}: TinyViT-{cfg.model_size} + SimCC at {cfg.input_h}x{cfg.input_w}, strategy {cfg.strategy}")
    print(f"  parameters: {total:,} total, {trainable:,} trainable; {count_macs(model) / 1e6:,.1f} M multiply-adds")


def build_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="dphpe", description="Differentially private 2D human pose estimation")
    sub = p.add_subparsers(dest="command", required=True)

    def with_config(sp):
        sp.add_argument("--preset", default="embedded", choices=sorted(config_mod.PRESETS))
        sp.add_argument("--set", action="append", metavar="KEY=VALUE", help="override a Config field")
        return sp

    with_config(sub.add_parser("config", help="print a preset's config and its hash")).set_defaults(func=cmd_config)
    with_config(sub.add_parser("data", help="build (and cache) a preset's data sets, print their sizes")).set_defaults(func=cmd_data)
    ev = sub.add_parser("eval-mpii", help="PCKh table of predictions against HRNet's gt_valid.mat")
    ev.add_argument("preds", help=".npy of shape (N, 16, 2), zero-based pixels, valid.json order")
    ev.add_argument("gt", help="gt_valid.mat")
    ev.add_argument("--threshold", type=float, nargs="+", default=[0.5, 0.1])
    ev.set_defaults(func=cmd_eval_mpii)
    tr = with_config(sub.add_parser("train", help="train one configuration (or load its stored record)"))
    field_flags(tr, "method", "strategy", "fdp_public", "epsilon", "clip_norm", "seed")
    tr.set_defaults(func=cmd_train)
    sw = with_config(sub.add_parser("sweep", help="run a preset's whole grid (resumable) and write summary.csv"))
    sw.add_argument("--jobs", type=int, default=1, help="processes in parallel (torch threads are split among them)")
    sw.add_argument("--grid", default="study", choices=GRID_NAMES,
                    help="study: what make book runs; paper-schedule: the schedule axis at the paper's schedule (hours)")
    sw.add_argument("--fresh", action="store_true",
                    help="recompute every record and the pretrained start, overwriting the stored ones")
    sw.set_defaults(func=cmd_sweep)
    pt = with_config(sub.add_parser("pretrain", help="build the pretrained start (public split, non-private)"))
    pt.add_argument("--fresh", action="store_true", help="train it again even when it is stored")
    pt.set_defaults(func=cmd_pretrain)
    tu = with_config(sub.add_parser("tune", help="choose lr, k and lambda on the public split alone"))
    tu.add_argument("--fresh", action="store_true", help="run it again even when it is stored")
    tu.add_argument("--optimizers", action="store_true",
                    help="the regime map's optimizer axis: DP-SGD's lr per optimizer and epsilon of the axis")
    tu.add_argument("--schedule", choices=sorted({s.name for g in GRIDS.values() for s in g.schedules}),
                    help="the regime map's schedule axis: this schedule's lr and rebuild interval (stages stored are reused)")
    tu.add_argument("--schedules", action="store_true", help="every schedule make book runs (--schedule: one)")
    tu.add_argument("--stages", default="lr,subspace_interval", help="with --schedule(s): the stages to run, in order")
    tu.set_defaults(func=cmd_tune)
    au = with_config(sub.add_parser("audit", help="one-run privacy audit: canaries through a method's mechanism"))
    field_flags(au, "method", "fdp_public", choices={"method": PRIVATE_METHODS})
    au.add_argument("--all", action="store_true", help="the preset's audits for the book (stored, reused)")
    au.add_argument("--fresh", action="store_true", help="with --all: run them again")
    au.add_argument("--canaries", type=int, default=1000)
    au.add_argument("--seed", type=int, default=0)
    au.add_argument("--accounting", default="honest", choices=audit_mod.ACCOUNTING,
                    help="honest: the method's own relation; paper: add/remove, amplified, as the paper claims")
    au.add_argument("--sabotage", default="none", choices=audit_mod.SABOTAGE,
                    help="break the mechanism on purpose (the audit's test of power)")
    au.add_argument("--allow-no-power", action="store_true",
                    help="run even when the canaries and delta cannot show a bound above the claim (labelled)")
    au.add_argument("--json", help="write the result's fields to this file")
    au.add_argument("--brief", action="store_true", help=BRIEF)
    au.set_defaults(func=cmd_audit)
    sn = sub.add_parser("sync-notebooks", help="write _config.yml's repository.url into the notebooks' Colab cells")
    sn.add_argument("--repo", default=".")
    sn.set_defaults(func=cmd_sync_notebooks)
    md = with_config(sub.add_parser("model", help="parameter counts and multiply-adds of a preset's model"))
    md.add_argument("--pretrained", action="store_true", help="build the pretrained start (may train it)")
    md.set_defaults(func=cmd_model)
    nb = sub.add_parser("notebooks", help="execute notebooks/*.ipynb with papermill for a preset")
    nb.add_argument("--preset", default="embedded", choices=sorted(config_mod.PRESETS))
    nb.add_argument("--out", default="book", help="folder for the executed notebooks")
    nb.add_argument("--results-dir", default="results", help="where the sweep's records and summary.csv are")
    nb.add_argument("--jobs", type=int, default=1, help="notebooks executed at a time (one kernel each)")
    nb.set_defaults(func=cmd_notebooks)
    add_bench_commands(sub, with_config)
    return p


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        args.func(args)
    except (OSError, ValueError) as e:      # missing or unwritable files, bad input: a message, no traceback
        print(f"dphpe: error: {e}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
