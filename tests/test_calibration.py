import numpy as np
from scipy.stats import kstest

from npf import metrics
from npf.calibration import (
    RELIABILITY_LEVELS,
    calibration_error,
    observed_coverage,
    pit,
    pit_histogram,
)


def simulate(std_factor: float, n: int = 100_000, seed: int = 0):
    """Truth drawn from N(mean, std^2); the prediction states std * std_factor."""
    rng = np.random.default_rng(seed)
    mean = rng.normal(size=n)
    std = rng.uniform(0.2, 3.0, size=n)
    truth = mean + std * rng.normal(size=n)
    return mean, std * std_factor, truth, np.ones(n, dtype=bool)


def test_calibrated_gaussian_has_uniform_pit_and_nominal_coverage() -> None:
    mean, std, truth, mask = simulate(1.0)
    values = pit(mean, std, truth, mask)
    assert kstest(values, "uniform").pvalue > 0.01
    coverage = observed_coverage(values)
    np.testing.assert_allclose(coverage, RELIABILITY_LEVELS, atol=0.006)
    assert calibration_error(values) < 0.005
    density, edges = pit_histogram(values, bins=10)
    assert edges[0] == 0.0 and edges[-1] == 1.0
    np.testing.assert_allclose(density, 1.0, atol=0.05)


def test_over_and_under_confidence_show_in_coverage_and_pit() -> None:
    mean, std, truth, mask = simulate(0.5)  # too narrow
    narrow = pit(mean, std, truth, mask)
    assert (observed_coverage(narrow) < RELIABILITY_LEVELS - 0.02).all()
    density, _ = pit_histogram(narrow, bins=10)
    assert density[0] > 2 * density[5] and density[-1] > 2 * density[4]  # U shape
    mean, std, truth, mask = simulate(2.0)  # too wide
    wide = pit(mean, std, truth, mask)
    assert (observed_coverage(wide) > RELIABILITY_LEVELS).all()
    density, _ = pit_histogram(wide, bins=10)
    assert density[5] > 2 * density[0]  # hump in the middle
    assert calibration_error(narrow) > 0.1 and calibration_error(wide) > 0.1


def test_coverage_from_pit_agrees_with_metrics_coverage() -> None:
    mean, std, truth, mask = simulate(0.8, n=5000, seed=3)
    mask[::3] = False
    values = pit(mean, std, truth, mask)
    assert values.shape == (mask.sum(),)
    for level in (0.5, 0.9, 0.95):
        expected = metrics.coverage(mean, std, truth, mask, level)
        assert observed_coverage(values, [level])[0] == expected
