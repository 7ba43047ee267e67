"""What the book stores (pages, executed notebooks, run records) names no machine's paths."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
#: absolute paths of a user's or a build machine's file system, or data beside the checkout
MACHINE_PATH = re.compile(r"(?<![\w.])/(?:work|root|home|tmp|Users)/|\.\./shared/|[A-Z]:\\\\Users")
STORED = sorted(
    path
    for folder in ("book", "notebooks")
    for pattern in ("*.md", "*.ipynb", "*.json")
    for path in (REPO_ROOT / folder).rglob(pattern)
    if "_build" not in path.parts
)


def test_there_are_stored_pages_to_check() -> None:
    assert len(STORED) > 20


@pytest.mark.parametrize("path", STORED, ids=lambda p: str(p.relative_to(REPO_ROOT)))
def test_no_machine_paths(path: Path) -> None:
    text = path.read_text(errors="replace")
    found = sorted({m.group(0) for m in MACHINE_PATH.finditer(text)})
    assert not found, f"{path.relative_to(REPO_ROOT)} names machine paths: {found}"
