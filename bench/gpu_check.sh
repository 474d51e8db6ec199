#!/usr/bin/env bash
# The GPU path in one short run (under five minutes on one H100-class GPU): CUDA's clipped
# per-sample sums against the CPU's, then one step of every method for the embedded preset and for
# the paper's model at 256 x 192 (batch 32 and up until memory runs out), with images per second and
# peak memory. Neither data, nor checkpoints, nor cached starts are needed: SynthPose crops and a
# random start of each preset's model stand in (`bench_gpu.stand_in`). From the repository root, on a
# machine with a CUDA GPU:
#   bash bench/gpu_check.sh [out.json] [more options of `dphpe bench-gpu`, e.g. --tf32 --steps 5]
# It uses the project's .venv where there is one, else a python3 that already has torch, opacus and
# dp-accounting (a cluster's or Colab's), else it makes the .venv.
set -euo pipefail
cd "$(dirname "$0")/.."
if [ -x .venv/bin/python ]; then
    PY=.venv/bin/python
elif python3 -c "import torch, opacus, dp_accounting" 2>/dev/null; then
    PY=python3
    export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
else
    make .venv/.installed
    PY=.venv/bin/python
fi
"$PY" -m dphpe_core.cli bench-gpu --json "${1:-bench/gpu.json}" "${@:2}"
