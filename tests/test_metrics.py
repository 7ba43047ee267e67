import math

import numpy as np
from scipy.stats import norm

from npf import metrics


def test_perfect_predictor_scores_exactly() -> None:
    truth = np.random.default_rng(0).normal(size=(3, 8, 8))
    mask = np.ones_like(truth, dtype=bool)
    assert metrics.rmse(truth, truth, mask) == 0.0
    assert metrics.mae(truth, truth, mask) == 0.0
    std = np.full_like(truth, 0.5)
    # CRPS of N(y, s^2) at y is s (2 phi(0) - 1/sqrt(pi)) = s (sqrt(2) - 1) / sqrt(pi)
    expected = 0.5 * (math.sqrt(2) - 1) / math.sqrt(math.pi)
    assert math.isclose(metrics.crps(truth, std, truth, mask), expected, rel_tol=1e-12)
    assert metrics.coverage(truth, std, truth, mask) == 1.0


def test_hand_computed_values_and_mask() -> None:
    truth = np.array([0.0, 1.0, 2.0, 100.0])
    mean = np.array([1.0, 1.0, 0.0, 0.0])
    std = np.array([1.0, 2.0, 1.0, 1.0])
    mask = np.array([True, True, True, False])
    assert math.isclose(metrics.rmse(mean, truth, mask), math.sqrt(5 / 3))
    assert math.isclose(metrics.mae(mean, truth, mask), 1.0)
    nll = np.mean([0.5 + 0, 0 + math.log(2), 2 + 0]) + 0.5 * math.log(2 * math.pi)
    assert math.isclose(metrics.nll(mean, std, truth, mask), nll)
    # |error| / std = 1, 0, 2: inside the 95 % interval (1.96 std) for the first two
    assert math.isclose(metrics.coverage(mean, std, truth, mask, 0.95), 2 / 3)


def test_crps_matches_numerical_integral() -> None:
    mean, std, y = 0.3, 1.7, -0.4
    grid = np.linspace(-20, 20, 400_001)
    integrand = (norm.cdf(grid, mean, std) - (grid >= y)) ** 2
    numeric = np.trapezoid(integrand, grid)
    closed = metrics.crps(np.array([mean]), np.array([std]), np.array([y]), np.array([True]))
    assert math.isclose(closed, numeric, rel_tol=1e-3)  # the step at y limits the quadrature


def test_calibrated_gaussian_covers_nominal_share() -> None:
    rng = np.random.default_rng(1)
    mean = rng.normal(size=200_000)
    std = rng.uniform(0.5, 2.0, size=mean.shape)
    truth = mean + std * rng.normal(size=mean.shape)
    mask = np.ones_like(mean, dtype=bool)
    for level in (0.5, 0.9, 0.95):
        assert abs(metrics.coverage(mean, std, truth, mask, level) - level) < 0.005


def test_summarise_confidence_interval() -> None:
    summary = metrics.summarise([{"rmse": 1.0}, {"rmse": 2.0}, {"rmse": 3.0}])
    assert summary["rmse"]["mean"] == 2.0
    assert math.isclose(summary["rmse"]["ci95"], 1.96 * 1.0 / math.sqrt(3))
