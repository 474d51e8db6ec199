"""The benchmark commands of `dphpe` (cli.py): a training step per method, the GPU path, SynthPose rendering.

    dphpe bench --preset embedded --json bench/embedded.json
    dphpe bench-gpu --json bench/gpu.json
    dphpe bench-data --n 4096
"""

from __future__ import annotations

import json
from pathlib import Path

from .overrides import parse_overrides

BRIEF = "print one summary line instead of the tables (make book's log)"


def cmd_bench(args) -> None:
    from .bench import bench_strategies, format_steps
    overrides = parse_overrides(args)
    if args.preset == "paper" and not __import__("torch").cuda.is_available():
        print("the paper preset on a CPU is slow: timing 3 steps after 1 warm-up", flush=True)
        args.steps, args.warmup = min(args.steps, 3), 1
    strategies = (overrides.pop("strategy"),) if "strategy" in overrides else tuple(args.strategies.split(","))
    try:
        result = bench_strategies(args.preset, strategies=strategies, steps=args.steps, warmup=args.warmup, **overrides)
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if not args.brief:
        print("\n\n".join(format_steps(run) for run in result["runs"]))
    if args.json:
        Path(args.json).parent.mkdir(parents=True, exist_ok=True)
        Path(args.json).write_text(json.dumps(result, indent=1))
    print(f"bench: timed {', '.join(strategies)} at the {args.preset} preset"
          + (f"; wrote {args.json}" if args.json else ""))


def cmd_bench_gpu(args) -> None:
    from .bench_gpu import gpu_check, printing_report
    try:
        gpu_check(steps=args.steps, batches=tuple(int(b) for b in args.batches.split(",")), tf32=args.tf32,
                  presets=tuple(args.presets.split(",")), report=printing_report(args.json))
    except ValueError as e:
        raise SystemExit(str(e)) from None
    if args.json:
        print(f"wrote {args.json}")


def cmd_bench_data(args) -> None:
    from .bench import bench_synthpose
    result = bench_synthpose(args.n, height=args.height, width=args.width, workers=args.workers)
    print(json.dumps(result, indent=2))


def add_bench_commands(sub, with_config) -> None:
    """The bench subcommands on `sub` (with_config: cli's --preset and --set)."""
    bn = with_config(sub.add_parser("bench", help="time one training step per method (median, methods interleaved)"))
    bn.add_argument("--steps", type=int, default=20)
    bn.add_argument("--warmup", type=int, default=3)
    bn.add_argument("--strategies", default="finetune,full",
                    help="comma-separated strategies to time, one after the other (--set strategy=S: that one)")
    bn.add_argument("--json", help="also write the figures to this file")
    bn.add_argument("--brief", action="store_true", help=BRIEF)
    bn.set_defaults(func=cmd_bench)
    bg = sub.add_parser("bench-gpu", help="the CUDA path: exactness against the CPU, step times, peak memory")
    bg.add_argument("--steps", type=int, default=10)
    bg.add_argument("--batches", default="32,64,128,256,512,1024",
                    help="the paper model's batch sizes, in rising order (stops at the first out of memory)")
    bg.add_argument("--presets", default="embedded,paper", help="comma-separated: embedded, paper")
    bg.add_argument("--tf32", action="store_true",
                    help="let matrix products round to TensorFloat-32 (faster; the study's runs leave it off)")
    bg.add_argument("--json", help="also write the figures to this file")
    bg.set_defaults(func=cmd_bench_gpu)
    bd = sub.add_parser("bench-data", help="SynthPose rendering throughput")
    bd.add_argument("--n", type=int, default=4096)
    bd.add_argument("--height", type=int, default=128)
    bd.add_argument("--width", type=int, default=96)
    bd.add_argument("--workers", type=int, default=0, help="0: one per core")
    bd.set_defaults(func=cmd_bench_data)
