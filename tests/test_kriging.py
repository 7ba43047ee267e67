import math

import numpy as np
import pytest
import torch
from pykrige.ok import OrdinaryKriging

from npf.data.gp import generate
from npf.kernels import grid_points
from npf.kriging import (
    VARIOGRAM_MODELS,
    VariogramFit,
    empirical_variogram,
    fit_variogram,
    leave_one_out_errors,
    ordinary_kriging,
    select_variogram,
    simple_kriging,
)
from npf.metrics import rmse
from npf.tasks import ContextSampler

# PyKrige's Gaussian model is psill (1 - exp(-d^2 / (4 r / 7)^2)); an RBF kernel of
# length scale l, exp(-d^2 / (2 l^2)), is that model with range r = 7 sqrt(2) l / 4.
RBF_TO_GAUSSIAN_RANGE = 7 * math.sqrt(2) / 4


def contexts(dataset, fraction: float, seed: int = 0) -> np.ndarray:
    sampler = ContextSampler.fixed(fraction)
    return sampler(dataset.valid, torch.Generator().manual_seed(seed))[:, 0].numpy()


@pytest.mark.parametrize("model", list(VARIOGRAM_MODELS))
def test_global_solver_matches_pykrige(model: str) -> None:
    field = generate(1, size=20, seed=3)
    values = field.values[0, 0].numpy()
    context = contexts(field, 0.2)[0]
    variogram = VariogramFit(model, psill=0.9, range=9.0, nugget=0.02)
    mean, std, _ = ordinary_kriging(values, context, variogram, chunk_size=50)
    rows, cols = np.nonzero(context)
    reference = OrdinaryKriging(
        cols.astype(float),
        rows.astype(float),
        values[rows, cols],
        variogram_model=model,
        variogram_parameters=variogram.parameters,
    )
    ref_mean, ref_var = reference.execute("grid", np.arange(20.0), np.arange(20.0))
    np.testing.assert_allclose(mean, ref_mean, atol=1e-9)
    np.testing.assert_allclose(std**2, np.clip(ref_var, 0, None), atol=1e-9)
    # a neighbourhood holding every context point is the global solution
    local_mean, local_std, _ = ordinary_kriging(values, context, variogram, n_closest=1000)
    np.testing.assert_allclose(local_mean, mean, atol=1e-9)
    np.testing.assert_allclose(local_std, std, atol=1e-6)


def test_interpolates_context_exactly_and_std_grows_away_from_it() -> None:
    field = generate(1, size=16, seed=1)
    values = field.values[0, 0].numpy()
    context = contexts(field, 0.1)[0]
    mean, std, _ = ordinary_kriging(values, context, VariogramFit("exponential", 1.0, 10.0, 0.01))
    np.testing.assert_allclose(mean[context], values[context], atol=1e-6)
    assert std[context].max() < 1e-6
    assert std[~context].min() > 0.1  # at least the nugget's std


def test_fit_recovers_a_known_gaussian_field() -> None:
    """On RBF fields of length scale 4: range and sill near the truth, RMSE near the oracle's."""
    length_scale = 4.0
    fields = generate(8, size=32, length_scale_range=(length_scale,) * 2, n_length_scales=1)
    masks = contexts(fields, 0.25)
    points = grid_points(32, 32)
    ranges, sills, rmse_ratios = [], [], []
    for values, context in zip(fields.values[:, 0].numpy(), masks, strict=True):
        empirical = empirical_variogram(points[context.ravel()], values[context])
        gaussian = fit_variogram(empirical, ("gaussian",))
        ranges.append(gaussian.range / (RBF_TO_GAUSSIAN_RANGE * length_scale))
        sills.append(gaussian.sill)
        mean, _, _ = ordinary_kriging(values, context)
        oracle, _ = simple_kriging(values, context, "rbf", length_scale, fields.truth.noise_std)
        rmse_ratios.append(rmse(mean, values, ~context) / rmse(oracle, values, ~context))
    # single realisations scatter (a field's own variance is not 1): medians over 8 fields
    assert abs(np.median(ranges) - 1) < 0.15
    assert abs(np.median(sills) - (1 + 0.05**2)) < 0.25
    assert 1.0 <= np.median(rmse_ratios) < 1.10


def test_fits_on_bounds_are_flagged() -> None:
    rows, cols = np.mgrid[0:32, 0:32]
    context = np.random.default_rng(0).random((32, 32)) < 0.3
    points = grid_points(32, 32)[context.ravel()]
    # a plane: semivariance grows as d^2 and never levels off within the lags
    plane = (3.0 * rows + 2.0 * cols).astype(float)
    trend = fit_variogram(empirical_variogram(points, plane[context]))
    assert "range_upper" in trend.at_bounds or "psill_upper" in trend.at_bounds
    # white noise: no spatial structure
    noise = np.random.default_rng(1).normal(size=(32, 32))
    flat = fit_variogram(empirical_variogram(points, noise[context]))
    assert {"psill_lower", "range_lower"} & set(flat.at_bounds)
    assert math.isclose(flat.sill, 1.0, rel_tol=0.2)


def test_degenerate_contexts() -> None:
    constant = np.full((8, 8), 5.0)
    context = np.zeros((8, 8), dtype=bool)
    context[::3, ::3] = True
    mean, std, fit = ordinary_kriging(constant, context)
    assert fit.at_bounds == ("constant_field",)
    np.testing.assert_allclose(mean, 5.0)
    assert std.max() < 1e-3
    two = np.zeros((8, 8), dtype=bool)
    two[0, 0] = two[7, 7] = True
    _, _, fit = ordinary_kriging(np.arange(64.0).reshape(8, 8), two)
    assert fit.at_bounds == ("too_few_pairs",)
    one = np.zeros((8, 8), dtype=bool)
    one[3, 3] = True
    with pytest.raises(ValueError, match="at least 2 context points"):
        ordinary_kriging(constant, one)
    with pytest.raises(ValueError, match="unknown variogram models"):
        fit_variogram(empirical_variogram(grid_points(8, 8), np.arange(64.0)), ("cubic",))


def test_leave_one_out_errors_match_kriging_without_the_point() -> None:
    rng = np.random.default_rng(0)
    observed = rng.uniform(0, 20, size=(25, 2))
    z = np.sin(observed[:, 0] / 4) + 0.1 * rng.normal(size=25)
    fit = VariogramFit("exponential", 1.0, 8.0, 0.01)
    errors = leave_one_out_errors(observed, z, fit)
    for i in (0, 7, 24):
        others = np.arange(25) != i
        kriging = OrdinaryKriging(
            observed[others, 1],
            observed[others, 0],
            z[others],
            variogram_model=fit.model,
            variogram_parameters=fit.parameters,
        )
        mean, _ = kriging.execute("points", observed[i : i + 1, 1], observed[i : i + 1, 0])
        assert errors[i] == pytest.approx(z[i] - float(mean[0]), rel=1e-6, abs=1e-9)


def rough_surface_with_trend(seed: int, size: int = 48) -> np.ndarray:
    """Terrain-like: a Brownian sheet (rough at short lags, no sill) on a plane."""
    rng = np.random.default_rng(seed)
    sheet = np.cumsum(np.cumsum(rng.normal(size=(size, size)), 0), 1) / 10
    return sheet + 0.8 * np.arange(size)[:, None]


@pytest.mark.parametrize("seed", [0, 1])
def test_selection_by_cross_validation_beats_the_fit_to_the_lags_on_rough_terrain(
    seed: int,
) -> None:
    """The lags alone favour a Gaussian fit with a large nugget that smooths the surface
    (as on DEM tiles); leave-one-out selection keeps a model that kriges well."""
    surface = rough_surface_with_trend(seed)
    context = np.random.default_rng(seed).random(surface.shape) < 0.15
    observed, z = grid_points(*surface.shape)[context.ravel()], surface[context]
    by_lags = fit_variogram(empirical_variogram(observed, z))
    chosen = select_variogram(observed, z)
    assert by_lags.model == "gaussian" and chosen.model != "gaussian"
    errors = {
        name: rmse(ordinary_kriging(surface, context, fit)[0], surface, ~context)
        for name, fit in (("lags", by_lags), ("chosen", chosen))
    }
    assert errors["chosen"] < 0.75 * errors["lags"]
    # and ordinary_kriging chooses that way by default
    _, _, fit = ordinary_kriging(surface, context)
    assert fit == chosen
