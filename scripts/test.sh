#!/usr/bin/env bash
# The test command: set-up, lint, unit tests, notebooks (nbval) and a warning-free book build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
# scipy's multi-threaded OpenBLAS can stall Delaunay triangulations on a loaded 2-core machine;
# one thread for torch too, as the stored notebooks were executed, so their scores repeat exactly
export OPENBLAS_NUM_THREADS=1 OMP_NUM_THREADS=1
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest --nbval -p no:cacheprovider
.venv/bin/jupyter-book build book -W --keep-going
