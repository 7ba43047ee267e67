"""Kriging predictors on pixel grids.

:func:`simple_kriging` is the exact Gaussian-process posterior predictive when
the covariance (kernel, length scale, variance 1, noise) and the zero mean are
known: on the ``gp`` data set it is the Bayes-optimal oracle.

:func:`ordinary_kriging` is what a geostatistician does without that
knowledge: estimate an empirical variogram from the context, fit each bounded
model (PyKrige's spherical, exponential or Gaussian, in PyKrige's
parametrisation), keep the one whose leave-one-out kriging errors are smallest
and krige with an unknown constant mean.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
from scipy.linalg import cho_factor, cho_solve, cholesky, solve_triangular
from scipy.optimize import least_squares
from scipy.spatial.distance import cdist, pdist

from npf.context import check_context
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
        values: (H, W) field; only context pixels are read, and must be finite.
        context_mask: bool (H, W); without context the result is the prior.
        kernel, length_scale, variance: the true zero-mean covariance.
        noise_std: std of the white observation noise (on context and targets).

    Returns:
        mean and std, each (H, W).
    """
    check_context(values, context_mask)
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


#: Bounded variogram models of PyKrige, in its parametrisation (partial sill, range, nugget).
VARIOGRAM_MODELS = ("spherical", "exponential", "gaussian")


def variogram_function(model: str) -> Callable[[list[float], np.ndarray], np.ndarray]:
    """PyKrige's semivariance function of ``model``.

    PyKrige is imported here, not at module level, so that the oracle above (and
    the training notebook, through :mod:`npf.predict`) runs where PyKrige is not
    installed, e.g. on the GPU machine.
    """
    from pykrige import variogram_models

    return getattr(variogram_models, f"{model}_variogram_model")


#: Smallest nugget, relative to the largest binned semivariance, per model. The
#: Gaussian model's covariance matrix is numerically singular without a nugget
#: (near-zero fitted nuggets gave kriging weights that oscillate and a
#: per-pixel NLL in the hundreds on ``gp`` fields), so it gets a 0.1 % floor.
NUGGET_FLOOR = {"spherical": 1e-6, "exponential": 1e-6, "gaussian": 1e-3}
#: Relative closeness to a bound at which a fitted parameter is flagged.
BOUND_TOLERANCE = 1e-3


@dataclass(frozen=True)
class EmpiricalVariogram:
    """Matheron's binned semivariogram: mean distance, semivariance and pair count per bin.

    ``variance`` is the sample variance of the values that entered.
    """

    lags: np.ndarray
    semivariance: np.ndarray
    pairs: np.ndarray
    max_lag: float
    variance: float


def empirical_variogram(
    points: np.ndarray,
    values: np.ndarray,
    lag_width: float = 1.0,
    max_points: int = 2000,
    seed: int = 0,
) -> EmpiricalVariogram:
    """Bin half squared differences of all pairs up to half the largest distance.

    At most ``max_points`` points (a seeded random subset) enter, which caps the
    cost at ``max_points**2 / 2`` pairs; empty bins are dropped. ``values`` must
    be finite.
    """
    if not np.isfinite(values).all():
        raise ValueError(
            f"{int((~np.isfinite(values)).sum())} of {len(values)} values are NaN or infinite; "
            "a variogram needs finite values (leave missing data out)"
        )
    if len(points) > max_points:
        keep = np.random.default_rng(seed).choice(len(points), max_points, replace=False)
        points, values = points[keep], values[keep]
    distance = pdist(points)
    half_squared = 0.5 * pdist(values[:, None], metric="sqeuclidean")
    max_lag = 0.5 * float(distance.max()) if distance.size else 0.0
    in_range = distance <= max_lag
    distance, half_squared = distance[in_range], half_squared[in_range]
    bins = np.floor(distance / lag_width + 0.5).astype(np.intp)
    pairs = np.bincount(bins)
    distance_sum = np.bincount(bins, weights=distance)
    gamma_sum = np.bincount(bins, weights=half_squared)
    filled = pairs > 0
    return EmpiricalVariogram(
        lags=distance_sum[filled] / pairs[filled],
        semivariance=gamma_sum[filled] / pairs[filled],
        pairs=pairs[filled],
        max_lag=max_lag,
        variance=float(np.var(values)),
    )


@dataclass(frozen=True)
class VariogramFit:
    """A fitted bounded variogram ``nugget + psill * shape(d / range)`` for d > 0.

    ``at_bounds`` names the parameters the fit pushed onto a bound (e.g.
    ``"range_upper"``: no sill reached within the lags, a trend or a too small
    window; ``"psill_lower"``: no spatial structure), or ``"too_few_pairs"``
    (fewer than 3 lag classes: a pure nugget of the sample variance is used) or
    ``"constant_field"`` (all values equal).
    """

    model: str
    psill: float
    range: float
    nugget: float
    cost: float = 0.0
    at_bounds: tuple[str, ...] = ()

    @property
    def sill(self) -> float:
        return self.psill + self.nugget

    @property
    def parameters(self) -> dict[str, float]:
        """PyKrige's ``variogram_parameters`` for this fit."""
        return {"psill": self.psill, "range": self.range, "nugget": self.nugget}

    def semivariance(self, distance: np.ndarray) -> np.ndarray:
        """gamma(d), zero at d = 0."""
        gamma = variogram_function(self.model)([self.psill, self.range, self.nugget], distance)
        return np.where(distance > 0, gamma, 0.0)

    def covariance(self, distance: np.ndarray) -> np.ndarray:
        """C(d) = sill - gamma(d); C(0) = sill includes the nugget."""
        return self.sill - self.semivariance(distance)


def fit_variograms(
    empirical: EmpiricalVariogram, models: tuple[str, ...] = tuple(VARIOGRAM_MODELS)
) -> list[VariogramFit]:
    """Fit each model by Cressie's weighted least squares with bounds: one fit per model.

    Minimises ``sum_j N_j (gamma_hat_j / gamma(h_j) - 1)^2`` (Cressie 1985),
    which weights well-populated, short lags most, with
    ``scipy.optimize.least_squares`` from three starting ranges, keeping the
    lowest cost. Bounds, with ``g`` the largest binned semivariance: psill in
    [1e-6 g, 10 g], range in [first lag, 3 max_lag] (a shorter range is
    invisible in the lags), nugget in [``NUGGET_FLOOR`` g, g] (the floor keeps
    the kriging system positive definite; a nugget on it is not flagged).
    Degenerate contexts give a single fit (see :class:`VariogramFit`).
    """
    unknown = set(models) - set(VARIOGRAM_MODELS)
    if unknown:
        raise ValueError(
            f"unknown variogram models {sorted(unknown)}; valid: {list(VARIOGRAM_MODELS)}"
        )
    if empirical.variance <= 0:
        return [VariogramFit(models[0], 0.0, 1.0, 1e-12, at_bounds=("constant_field",))]
    if empirical.lags.size < 3:
        nugget = empirical.variance
        return [VariogramFit(models[0], 1e-6 * nugget, 1.0, nugget, at_bounds=("too_few_pairs",))]
    top = float(empirical.semivariance.max())
    weights = np.sqrt(empirical.pairs)
    fits = []
    for model in models:
        function = variogram_function(model)
        lower = np.array([1e-6 * top, empirical.lags[0], NUGGET_FLOOR[model] * top])
        upper = np.array([10 * top, 3 * empirical.max_lag, top])

        def residuals(params: np.ndarray, function=function) -> np.ndarray:
            return weights * (empirical.semivariance / function(params, empirical.lags) - 1.0)

        starts = []
        for start_range in (0.25, 0.5, 1.0):
            start = np.clip([0.9 * top, start_range * empirical.max_lag, 0.1 * top], lower, upper)
            starts.append(least_squares(residuals, start, bounds=(lower, upper)))
        result = min(starts, key=lambda result: result.cost)
        params = result.x
        flags = tuple(
            f"{name}_{side}"
            for name, value, low, high, sides in zip(
                ("psill", "range", "nugget"),
                params,
                lower,
                upper,
                (("lower", "upper"), ("lower", "upper"), ("upper",)),
                strict=True,
            )
            for side in sides
            if np.isclose(value, low if side == "lower" else high, rtol=BOUND_TOLERANCE, atol=0)
        )
        fits.append(VariogramFit(model, *map(float, params), float(result.cost), flags))
    return fits


def fit_variogram(
    empirical: EmpiricalVariogram, models: tuple[str, ...] = tuple(VARIOGRAM_MODELS)
) -> VariogramFit:
    """The best of :func:`fit_variograms` by the fit to the lags alone.

    Fits with no parameter on a bound are preferred; among those the lowest cost
    wins. :func:`select_variogram` chooses by the kriging errors instead.
    """
    return min(fit_variograms(empirical, models), key=lambda fit: (bool(fit.at_bounds), fit.cost))


def leave_one_out_errors(
    observed: np.ndarray, z: np.ndarray, variogram: VariogramFit
) -> np.ndarray:
    """Ordinary-kriging error at each point when it is predicted from all the others.

    Dubrule's (1983) closed form: with A the ordinary-kriging matrix (covariances
    bordered by ones) and b = (z, 0), the error at point i is
    ``(A^-1 b)_i / (A^-1)_ii``, so one inversion gives all n errors.
    """
    n = len(z)
    system = np.ones((n + 1, n + 1))
    system[:n, :n] = variogram.covariance(cdist(observed, observed))
    system[n, n] = 0.0
    inverse = np.linalg.inv(system)
    weights = inverse[:n, :n] @ z
    return weights / np.diag(inverse)[:n]


#: Context points on which :func:`select_variogram` cross-validates (a seeded subset beyond).
SELECTION_POINTS = 512


def select_variogram(
    observed: np.ndarray,
    z: np.ndarray,
    models: tuple[str, ...] = tuple(VARIOGRAM_MODELS),
    max_points: int = SELECTION_POINTS,
    seed: int = 0,
) -> VariogramFit:
    """Fit every model to the empirical variogram and keep the one that kriges best.

    "Best" is the smallest leave-one-out mean squared error of ordinary kriging
    (:func:`leave_one_out_errors`) on at most ``max_points`` context points (a
    seeded subset), the classical cross-validation check of a variogram. The
    fit to the lags alone (:func:`fit_variogram`) can prefer a model that fits
    the long lags and misses the short ones that kriging relies on: on DEM tiles,
    whose semivariance grows without a sill, it chose Gaussian fits with nuggets
    of about 75 m std, and kriging was worse than nearest-neighbour
    interpolation. Bound flags stay on the fit as diagnostics.
    """
    fits = fit_variograms(empirical_variogram(observed, z), models)
    if len(fits) == 1 or len(z) < 3:
        return fits[0]
    if len(z) > max_points:
        keep = np.random.default_rng(seed).choice(len(z), max_points, replace=False)
        observed, z = observed[keep], z[keep]

    def mean_squared_error(fit: VariogramFit) -> float:
        try:
            errors = leave_one_out_errors(observed, z, fit)
        except np.linalg.LinAlgError:
            return float("inf")
        return float(np.mean(errors**2)) if np.isfinite(errors).all() else float("inf")

    return min(fits, key=mean_squared_error)


def ordinary_kriging(
    values: np.ndarray,
    context_mask: np.ndarray,
    variogram: VariogramFit | None = None,
    n_closest: int | None = None,
    chunk_size: int = 4096,
) -> tuple[np.ndarray, np.ndarray, VariogramFit]:
    """Ordinary kriging of the context pixels onto every pixel, with kriging std.

    The variogram is fitted to the context and chosen by cross-validation
    (:func:`select_variogram`) unless given. With ``n_closest`` each pixel uses its
    nearest context points only, through PyKrige's moving-window solver
    (``OrdinaryKriging.execute(..., n_closest_points=n_closest, backend="C")``).
    Without it the global system is solved here, in covariance form with one
    Cholesky factorisation and the targets streamed in chunks: PyKrige's
    global solver inverts the (n+1)^2 matrix at every ``execute`` call and, in
    its vectorized backend, holds an (m, n+1) array for m targets, which does
    not fit in memory on large grids. Both give the same predictions (tested).

    The kriging variance includes the nugget: it is the variance of a new
    observation at the pixel. Returns mean, std (each (H, W)) and the variogram.
    Context values must be finite (:func:`~npf.context.check_context`).
    """
    check_context(values, context_mask)
    height, width = values.shape
    points = grid_points(height, width)
    flat_mask = context_mask.ravel()
    observed = points[flat_mask]
    z = values.ravel()[flat_mask].astype(np.float64)
    if z.size < 2:
        raise ValueError(f"ordinary kriging needs at least 2 context points, got {z.size}")
    if variogram is None:
        variogram = select_variogram(observed, z)
    if n_closest is not None:
        from pykrige.ok import OrdinaryKriging

        solver = OrdinaryKriging(
            observed[:, 1],
            observed[:, 0],
            z,
            variogram_model=variogram.model,
            variogram_parameters=variogram.parameters,
        )
        mean, var = solver.execute(
            "grid",
            np.arange(width, dtype=np.float64),
            np.arange(height, dtype=np.float64),
            backend="C",
            n_closest_points=min(n_closest, z.size),
        )
        return np.asarray(mean), np.sqrt(np.clip(np.asarray(var), 0.0, None)), variogram
    mean, var = _global_ordinary_kriging(observed, z, points, variogram, chunk_size)
    return mean.reshape(height, width), np.sqrt(var).reshape(height, width), variogram


def _global_ordinary_kriging(
    observed: np.ndarray,
    z: np.ndarray,
    targets: np.ndarray,
    variogram: VariogramFit,
    chunk_size: int,
) -> tuple[np.ndarray, np.ndarray]:
    """Ordinary kriging as simple kriging about the GLS mean, plus its uncertainty.

    With K the context covariance, k the target one and 1 a vector of ones:
    mean = m + k' K^-1 (z - m 1) with m = 1' K^-1 z / 1' K^-1 1, and
    var = C(0) - k' K^-1 k + (1 - 1' K^-1 k)^2 / 1' K^-1 1.
    """
    chol = cholesky(variogram.covariance(cdist(observed, observed)), lower=True)
    whitened_ones = solve_triangular(chol, np.ones_like(z), lower=True)
    whitened_z = solve_triangular(chol, z, lower=True)
    ones_precision = whitened_ones @ whitened_ones
    gls_mean = (whitened_ones @ whitened_z) / ones_precision
    whitened_residual = whitened_z - gls_mean * whitened_ones
    mean = np.empty(len(targets))
    var = np.empty(len(targets))
    for start in range(0, len(targets), chunk_size):
        chunk = slice(start, start + chunk_size)
        cross = variogram.covariance(cdist(targets[chunk], observed))
        whitened_cross = solve_triangular(chol, cross.T, lower=True)
        mean[chunk] = gls_mean + whitened_residual @ whitened_cross
        explained = np.einsum("ij,ij->j", whitened_cross, whitened_cross)
        mean_uncertainty = (1.0 - whitened_ones @ whitened_cross) ** 2 / ones_precision
        var[chunk] = variogram.sill - explained + mean_uncertainty
    return mean, np.clip(var, 0.0, None)
