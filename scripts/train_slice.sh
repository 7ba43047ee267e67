#!/usr/bin/env bash
# One resumable slice of a study run on this machine's CPU (or GPU), meant for the background:
#   nohup bash scripts/train_slice.sh RUN DATASET [papermill options] > /tmp/RUN.log 2>&1 &
# e.g.  SLICE_SECONDS=6600 nohup bash scripts/train_slice.sh eurosat eurosat \
#         -p optimizer adam > /tmp/eurosat.log 2>&1 &
# It trains book/results/RUN/ (resuming from its last.pt) until the first step past
# SLICE_SECONDS (default 3600), with a mid-epoch last.pt every CHECKPOINT_S (default 600),
# then scores the best checkpoint and stores the executed notebook as book/results/RUN/train.ipynb.
# To end a slice early without losing a step, send SIGTERM to the notebook's kernel
# (`pkill -TERM -f ipykernel_launcher`): training stops after the step under way, writes
# last.pt, and the slice scores and stores its notebook as at the time limit.
# Commit book/results/RUN/ afterwards: the next slice, on any machine, continues from it.
set -euo pipefail
cd "$(dirname "$0")/.."
run=${1:?usage: train_slice.sh RUN DATASET [papermill options]}
dataset=${2:?usage: train_slice.sh RUN DATASET [papermill options]}
shift 2
out=book/results/$run
mkdir -p "$out"
PYTHONUNBUFFERED=1 .venv/bin/papermill notebooks/train.ipynb "$out/train.ipynb" \
  -p dataset "$dataset" -p out_dir "$out" -p resume True \
  -p time_limit_s "${SLICE_SECONDS:-3600}" -p checkpoint_every_s "${CHECKPOINT_S:-600}" "$@"
.venv/bin/python - "$out" <<'PY'
import json, sys
run = json.load(open(f"{sys.argv[1]}/run.json"))
history = json.load(open(f"{sys.argv[1]}/history.json"))["epochs"]
if run["diverged"]:
    print(f"{sys.argv[1]}: {run['diverged']}")
if history:
    last = history[-1]
    print(f"{sys.argv[1]}: {len(history)} epochs, last val loss {last['val_loss']:.2f}, "
          f"best epoch {min(history, key=lambda e: e['val_loss'])['epoch']}, "
          f"{last['seconds']:.0f} s/epoch")
PY
