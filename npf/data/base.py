"""The in-memory raster data set every loader returns."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import Protocol

import numpy as np
import torch
from scipy.optimize import brentq

from npf.kernels import get_kernel
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


@dataclass(frozen=True)
class GaussianFieldTruth:
    """The law a set of fields was drawn from, known exactly (synthetic data).

    Each field is a zero-mean Gaussian process of unit variance with covariance
    ``kernel`` and its own ``length_scale`` (pixels), plus white noise of std
    ``noise_std``; the exact posterior (the oracle) follows from it.
    """

    kernel: str
    length_scale: np.ndarray  # per image
    noise_std: float

    def __post_init__(self) -> None:
        get_kernel(self.kernel)  # unknown names fail here, with the valid ones
        object.__setattr__(self, "length_scale", np.asarray(self.length_scale, dtype=np.float64))

    @property
    def sill(self) -> float:
        """Variance of an observation: the field's 1 plus the noise's."""
        return 1.0 + self.noise_std**2

    def subset(self, index: np.ndarray) -> GaussianFieldTruth:
        return GaussianFieldTruth(self.kernel, self.length_scale[index], self.noise_std)

    def correlation_distance(self, level: float = 0.05) -> np.ndarray:
        """Per image, the distance (px) at which the correlation falls to ``level``.

        For the three variogram models of PyKrige this is what their range means.
        """
        kernel = get_kernel(self.kernel)
        unit = brentq(lambda d: float(kernel(np.array(d), 1.0)) - level, 1e-9, 100.0)
        return unit * self.length_scale


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
        labels: per-image arrays of length N (e.g. ``scene``, ``path``, ``label``).
        pixel_size_m: per image, the ground size of a pixel in metres
            (elevation models), or ``None``.
        truth: the exact law of the values when it is known (``gp``), or ``None``.
        source: if set, training draws new rasters from it for every batch
            instead of cycling over ``values`` (whose length still sets the
            epoch's number of rasters).
    """

    name: str
    values: torch.Tensor
    valid: torch.Tensor
    scaling: ValueScaling = field(default_factory=ValueScaling)
    units: str = "intensity"
    labels: dict[str, np.ndarray] = field(default_factory=dict)
    pixel_size_m: np.ndarray | None = None
    truth: GaussianFieldTruth | None = None
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
        self.labels = {key: np.asarray(value) for key, value in self.labels.items()}
        if self.pixel_size_m is not None:
            self.pixel_size_m = np.asarray(self.pixel_size_m, dtype=np.float64)
        per_image = {**self.labels, "pixel_size_m": self.pixel_size_m}
        if self.truth is not None:
            per_image["truth.length_scale"] = self.truth.length_scale
        for key, value in per_image.items():
            if value is not None and len(value) != n:
                raise ValueError(f"{key} has {len(value)} entries for {n} images")
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
        """The rasters at ``indices``, with their labels, pixel sizes and truth."""
        index = np.asarray(indices, dtype=np.int64)
        return replace(
            self,
            values=self.values[torch.from_numpy(index)],
            valid=self.valid[torch.from_numpy(index)],
            labels={key: value[index] for key, value in self.labels.items()},
            pixel_size_m=None if self.pixel_size_m is None else self.pixel_size_m[index],
            truth=None if self.truth is None else self.truth.subset(index),
        )


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
