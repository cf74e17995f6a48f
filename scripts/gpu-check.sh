#!/usr/bin/env bash
# Paper-preset throughput on this machine's GPU (≤ 8 min): training images/s and inference ms/image at 512 px,
# and the projected time of one 12,611-image RSNA epoch. On a CPU, smoke it with a tiny step count:
#   scripts/gpu-check.sh --steps 1 --warmup 0 --batch 1 --infer-batches 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
exec timeout 480 "$PY" -m ml.gpu_check --preset paper "$@"
