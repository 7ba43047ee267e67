"""The committed notebooks hold no absolute paths of the machine that executed them."""

from __future__ import annotations

import json
import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from npf import REPO_ROOT

_START, _END = r"(?<![\w.~-])", r"(?![\w.-])"  # not inside a relative path like .venv/lib
ABSOLUTE = re.compile(
    "|".join(
        [
            _START + r"/(?:work|home|tmp|root|Users|var/folders|private/var)/",
            _START + r"/[^\s\"'\\]*/(?:site|dist)-packages",
            *(_START + re.escape(str(path)) + _END for path in (REPO_ROOT, Path.home())),
        ]
    )
)


def committed_notebooks() -> list[str]:
    listed = subprocess.run(
        ["git", "ls-files", "*.ipynb"], cwd=REPO_ROOT, capture_output=True, text=True, check=True
    ).stdout.split()
    return listed


def strings(node: Any, where: str) -> Iterator[tuple[str, str]]:
    """Every string in a notebook's JSON with where it is, skipping base64 images."""
    if isinstance(node, str):
        yield where, node
    elif isinstance(node, list):
        for i, item in enumerate(node):
            yield from strings(item, f"{where}[{i}]")
    elif isinstance(node, dict):
        for key, value in node.items():
            if not key.startswith("image/"):
                yield from strings(value, f"{where}.{key}")


def test_the_notebooks_are_listed() -> None:
    notebooks = committed_notebooks()
    assert {"notebooks/train.ipynb", "notebooks/evaluate.ipynb"} <= set(notebooks)


@pytest.mark.parametrize("notebook", committed_notebooks())
def test_no_absolute_machine_paths(notebook: str) -> None:
    content = json.loads((REPO_ROOT / notebook).read_text())
    found = [
        f"{where}: ...{text[max(0, m.start() - 60) : m.end() + 60]}..."
        for where, text in strings(content, "notebook")
        for m in [ABSOLUTE.search(text)]
        if m
    ]
    assert not found, "absolute paths (print them relative to the repository):\n" + "\n".join(found)


@pytest.mark.parametrize(
    ("text", "absolute"),
    [
        ("/work/main/.venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning", True),
        ("wrote summary.json to /home/ci/checkout/runs/gp-evaluation", True),
        ('"output_path": "/tmp/data_exec.ipynb"', True),
        ("/opt/conda/lib/python3.11/site-packages/torch/nn.py", True),
        (".venv/lib/python3.11/site-packages/tqdm/auto.py:21: TqdmWarning", False),
        ("wrote records, figures and best.pt to runs/smoke-test", False),
        ("See https://ipywidgets.readthedocs.io/en/stable/user_install.html", False),
        ("epochs 1-1: 100%|██████████| 58/58 [00:09<00:00, 6.1img/s]", False),
    ],
)
def test_the_path_pattern(text: str, absolute: bool) -> None:
    assert bool(ABSOLUTE.search(text)) == absolute
