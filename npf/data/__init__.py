"""Data sets by name: each loads as train / validation / test :class:`GridDataset`.

Every loader module exposes ``load(data_dir, seed=..., **options)`` returning
``(train_pool, test)``; the validation set is a seeded hold-out of the pool, drawn
by the module's own ``holdout(pool, fraction, seed)`` where it has one (spatially
grouped for overlapping DEM tiles), else by :func:`holdout_split`.
"""

from __future__ import annotations

import importlib
import os
from pathlib import Path
from typing import Any

import numpy as np

from npf import REPO_ROOT
from npf.data.base import (
    CorruptFileError,
    DatasetNotFoundError,
    GridDataset,
    Splits,
    holdout_split,
)

DATA_DIR_ENV = "NPF_DATA_DIR"

#: registry key -> module holding its ``load`` function
DATASETS: dict[str, str] = {
    "gp": "npf.data.gp",
    "tfasr": "npf.data.dem",
    "fashionmnist": "npf.data.fashionmnist",
    "eurosat": "npf.data.eurosat",
}

__all__ = [
    "DATASETS",
    "CorruptFileError",
    "DatasetNotFoundError",
    "GridDataset",
    "Splits",
    "default_data_dir",
    "load_splits",
]


def default_data_dir() -> Path:
    """``$NPF_DATA_DIR`` if set, else the ``data/`` folder of this repository."""
    if env := os.environ.get(DATA_DIR_ENV):
        return Path(env)
    return REPO_ROOT / "data"


def check_name(name: str) -> None:
    """Raise ``ValueError`` listing the valid names if ``name`` is unknown."""
    if name not in DATASETS:
        raise ValueError(f"unknown dataset {name!r}; valid datasets: {', '.join(DATASETS)}")


def load_splits(
    name: str,
    data_dir: str | Path | None = None,
    val_fraction: float = 0.1,
    seed: int = 0,
    max_train: int | None = None,
    **options: Any,
) -> Splits:
    """Load data set ``name`` and hold out ``val_fraction`` of its training pool.

    ``max_train`` keeps a seeded random subset of that many training rasters
    (for quick CPU runs); validation and test sets are unchanged.
    """
    check_name(name)
    root = Path(data_dir) if data_dir else default_data_dir()
    module = importlib.import_module(DATASETS[name])
    pool, test = module.load(root, seed=seed, **options)
    train, val = getattr(module, "holdout", holdout_split)(pool, val_fraction, seed)
    n_train = len(train)
    if max_train is not None and max_train < n_train:
        keep = np.random.default_rng(seed).choice(n_train, max_train, replace=False)
        train = train.subset(np.sort(keep))
    return Splits(
        train,
        val,
        test,
        seed,
        description=(
            f"{len(train)} train"
            + (f" (seeded subset of {n_train})" if len(train) < n_train else "")
            + f" / {len(val)} validation (seeded {val_fraction:.0%} hold-out, "
            f"seed {seed}) / {len(test)} test"
            + (
                f"; {len(pool) - n_train - len(val)} training tiles overlapping validation "
                "tiles left out"
                if n_train + len(val) < len(pool)
                else ""
            )
        ),
    )
