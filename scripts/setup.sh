#!/usr/bin/env bash
# Creates .venv (Python 3.11+) and installs the project with its book and test extras.
# pyproject.toml is the one place the dependencies are declared.
set -euo pipefail
cd "$(dirname "$0")/.."
python=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$python" -m venv .venv
fi
.venv/bin/python -m pip install -q --upgrade pip
.venv/bin/python -m pip install -q -e ".[book,test]"
# Register the venv's kernel under the name the notebooks ask for ("python3").
.venv/bin/python -m ipykernel install --sys-prefix --name python3 >/dev/null
echo "environment ready: $(.venv/bin/python -c 'import torch, npf; print("torch", torch.__version__, "| npf", npf.__version__)')"
