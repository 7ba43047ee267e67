"""Calibration of Gaussian predictive distributions: PIT values, reliability, PIT histogram.

A predictive distribution is calibrated when the probability integral
transform ``PIT = Phi((y - mean) / std)`` of the truth is uniform on [0, 1]
(Dawid 1984; Gneiting et al. 2007). Equivalently, its central ``p`` interval
holds the truth a share ``p`` of the time: the central ``p`` interval covers
``y`` exactly when ``|PIT - 1/2| <= p / 2``, so the reliability diagram
(nominal against observed coverage) and the PIT histogram come from the same
PIT values.
"""

from __future__ import annotations

import numpy as np
from scipy.stats import norm

#: Nominal central-interval levels of a reliability diagram.
RELIABILITY_LEVELS = np.round(np.arange(0.05, 1.0, 0.05), 2)


def pit(mean: np.ndarray, std: np.ndarray, truth: np.ndarray, mask: np.ndarray) -> np.ndarray:
    """PIT values of the ``mask``-ed pixels (1-D)."""
    return norm.cdf((truth[mask] - mean[mask]) / std[mask])


def observed_coverage(
    pit_values: np.ndarray, levels: np.ndarray = RELIABILITY_LEVELS
) -> np.ndarray:
    """Share of PIT values inside each central interval of nominal ``levels``."""
    distance = np.abs(np.asarray(pit_values) - 0.5)
    return np.array([np.mean(distance <= level / 2) for level in np.atleast_1d(levels)])


def pit_histogram(pit_values: np.ndarray, bins: int = 20) -> tuple[np.ndarray, np.ndarray]:
    """Density of PIT values on ``bins`` equal bins of [0, 1] (1 everywhere if calibrated)."""
    density, edges = np.histogram(pit_values, bins=bins, range=(0.0, 1.0), density=True)
    return density, edges


def calibration_error(pit_values: np.ndarray, levels: np.ndarray = RELIABILITY_LEVELS) -> float:
    """Mean absolute gap between nominal and observed coverage over ``levels``."""
    return float(np.mean(np.abs(observed_coverage(pit_values, levels) - levels)))
