"""Shared fixtures: small data the tests make themselves."""

from __future__ import annotations

from pathlib import Path

import pytest

from npf import REPO_ROOT
from npf.data import load_splits
from npf.data.base import Splits

SHARED_DATA = REPO_ROOT.parent / "shared" / "data"


@pytest.fixture(scope="session")
def tiny_gp() -> Splits:
    """A small, learnable set of 16 x 16 Gaussian random fields."""
    return load_splits("gp", n_train=160, n_test=16, size=16, length_scale_range=(3.0, 5.0))


@pytest.fixture
def shared_data() -> Path:
    """The real data sets beside the repository; skips the test when absent."""
    if not SHARED_DATA.is_dir():
        pytest.skip(f"real data not present at {SHARED_DATA} (only on the project's machines)")
    return SHARED_DATA
