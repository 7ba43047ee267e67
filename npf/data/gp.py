"""``gp``: Gaussian random fields generated from a seed, needing no download.

Each raster is a draw of a zero-mean, unit-variance stationary Gaussian process
on an H x W pixel grid (RBF or Matern-5/2 covariance) plus white observation
noise. Length scales (in pixels) are drawn per raster from ``n_length_scales``
evenly spaced values in ``length_scale_range``; the true kernel, length scale
and noise are kept in ``meta`` so that the exact GP posterior (simple kriging,
the Bayes-optimal predictor) can be computed as an oracle.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch

from npf.data.base import GridDataset
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
        meta={
            "length_scale": length_scales,
            "kernel": kernel,
            "noise_std": noise_std,
        },
    )


def load(
    data_dir: Path | None = None,
    n_train: int = 2048,
    n_test: int = 256,
    seed: int = 0,
    **options,
) -> tuple[GridDataset, GridDataset]:
    """Train and test fields, generated with independent seeds (``data_dir`` unused)."""
    del data_dir
    train = generate(n_train, seed=seed * 2 + 1, **options)
    test = generate(n_test, seed=seed * 2 + 2, **options)
    return train, test
