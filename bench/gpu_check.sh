#!/usr/bin/env bash
# The GPU path in one short run (under five minutes on one H100-class GPU): CUDA's clipped
# per-sample sums against the CPU's, then one step of every method for the embedded preset and for
# the paper's model at 256 x 192 (batch 32 and up until memory runs out), with images per second and
# peak memory. Run it from the repository root on a machine with a CUDA GPU:
#   bash bench/gpu_check.sh [out.json]
set -euo pipefail
cd "$(dirname "$0")/.."
test -x .venv/bin/dphpe || make .venv/.installed
.venv/bin/dphpe bench-gpu --json "${1:-bench/gpu.json}"
