"""Kriging predictors on pixel grids.

:func:`simple_kriging` is the exact Gaussian-process posterior predictive when
the covariance (kernel, length scale, variance 1, noise) and the zero mean are
known: on the ``gp`` data set it is the Bayes-optimal oracle.
"""

from __future__ import annotations

import numpy as np
from scipy.linalg import cho_factor, cho_solve

from npf.kernels import covariance, get_kernel, grid_points


def simple_kriging(
    values: np.ndarray,
    context_mask: np.ndarray,
    kernel: str,
    length_scale: float,
    noise_std: float,
    variance: float = 1.0,
) -> tuple[np.ndarray, np.ndarray]:
    """Posterior predictive mean and std of noisy observations on every pixel.

    Args:
        values: (H, W) field; only context pixels are read.
        context_mask: bool (H, W).
        kernel, length_scale, variance: the true zero-mean covariance.
        noise_std: std of the white observation noise (on context and targets).

    Returns:
        mean and std, each (H, W).
    """
    height, width = values.shape
    points = grid_points(height, width)
    flat_mask = context_mask.ravel()
    kernel_fn = get_kernel(kernel)
    prior_var = variance + noise_std**2
    if not flat_mask.any():
        return np.zeros((height, width)), np.full((height, width), np.sqrt(prior_var))
    observed = points[flat_mask]
    k_cc = variance * covariance(kernel_fn, observed, observed, length_scale)
    k_cc[np.diag_indices_from(k_cc)] += noise_std**2 + 1e-9
    k_tc = variance * covariance(kernel_fn, points, observed, length_scale)
    factor = cho_factor(k_cc, lower=True)
    mean = k_tc @ cho_solve(factor, values.ravel()[flat_mask].astype(np.float64))
    explained = np.einsum("ij,ji->i", k_tc, cho_solve(factor, k_tc.T))
    var = np.clip(prior_var - explained, noise_std**2, None)
    return mean.reshape(height, width), np.sqrt(var).reshape(height, width)
