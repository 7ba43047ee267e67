#!/usr/bin/env bash
# Builds the study: sets up .venv, runs the gp experiment on the CPU if its results page is
# missing (or with --rerun), and assembles the book into book/_build/html.
# The GPU experiments (tfasr, fashionmnist, eurosat) are run separately: see book/reproduce.md.
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ "${1:-}" = "--rerun" ] || [ ! -f book/results/gp.ipynb ]; then
  # The CPU configuration of the gp study (about 20-30 minutes on 2 cores).
  .venv/bin/papermill notebooks/train.ipynb book/results/gp.ipynb \
    -p dataset gp -p optimizer adam -p epochs 20 -p n_test_images 256 \
    -p out_dir book/results/gp -p resume False
fi
.venv/bin/jupyter-book build book
echo "book: $(pwd)/_build/html/index.html"
