#!/usr/bin/env bash
# Builds the study: sets up .venv, runs the gp experiment on the CPU if its results page is
# missing (or with --rerun: from scratch), and assembles the book into book/_build/html.
# The report's three data sets (tfasr, fashionmnist, eurosat) train for hours each: they run
# separately, in resumable slices (book/reproduce.md).
set -euo pipefail
cd "$(dirname "$0")"
bash scripts/setup.sh
if [ "${1:-}" = "--rerun" ] || [ ! -f book/results/gp.ipynb ]; then
  # The CPU configuration of the gp study: 50 epochs of fresh fields, about half an hour on
  # 2 cores, the learning rate decaying to half (decaying to 0.1x slowed learning too early).
  # An interrupted build resumes from book/results/gp/last.pt; --rerun starts over.
  if [ "${1:-}" = "--rerun" ]; then rm -f book/results/gp/last.pt; fi
  SLICE_SECONDS=${SLICE_SECONDS:-5400} bash scripts/train_slice.sh gp gp \
    -p optimizer adam -p epochs 50 -p lr_decay 0.5 -p n_test_images 256
  .venv/bin/python scripts/results_page.py gp
fi
.venv/bin/jupyter-book build book
echo "book: $(pwd)/_build/html/index.html"
