"""Stationary isotropic covariance functions on pixel grids (unit variance)."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
from scipy.spatial.distance import cdist

Kernel = Callable[[np.ndarray, float], np.ndarray]


def rbf(distance: np.ndarray, length_scale: float) -> np.ndarray:
    """Squared-exponential covariance exp(-d^2 / (2 l^2))."""
    return np.exp(-0.5 * (distance / length_scale) ** 2)


def matern52(distance: np.ndarray, length_scale: float) -> np.ndarray:
    """Matern covariance of smoothness 5/2."""
    r = np.sqrt(5.0) * distance / length_scale
    return (1.0 + r + r**2 / 3.0) * np.exp(-r)


KERNELS: dict[str, Kernel] = {"rbf": rbf, "matern52": matern52}


def get_kernel(name: str) -> Kernel:
    """Look a kernel up by name, with the valid names in the error."""
    try:
        return KERNELS[name]
    except KeyError:
        raise ValueError(f"unknown kernel {name!r}; valid kernels: {sorted(KERNELS)}") from None


def grid_points(height: int, width: int) -> np.ndarray:
    """(H*W, 2) pixel coordinates (row, column) in row-major order."""
    rows, cols = np.meshgrid(np.arange(height), np.arange(width), indexing="ij")
    return np.stack([rows.ravel(), cols.ravel()], axis=1).astype(np.float64)


def covariance(kernel: Kernel, a: np.ndarray, b: np.ndarray, length_scale: float) -> np.ndarray:
    """Covariance matrix between point sets ``a`` (n, 2) and ``b`` (m, 2)."""
    return kernel(cdist(a, b), length_scale)
