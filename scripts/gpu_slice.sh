#!/usr/bin/env bash
# One slice (under 10 minutes) of a study run on the lent GPU machine, which keeps nothing
# between calls. Everything the run needs travels in the git-ignored folder .gpu/:
#   .gpu/wheels/        papermill's wheels (../shared/gpu/papermill-wheels.sh .gpu/wheels)
#   .gpu/data/          data sets in a form readable without rasterio
#                       (python -m npf.data export tfasr; fashionmnist/ and eurosat/ as laid out)
#   .gpu/runs/<run>/    the run's last.pt from the previous slice, if any (resume);
#                       <run> is $RUN_NAME, default the data set's name
# The slice trains until SLICE_SECONDS (default 420) would be passed, evaluates the best
# checkpoint, and copies the run's files to $OUT; copy them back into .gpu/runs/<name>/
# before the next slice.
# (Do not pass -p out_dir: the slice sets it from RUN_NAME.)
# usage (on the GPU machine): [RUN_NAME=name] bash scripts/gpu_slice.sh DATASET [papermill options]
#   e.g. RUN_NAME=tfasr-adam bash scripts/gpu_slice.sh tfasr -p optimizer adam
set -euo pipefail
dataset=${1:?usage: gpu_slice.sh DATASET [papermill options]}
shift
out=${OUT:?OUT must name the folder whose files come back}
if ls .gpu/wheels/*.whl >/dev/null 2>&1; then
  python3 -m pip install -q --no-index --no-deps --no-compile --target /tmp/site .gpu/wheels/*.whl
  export PYTHONPATH=/tmp/site:$PWD
else
  export PYTHONPATH=$PWD
fi
export NPF_DATA_DIR=$PWD/.gpu/data PYTHONUNBUFFERED=1
run=.gpu/runs/${RUN_NAME:-$dataset}
mkdir -p "$run"
python3 -m papermill notebooks/train.ipynb "$run/page.ipynb" -k python3 \
  -p dataset "$dataset" -p out_dir "$run" -p resume True \
  -p time_limit_s "${SLICE_SECONDS:-420}" "$@"
for f in page.ipynb last.pt best.pt history.json metrics.json run.json training_curves.png \
  predictions.png; do
  if [ -f "$run/$f" ]; then cp "$run/$f" "$out/"; fi
done
python3 - "$run" <<'PY'
import json, sys
run = json.load(open(f"{sys.argv[1]}/run.json"))
print(f"| dataset | card | epochs | best | s/epoch | wall s |\n|---|---|---:|---:|---:|---:|")
print(f"| {run['dataset']} | {run['environment']['accelerator']} | {run['epochs_trained']} "
      f"| {run['best_epoch']} | {run['median_seconds_per_epoch']:.1f} | {run['wall_time_s']:.0f} |")
PY
