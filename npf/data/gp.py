"""``gp``: Gaussian random fields generated from a seed, needing no download.

Each raster is a draw of a zero-mean, unit-variance stationary Gaussian process
on an H x W pixel grid (RBF or Matern-5/2 covariance) plus white observation
noise. Length scales (in pixels) are drawn per raster from ``n_length_scales``
evenly spaced values in ``length_scale_range``; the true kernel, length scale
and noise are kept as the data set's ``truth`` so that the exact GP posterior (simple kriging,
the Bayes-optimal predictor) can be computed as an oracle.

Fields cost nothing to draw, so training need not cycle over a fixed pool: with
``fresh=True`` (the default) the training set is a :class:`FieldSource` that
draws new fields for every batch from the same definition, as the Neural Process
Family trains its GP experiments. Validation and test sets stay fixed pools.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from npf.data.base import GaussianFieldTruth, GridDataset
from npf.kernels import covariance, get_kernel, grid_points

JITTER = 1e-6


def generate(
    n: int,
    size: int = 32,
    kernel: str = "rbf",
    length_scale_range: tuple[float, float] = (2.0, 8.0),
    n_length_scales: int = 16,
    noise_std: float = 0.05,
    seed: int = 0,
) -> GridDataset:
    """Draw ``n`` fields of ``size x size`` pixels."""
    kernel_fn = get_kernel(kernel)
    low, high = length_scale_range
    if not 0 < low <= high:
        raise ValueError(f"length_scale_range must satisfy 0 < low <= high, got {low, high}")
    if n < 1 or size < 2:
        raise ValueError(f"need n >= 1 and size >= 2, got n={n}, size={size}")
    rng = np.random.default_rng(seed)
    levels = np.linspace(low, high, n_length_scales)
    length_scales = rng.choice(levels, size=n)
    points = grid_points(size, size)
    fields = np.empty((n, size * size))
    for level in np.unique(length_scales):
        rows = np.flatnonzero(length_scales == level)
        cov = covariance(kernel_fn, points, points, level) + JITTER * np.eye(len(points))
        chol = np.linalg.cholesky(cov)
        fields[rows] = rng.standard_normal((len(rows), len(points))) @ chol.T
    fields += noise_std * rng.standard_normal(fields.shape)
    values = torch.from_numpy(fields.reshape(n, 1, size, size).astype(np.float32))
    return GridDataset(
        name="gp",
        values=values,
        valid=torch.ones(n, 1, size, size, dtype=torch.bool),
        units="field value",
        truth=GaussianFieldTruth(kernel, length_scales, noise_std),
    )


class FieldSource:
    """Draws batches of new fields from the definition of :func:`generate`.

    Each field's length scale is drawn uniformly from the same evenly spaced
    levels; the Cholesky factor of each level's covariance is computed once, on
    first use, in float64 and kept in float32. All randomness comes from the
    caller's generator, so the same generator state gives the same batch.
    """

    def __init__(
        self,
        size: int = 32,
        kernel: str = "rbf",
        length_scale_range: tuple[float, float] = (2.0, 8.0),
        n_length_scales: int = 16,
        noise_std: float = 0.05,
    ) -> None:
        generate(1, size, kernel, length_scale_range, n_length_scales, noise_std)  # validates
        self.size = size
        self.kernel = kernel
        self.noise_std = noise_std
        self.levels = np.linspace(*length_scale_range, n_length_scales)
        self._factors: dict[int, torch.Tensor] = {}

    def _factor(self, level: int) -> torch.Tensor:
        if level not in self._factors:
            points = grid_points(self.size, self.size)
            cov = covariance(get_kernel(self.kernel), points, points, self.levels[level])
            chol = np.linalg.cholesky(cov + JITTER * np.eye(len(points)))
            self._factors[level] = torch.from_numpy(chol.astype(np.float32))
        return self._factors[level]

    def draw(self, n: int, generator: torch.Generator) -> tuple[torch.Tensor, torch.Tensor]:
        """``n`` new fields (n, 1, size, size) and their all-true validity mask."""
        pixels = self.size * self.size
        levels = torch.randint(len(self.levels), (n,), generator=generator)
        z = torch.randn(n, pixels, generator=generator)
        noise = torch.randn(n, pixels, generator=generator)
        fields = torch.empty(n, pixels)
        for level in levels.unique().tolist():
            rows = levels == level
            fields[rows] = z[rows] @ self._factor(level).T
        fields += self.noise_std * noise
        shape = (n, 1, self.size, self.size)
        return fields.reshape(shape), torch.ones(shape, dtype=torch.bool)


def load(
    data_dir: Path | None = None,
    n_train: int = 2048,
    n_test: int = 256,
    seed: int = 0,
    fresh: bool = True,
    **options,
) -> tuple[GridDataset, GridDataset]:
    """Train and test fields, generated with independent seeds (``data_dir`` unused).

    With ``fresh`` the training pool's ``source`` is a :class:`FieldSource`: the
    trainer then draws new fields for every batch, and the pool itself serves for
    the validation hold-out and the epoch length.
    """
    del data_dir
    train = generate(n_train, seed=seed * 2 + 1, **options)
    test = generate(n_test, seed=seed * 2 + 2, **options)
    if fresh:
        train.source = FieldSource(**options)
    return train, test
