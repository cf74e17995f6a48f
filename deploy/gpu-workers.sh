#!/usr/bin/env bash
# One Celery worker per GPU on this host, each pinned to its device, on the `gpu` queue only.
# Concurrency 1 and the solo pool: the process that runs the network never forks after touching CUDA
# (celery #3402). CPU work (ingest post-processing, Canny masks, review rules) goes to `cpu` workers.
#   deploy/gpu-workers.sh            # every GPU nvidia-smi lists
#   GPUS="0 2" deploy/gpu-workers.sh # a subset
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PY:-.venv/bin/python}
GPUS=${GPUS:-$(nvidia-smi --query-gpu=index --format=csv,noheader 2>/dev/null | tr '\n' ' ')}
if [ -z "${GPUS// /}" ]; then
  echo "gpu-workers: no GPU found (nvidia-smi lists none); start a cpu worker instead:" >&2
  echo "  $PY -m celery -A boneage worker -Q cpu,gpu -c 1" >&2
  exit 1
fi
pids=()
trap 'kill "${pids[@]}" 2>/dev/null; wait' INT TERM
for gpu in $GPUS; do
  CUDA_VISIBLE_DEVICES=$gpu "$PY" -m celery -A boneage worker -Q gpu -c 1 --pool solo -n "gpu$gpu@%h" &
  pids+=($!)
  echo "gpu-workers: worker gpu$gpu@$(hostname) pinned to GPU $gpu (pid $!)"
done
wait
