"""The in-memory raster data set every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import torch

from npf.scaling import ValueScaling


class DatasetNotFoundError(FileNotFoundError):
    """A data set is not laid out in the data directory."""


class CorruptFileError(ValueError):
    """A data file exists but cannot be read or holds invalid content."""


class BatchSource(Protocol):
    """Draws new training rasters on demand (e.g. Gaussian random fields)."""

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` rasters (n, C, H, W) and their validity mask (n, 1, H, W)."""
        ...


@dataclass
class GridDataset:
    """N rasters of C channels on an H x W grid, with a per-pixel validity mask.

    Attributes:
        name: registry key of the data set.
        values: float32 (N, C, H, W) in physical units (``units``); invalid
            pixels hold NaN.
        valid: bool (N, 1, H, W); false for nodata, NaN or masked pixels.
        scaling: how values are scaled for the model.
        units: physical unit of the values (e.g. "m" or "intensity").
        meta: per-image arrays of length N (e.g. ``scene``, ``resolution_m``,
            ``length_scale``) and scalars describing the set.
        source: if set, training draws new rasters from it for every batch
            instead of cycling over ``values`` (whose length still sets the
            epoch's number of rasters).
    """

    name: str
    values: torch.Tensor
    valid: torch.Tensor
    scaling: ValueScaling = field(default_factory=ValueScaling)
    units: str = "intensity"
    meta: dict[str, Any] = field(default_factory=dict)
    source: BatchSource | None = None

    def __post_init__(self) -> None:
        if self.values.ndim != 4:
            raise ValueError(f"values must be (N, C, H, W), got {tuple(self.values.shape)}")
        n, _, h, w = self.values.shape
        if self.valid.shape != (n, 1, h, w) or self.valid.dtype != torch.bool:
            raise ValueError(
                f"valid must be bool (N, 1, H, W) = {(n, 1, h, w)}, got "
                f"{self.valid.dtype} {tuple(self.valid.shape)}"
            )
        finite = torch.isfinite(self.values).all(dim=1, keepdim=True)
        self.valid = self.valid & finite
        self.values = self.values.masked_fill(~self.valid.expand_as(self.values), float("nan"))

    def __len__(self) -> int:
        return self.values.shape[0]

    @property
    def channels(self) -> int:
        return self.values.shape[1]

    @property
    def shape(self) -> tuple[int, int, int]:
        """(C, H, W) of one raster."""
        return tuple(self.values.shape[1:])  # type: ignore[return-value]

    def subset(self, indices: np.ndarray | torch.Tensor | list[int]) -> GridDataset:
        """The rasters at ``indices``, per-image metadata included."""
        index = torch.as_tensor(np.asarray(indices), dtype=torch.long)
        meta = {
            key: (_take(value, index) if _is_per_image(value, len(self)) else value)
            for key, value in self.meta.items()
        }
        return GridDataset(
            self.name,
            self.values[index],
            self.valid[index],
            self.scaling,
            self.units,
            meta,
            self.source,
        )


def _is_per_image(value: Any, n: int) -> bool:
    return isinstance(value, (np.ndarray, torch.Tensor, list)) and len(value) == n


def _take(value: Any, index: torch.Tensor) -> Any:
    if isinstance(value, torch.Tensor):
        return value[index]
    if isinstance(value, np.ndarray):
        return value[index.numpy()]
    return [value[i] for i in index.tolist()]


@dataclass
class Splits:
    """Train / validation / test sets of one data set, and how they were drawn."""

    train: GridDataset
    val: GridDataset
    test: GridDataset
    seed: int
    description: str = ""

    def sizes(self) -> dict[str, int]:
        return {"train": len(self.train), "val": len(self.val), "test": len(self.test)}


def holdout_split(
    dataset: GridDataset, fraction: float, seed: int
) -> tuple[GridDataset, GridDataset]:
    """Split off a seeded random ``fraction`` of ``dataset`` (e.g. for validation)."""
    if not 0.0 < fraction < 1.0:
        raise ValueError(f"hold-out fraction must lie in (0, 1), got {fraction}")
    n = len(dataset)
    n_out = max(1, round(fraction * n))
    if n_out >= n:
        raise ValueError(f"{n} images are too few to hold out {fraction:.0%}")
    order = np.random.default_rng(seed).permutation(n)
    return dataset.subset(np.sort(order[n_out:])), dataset.subset(np.sort(order[:n_out]))
