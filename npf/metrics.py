"""Scores of a predictive distribution on the held-out (non-context, valid) pixels.

All functions take arrays of equal shape and a boolean ``mask`` of the pixels
to score; they return plain floats. ``per_image`` variants and
:func:`summarise` give means with a 95 % confidence interval over images.
"""

from __future__ import annotations

import math

import numpy as np
from scipy.stats import norm

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)
INV_SQRT_PI = 1.0 / math.sqrt(math.pi)


def _at(values: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """The masked pixels in float64: a diverged model's means of 1e32 square past
    float32's range, and its sums overflow there too."""
    return np.asarray(values[mask], dtype=np.float64)


def rmse(mean: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Root-mean-square error."""
    return float(np.sqrt(np.mean((_at(mean, mask) - _at(truth, mask)) ** 2)))


def mae(mean: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Mean absolute error."""
    return float(np.mean(np.abs(_at(mean, mask) - _at(truth, mask))))


def nll(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Gaussian negative log-likelihood per pixel (nats)."""
    s = _at(std, mask)
    z = (_at(truth, mask) - _at(mean, mask)) / s
    return float(np.mean(0.5 * z**2 + np.log(s) + HALF_LOG_2PI))


def crps(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> float:
    """Continuous ranked probability score of a Gaussian, closed form (Gneiting 2005)."""
    s = _at(std, mask)
    z = (_at(truth, mask) - _at(mean, mask)) / s
    return float(np.mean(s * (z * (2 * norm.cdf(z) - 1) + 2 * norm.pdf(z) - INV_SQRT_PI)))


def coverage(
    mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray, level: float = 0.95
) -> float:
    """Share of pixels inside the central ``level`` interval of the Gaussian."""
    half_width = norm.ppf(0.5 + level / 2) * _at(std, mask)
    return float(np.mean(np.abs(_at(truth, mask) - _at(mean, mask)) <= half_width))


def score(
    mean: np.ndarray, std: np.ndarray | None, truth: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """RMSE and MAE, and for probabilistic predictions NLL, CRPS and 95 % coverage."""
    result = {"rmse": rmse(mean, truth, mask), "mae": mae(mean, truth, mask)}
    if std is not None:
        result |= {
            "nll": nll(mean, std, truth, mask),
            "crps": crps(mean, std, truth, mask),
            "coverage95": coverage(mean, std, truth, mask, 0.95),
            "mean_std": float(np.mean(_at(std, mask))),
        }
    return result


def summarise(per_image: list[dict[str, float]]) -> dict[str, dict[str, float]]:
    """Mean and 95 % normal confidence half-width over images, per metric."""
    summary: dict[str, dict[str, float]] = {}
    for key in per_image[0]:
        values = np.array([scores[key] for scores in per_image])
        half_width = 1.96 * values.std(ddof=1) / np.sqrt(len(values)) if len(values) > 1 else 0.0
        summary[key] = {"mean": float(values.mean()), "ci95": float(half_width)}
    return summary
