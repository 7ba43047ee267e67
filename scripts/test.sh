#!/usr/bin/env bash
# The test command: set-up, lint, unit tests, notebooks (nbval) and a warning-free book build.
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/setup.sh
.venv/bin/ruff check .
.venv/bin/ruff format --check .
.venv/bin/pytest --nbval-lax -p no:cacheprovider
.venv/bin/jupyter-book build book -W --keep-going
