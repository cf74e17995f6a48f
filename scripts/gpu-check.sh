#!/usr/bin/env bash
# Paper-preset throughput on this machine's GPU (≤ 8 min), twice:
#   1. the model and the device alone (synthetic batches): training images/s and inference ms/image at 512 px;
#   2. the same steps through the trainer's DataLoader from films: GPU_CHECK_DATA=DIR (an RSNA-layout folder, e.g.
#      data/real-dev/train), else 64 native-size phantoms made in a scratch folder; adds the share of the time spent
#      waiting for data, the time to the first step and the peak GPU memory.
# Each prints the projected time of one 12,611-image RSNA epoch. Extra arguments go to both, e.g. on a CPU:
#   scripts/gpu-check.sh --steps 1 --warmup 0 --batch 1 --infer-batches 1
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
timeout 180 "$PY" -m ml.gpu_check --preset paper "$@"
if [ -n "${GPU_CHECK_DATA:-}" ]; then
  exec timeout 300 "$PY" -m ml.gpu_check --preset paper --data "$GPU_CHECK_DATA" "$@"
fi
exec timeout 300 "$PY" -m ml.gpu_check --preset paper --phantoms 64 "$@"
