"""Artificial voids in a raster, filled by competing methods and scored inside the voids.

A study of DEM void filling on real scenes, where the truth is known because the
voids are cut from valid terrain:

1. :func:`make_voids` cuts seeded, irregular blobs (3-60 px across by default) into
   the valid part of a raster until they cover a requested share of it;
2. ``fill_*`` run one method on the raster with the voids removed (NaN):
   :func:`fill_convcnp` (a trained ConvCNP through :mod:`npf.raster`),
   :func:`fill_gdal` (GDAL's inverse-distance fill, :func:`rasterio.fill.fillnodata`),
   :func:`fill_cubic` (Clough-Tocher cubic, :func:`npf.baselines.interpolate`) and
   :func:`fill_kriging` (local ordinary kriging, :func:`npf.kriging.ordinary_kriging`);
3. :func:`score` and :func:`compare` report RMSE, MAE, NLL and 95 % coverage per void
   size class, and seconds per megapixel of raster; :func:`pool` merges runs.

Distances are in pixels: the methods treat pixels as square, also where a
geographic CRS makes them rectangular on the ground.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from itertools import pairwise
from pathlib import Path
from typing import NamedTuple

import numpy as np
import xarray as xr
from rasterio.fill import fillnodata
from scipy.ndimage import (
    binary_dilation,
    binary_erosion,
    binary_fill_holes,
    distance_transform_edt,
    find_objects,
    gaussian_filter,
    label,
)

from npf.baselines import interpolate
from npf.kriging import (
    EmpiricalVariogram,
    VariogramFit,
    empirical_variogram,
    fit_variogram,
    ordinary_kriging,
)
from npf.metrics import coverage, mae, nll, rmse
from npf.raster import DEFAULT_WINDOW, Filler, fill_dataarray
from npf.std_calibration import void_width

#: Edges (px) of the void size classes: equivalent diameters 3-5, 5-10, ..., 40-60.
SIZE_EDGES = (3.0, 5.0, 10.0, 20.0, 40.0, 60.0)
#: Largest share of a raster's valid area that voids may cover.
MAX_SHARE = 0.5
#: Weight of the smooth noise against the elliptic fall-off in a blob's shape.
ROUGHNESS = 0.6
#: Largest length-to-width ratio of a blob's underlying ellipse.
MAX_ELONGATION = 2.5
#: Centres tried for one blob shape before a new shape is drawn.
TRIES_PER_SHAPE = 20
#: Consecutive failed placements after which :func:`make_voids` gives up.
MAX_FAILURES = 2000
#: Variogram models tried for DEM voids. Not the Gaussian one: terrain is rough at short
#: lags, and on DEM crops the Gaussian fits (chosen by ``fit_variogram`` since the others
#: reach no sill within the voids' lags) overshot in voids of 20-40 px and covered only
#: 47-84 % of the truth in their 95 % intervals.
KRIGING_MODELS = ("spherical", "exponential")
#: Scores of :func:`score`, per size class.
METRICS = ("rmse", "mae", "nll", "coverage95")
EIGHT_NEIGHBOURS = np.ones((3, 3), dtype=bool)

Raster = np.ndarray | xr.DataArray


class Fill(NamedTuple):
    """A method's output on a whole raster.

    ``mean``: observed pixels unchanged, the requested voids filled, any other
    missing pixel NaN; ``std``: predictive std on the voids (0 where observed), or
    ``None`` for a method without uncertainty; ``notes``: the method's warnings.
    """

    mean: np.ndarray
    std: np.ndarray | None
    notes: tuple[str, ...] = ()


#: A method as :func:`compare` calls it: ``fill(values with voids as NaN, voids) -> Fill``.
Method = Callable[[np.ndarray, np.ndarray], Fill]


def as_values(data: Raster) -> np.ndarray:
    """A 2-D raster (array or DataArray; a ``band`` of size 1 is dropped) as float64, NaN
    where not finite; raises unless it has a valid pixel."""
    if isinstance(data, xr.DataArray):
        if "band" in data.dims and data.sizes["band"] == 1:
            data = data.isel(band=0)
        data = data.values
    values = np.array(data, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"expected a 2-D raster (H, W), got shape {values.shape}")
    values[~np.isfinite(values)] = np.nan
    if not np.isfinite(values).any():
        raise ValueError("the raster has no valid (finite) pixel")
    return values


@dataclass(frozen=True)
class Voids:
    """Artificial voids cut from the valid pixels of a raster.

    ``blob``: 0 outside voids, else the blob's number (1..n); ``size_class``: -1
    outside voids, else the index in :attr:`classes` of the blob's equivalent
    diameter ``sqrt(4 area / pi)``, listed per blob in ``diameters`` (px).
    Blobs never touch each other (not even diagonally) nor invalid pixels, nor
    the raster's edge: each is a void of its own, surrounded by known terrain.
    """

    blob: np.ndarray
    size_class: np.ndarray
    diameters: np.ndarray
    edges: tuple[float, ...]
    valid_pixels: int

    @property
    def mask(self) -> np.ndarray:
        return self.blob > 0

    @property
    def classes(self) -> tuple[str, ...]:
        return tuple(f"{lo:g}-{hi:g}" for lo, hi in pairwise(self.edges))

    @property
    def share(self) -> float:
        """Void pixels over the raster's valid pixels."""
        return float(self.mask.sum() / self.valid_pixels)

    def apply(self, values: Raster) -> np.ndarray:
        """``values`` as float64 with the voids set to NaN."""
        holed = as_values(values)
        holed[self.mask] = np.nan
        return holed


def blob_shape(diameter: float, rng: np.random.Generator) -> np.ndarray:
    """One irregular blob of about ``diameter`` px equivalent diameter, cropped to its box.

    A randomly oriented ellipse (length-to-width ratio up to ``MAX_ELONGATION``)
    gives a fall-off ``-r^2``; smooth noise (white noise under a Gaussian filter of
    a sixth of the diameter, unit variance, weight ``ROUGHNESS``) makes the outline
    irregular; the ``ceil(pi d^2 / 4)`` highest pixels form the blob, reduced to its
    largest 8-connected part with holes filled.
    """
    elongation = rng.uniform(1.0, MAX_ELONGATION)
    angle = rng.uniform(0.0, math.pi)
    half_axes = 0.5 * diameter * np.array([math.sqrt(elongation), 1.0 / math.sqrt(elongation)])
    side = 2 * math.ceil(0.75 * diameter * math.sqrt(elongation)) + 3
    rows, cols = np.mgrid[:side, :side] - side // 2
    along = cols * math.cos(angle) + rows * math.sin(angle)
    across = -cols * math.sin(angle) + rows * math.cos(angle)
    falloff = (along / half_axes[0]) ** 2 + (across / half_axes[1]) ** 2
    noise = gaussian_filter(rng.standard_normal((side, side)), max(diameter / 6.0, 0.5))
    field = ROUGHNESS * noise / noise.std() - falloff
    area = math.ceil(math.pi * diameter**2 / 4.0)
    shape = field >= np.partition(field.ravel(), -area)[-area]
    parts, count = label(shape, structure=EIGHT_NEIGHBOURS)
    if count > 1:
        shape = parts == np.argmax(np.bincount(parts.ravel())[1:]) + 1
    shape = binary_fill_holes(shape)
    return shape[find_objects(shape.astype(np.int8))[0]]


def placement(weights: np.ndarray, free: np.ndarray) -> np.ndarray:
    """Flat probabilities of drawing each pixel as a blob centre (all 0 when none is free)."""
    probability = (weights * free).ravel()
    total = probability.sum()
    return probability / total if total > 0 else probability


def make_voids(
    values: Raster,
    share: float,
    seed: int = 0,
    diameters: tuple[float, float] = (SIZE_EDGES[0], SIZE_EDGES[-1]),
    edges: tuple[float, ...] = SIZE_EDGES,
    steep: bool = True,
) -> Voids:
    """Cut irregular blobs from the valid pixels of ``values`` until they cover ``share`` of them.

    Diameters d are drawn in ``diameters`` with density proportional to d^-3: blob
    areas A follow a power law A^-2, as gap sizes often do, and every octave of
    diameter holds about the same void area (small voids are many, and each size
    class gets pixels to score). Each blob is shaped by :func:`blob_shape` and placed
    at a centre drawn from the pixels where it may go; with ``steep`` the draw is
    weighted by the local slope (|gradient| per pixel), since SRTM voids gather in
    steep terrain and radar shadows, which also clusters them. A blob keeps one pixel
    of valid terrain between itself, other blobs, invalid pixels and the raster's
    edge. The last blob is shrunk to the remaining area, so the share is met within
    about one smallest blob. The same ``seed`` gives the same voids.
    """
    values = as_values(values)
    if not 0.0 < share <= MAX_SHARE:
        raise ValueError(f"void share must lie in (0, {MAX_SHARE}], got {share}")
    low, high = diameters
    if not 1.0 <= low <= high:
        raise ValueError(f"diameters must satisfy 1 <= min <= max, got {diameters}")
    if list(edges) != sorted(set(edges)) or len(edges) < 2 or edges[0] > low or edges[-1] < high:
        raise ValueError(f"edges {edges} must increase and span the diameters {diameters}")
    valid = np.isfinite(values)
    free = binary_erosion(valid, EIGHT_NEIGHBOURS, border_value=0)
    if not free.any():
        raise ValueError("no valid pixel has 8 valid neighbours: nowhere to cut a void")
    if steep:
        slope = np.hypot(*np.gradient(values))
        weights = np.where(free & np.isfinite(slope), slope, 0.0)
    else:
        weights = free.astype(np.float64)
    if not weights.any():  # a flat raster: uniform placement
        weights = free.astype(np.float64)
    budget = share * valid.sum()
    smallest = math.pi * low**2 / 4.0
    if budget < smallest / 2:
        raise ValueError(
            f"a share of {share:g} of {valid.sum()} valid pixels is {budget:.1f} px, under half "
            f"the smallest blob ({smallest:.1f} px): ask a larger share or smaller diameters"
        )
    rng = np.random.default_rng(seed)
    blob = np.zeros(values.shape, dtype=np.int32)
    found: list[float] = []
    covered, failures = 0, 0
    probability = placement(weights, free)
    while budget - covered >= smallest / 2 and failures < MAX_FAILURES and probability.any():
        remaining_diameter = math.sqrt(4.0 * (budget - covered) / math.pi)
        inverse_square = low**-2 - rng.uniform() * (low**-2 - high**-2)
        diameter = min(inverse_square**-0.5, remaining_diameter)
        shape = blob_shape(max(diameter, low), rng)
        equivalent = math.sqrt(4.0 * shape.sum() / math.pi)
        if not low <= equivalent <= high:
            failures += 1
            continue
        for _ in range(TRIES_PER_SHAPE):
            centre = rng.choice(probability.size, p=probability)
            top = centre // values.shape[1] - shape.shape[0] // 2
            left = centre % values.shape[1] - shape.shape[1] // 2
            box = (slice(top, top + shape.shape[0]), slice(left, left + shape.shape[1]))
            if top < 0 or left < 0 or free[box].shape != shape.shape or not free[box][shape].all():
                failures += 1
                continue
            found.append(equivalent)
            blob[box][shape] = len(found)
            covered += int(shape.sum())
            failures = 0
            # no later void pixel may touch this blob: block it and its 8 neighbours
            grown = (
                slice(top - 1, top + shape.shape[0] + 1),
                slice(left - 1, left + shape.shape[1] + 1),
            )
            free[grown] &= ~binary_dilation(np.pad(shape, 1), EIGHT_NEIGHBOURS)
            probability = placement(weights, free)
            break
    if budget - covered >= smallest / 2:
        raise ValueError(
            f"could place voids on only {covered / valid.sum():.1%} of the valid area, not "
            f"{share:.1%}: too little room for blobs of {low:g}-{high:g} px (ask a smaller share "
            "or smaller diameters)"
        )
    diameters_found = np.array(found)
    classes = np.clip(np.searchsorted(edges, diameters_found, side="right") - 1, 0, len(edges) - 2)
    size_class = np.where(blob > 0, np.concatenate([[-1], classes])[blob], -1).astype(np.int8)
    return Voids(blob, size_class, diameters_found, tuple(map(float, edges)), int(valid.sum()))


def check_where(values: np.ndarray, where: np.ndarray | None) -> np.ndarray:
    """The pixels to fill: ``where`` (bool, only missing pixels) or every missing pixel."""
    missing = np.isnan(values)
    if where is None:
        return missing
    where = np.asarray(where)
    if where.dtype != np.bool_ or where.shape != values.shape:
        raise ValueError(
            f"where must be a bool mask of shape {values.shape}, got {where.dtype} {where.shape}"
        )
    if (where & ~missing).any():
        raise ValueError(
            f"where selects {int((where & ~missing).sum())} observed pixels: only missing (NaN) "
            "pixels can be filled"
        )
    return where


def keep_filled(values: np.ndarray, where: np.ndarray, predicted: np.ndarray) -> np.ndarray:
    """``values`` with ``predicted`` on ``where``."""
    out = values.copy()
    out[where] = predicted[where]
    return out


def fill_gdal(
    values: Raster,
    where: np.ndarray | None = None,
    max_search_distance: float = 100.0,
    smoothing_iterations: int = 0,
) -> Fill:
    """GDAL's fill (``gdal_fillnodata``): inverse-distance weighting of the nearest valid
    pixels found in four cones around each missing pixel, no uncertainty.

    GDAL fills every missing pixel within ``max_search_distance`` px, original nodata
    included; only ``where`` is kept (pixels farther than that stay NaN).
    """
    values = as_values(values)
    where = check_where(values, where)
    valid = np.isfinite(values)
    filled = fillnodata(
        values.copy(),
        mask=valid.astype(np.uint8),
        max_search_distance=max_search_distance,
        smoothing_iterations=smoothing_iterations,
    )
    return Fill(keep_filled(values, where, filled), None)


def void_boxes(where: np.ndarray, margin: int) -> Iterator[tuple[tuple[slice, slice], np.ndarray]]:
    """Each 8-connected void: its bounding box grown by ``margin`` px (clipped to the
    raster) and its mask in that box."""
    parts, _ = label(where, structure=EIGHT_NEIGHBOURS)
    for number, found in enumerate(find_objects(parts), start=1):
        box = tuple(
            slice(max(s.start - margin, 0), min(s.stop + margin, n))
            for s, n in zip(found, where.shape, strict=True)
        )
        yield box, parts[box] == number


def void_contexts(
    values: np.ndarray, where: np.ndarray, margin: int
) -> Iterator[tuple[tuple[slice, slice], np.ndarray, np.ndarray]]:
    """Each void's box (:func:`void_boxes`), its mask and its context there: the valid
    pixels within ``margin`` px of the void. Raises for a void without context."""
    if margin < 1:
        raise ValueError(f"margin must be at least 1 px, got {margin}")
    valid = np.isfinite(values)
    for box, void in void_boxes(where, margin):
        context = valid[box] & (distance_transform_edt(~void) <= margin)
        if not context.any():
            raise ValueError(
                f"a void at rows {box[0].start}-{box[0].stop}, cols {box[1].start}-{box[1].stop} "
                f"has no valid pixel within {margin} px"
            )
        yield box, void, context


def fill_per_void(
    values: np.ndarray,
    where: np.ndarray,
    margin: int,
    predict: Callable[[np.ndarray, np.ndarray], tuple[np.ndarray, np.ndarray | None]],
) -> tuple[np.ndarray, np.ndarray | None]:
    """Fill each void from its context (:func:`void_contexts`): ``predict(box values,
    context mask) -> (mean, std or None)`` on the void's box."""
    mean = values.copy()
    std: np.ndarray | None = None
    for box, void, context in void_contexts(values, where, margin):
        box_mean, box_std = predict(np.where(context, values[box], np.nan), context)
        mean[box][void] = box_mean[void]
        if box_std is not None:
            if std is None:
                std = np.where(np.isfinite(values), 0.0, np.nan)
            std[box][void] = box_std[void]
    return mean, std


def void_variogram(
    values: np.ndarray, where: np.ndarray, margin: int, models: tuple[str, ...] = KRIGING_MODELS
) -> VariogramFit:
    """One variogram for all voids, fitted (:func:`~npf.kriging.fit_variogram` over
    ``models``) to the pairs of pixels within each void's context
    (:func:`void_contexts`), pooled lag by lag.

    Pooled by hand because :func:`~npf.kriging.empirical_variogram` of the contexts of
    all voids at once is dominated by pairs hundreds of pixels apart: on DEM crops its
    fits had nuggets of 200-400 m std where neighbouring pixels differ by about 35 m,
    and kriging smoothed the voids (RMSE 150 m against cubic's 62 m). Per void the
    lags are those the kriging uses; fits void by void, on so few pixels, were unstable
    (95 % coverage 0.6-0.75).
    """
    bins, pairs, lag_sums, gamma_sums, variances, sizes = [], [], [], [], [], []
    max_lag = 0.0
    for box, _, context in void_contexts(values, where, margin):
        local = empirical_variogram(np.argwhere(context).astype(np.float64), values[box][context])
        bins.append(np.floor(local.lags + 0.5).astype(np.intp))  # its bins of unit width
        pairs.append(local.pairs)
        lag_sums.append(local.pairs * local.lags)
        gamma_sums.append(local.pairs * local.semivariance)
        variances.append(local.variance)
        sizes.append(int(context.sum()))
        max_lag = max(max_lag, local.max_lag)
    if not sizes:
        raise ValueError("no void to fit a variogram around")
    bin_of = np.concatenate(bins)
    counts = np.bincount(bin_of, np.concatenate(pairs))
    seen = counts > 0
    pooled = EmpiricalVariogram(
        lags=np.bincount(bin_of, np.concatenate(lag_sums))[seen] / counts[seen],
        semivariance=np.bincount(bin_of, np.concatenate(gamma_sums))[seen] / counts[seen],
        pairs=counts[seen].astype(np.intp),
        max_lag=max_lag,
        variance=float(np.average(variances, weights=sizes)),
    )
    return fit_variogram(pooled, models)


def fill_cubic(values: Raster, where: np.ndarray | None = None, band: int = 3) -> Fill:
    """Clough-Tocher cubic interpolation (:func:`npf.baselines.interpolate`, ``cubic``),
    void by void, from the valid pixels within ``band`` px of the void; no uncertainty.

    Only a band of data points enters each triangulation: a Delaunay triangulation of
    every valid pixel (a million on a megapixel) costs far more and changes nothing
    inside a void, whose interpolant depends on the nearby points only.
    """
    values = as_values(values)
    where = check_where(values, where)
    mean, _ = fill_per_void(
        values, where, band, lambda box, context: (interpolate(box, context, "cubic"), None)
    )
    return Fill(mean, None)


def fill_kriging(
    values: Raster,
    where: np.ndarray | None = None,
    margin: int = 4,
    n_closest: int | None = None,
    variogram: VariogramFit | None = None,
    models: tuple[str, ...] = KRIGING_MODELS,
) -> Fill:
    """Ordinary kriging (:func:`npf.kriging.ordinary_kriging`), void by void, from the
    valid pixels within ``margin`` px of the void, with kriging std.

    The default margin (4 px) and :func:`fill_cubic`'s band (3 px) scored best on five
    training scenes of the DEM data set among 4/8/12 px and 1/3/8 px
    (``benchmarks/results/void-filling-tuning-2026-12-02.json``; within 1 % of each other).
    The variogram is :func:`void_variogram` of ``models`` unless given. ``n_closest`` limits each
    prediction to its nearest pixels (PyKrige's moving window) instead of solving each
    void's whole system.
    """
    values = as_values(values)
    where = check_where(values, where)
    if variogram is None and where.any():
        variogram = void_variogram(values, where, margin, models)

    def predict(box: np.ndarray, context: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        mean, std, _ = ordinary_kriging(box, context, variogram, n_closest)
        return mean, std

    mean, std = fill_per_void(values, where, margin, predict)
    return Fill(mean, std)


def fill_convcnp(
    values: Raster,
    checkpoint: str | Path | Filler,
    where: np.ndarray | None = None,
    window: int = DEFAULT_WINDOW,
    margin: int | None = None,
    device: str = "cpu",
) -> Fill:
    """A trained single-band ConvCNP (:func:`npf.raster.fill_dataarray`: windows with
    margins, context-centred for DEM checkpoints), with predictive std.

    Its :class:`~npf.raster.ExtrapolationWarning` messages (e.g. context denser than in
    training) are raised as usual and returned as ``notes``. Pass a loaded
    :class:`~npf.raster.Filler` to leave loading out of timings.
    """
    values = as_values(values)
    where = check_where(values, where)
    filled = fill_dataarray(
        xr.DataArray(values, dims=("y", "x")), checkpoint, window, margin, device
    )
    found = filled.attrs["NPF_WARNINGS"]
    notes = () if found == "none" else tuple(found.split(" | "))
    mean = keep_filled(values, where, filled["mean"].values)
    std = keep_filled(np.where(np.isnan(values), np.nan, 0.0), where, filled["std"].values)
    return Fill(mean, std, notes)


def standardised_errors(
    truth: Raster, holed: np.ndarray, fill: Fill, where: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """On the void pixels ``where``: ``(truth - mean) / std`` of ``fill``, and the width
    (px) of each pixel's void in ``holed`` (:func:`npf.std_calibration.void_width`): what
    :func:`npf.std_calibration.fit_std_calibration` takes."""
    if fill.std is None:
        raise ValueError("the fill has no std")
    truth = as_values(truth)
    errors = (truth[where] - fill.mean[where]) / fill.std[where]
    return errors, void_width(np.isfinite(holed))[where]


def score(
    truth: Raster, voids: Voids, mean: np.ndarray, std: np.ndarray | None = None
) -> xr.Dataset:
    """Scores inside the voids, per size class and ``all``: ``rmse`` and ``mae`` (units of
    ``truth``), ``nll`` (Gaussian, nats per pixel) and ``coverage95`` (share inside the
    central 95 % interval; both NaN without ``std``), ``pixels`` and ``blobs``.

    Raises unless ``mean`` (and ``std``, positive) is finite on every void pixel.
    """
    truth = as_values(truth)
    shapes = {"truth": truth.shape, "voids": voids.blob.shape, "mean": np.shape(mean)}
    if std is not None:
        shapes["std"] = np.shape(std)
    if len(set(shapes.values())) > 1:
        raise ValueError(f"shapes differ: {shapes}")
    inside = voids.mask
    if not np.isfinite(truth[inside]).all():
        raise ValueError("truth is missing on some void pixels: voids must be cut from valid ones")
    if not np.isfinite(mean[inside]).all():
        raise ValueError(
            f"mean is not finite on {int((~np.isfinite(mean[inside])).sum())} void pixels"
        )
    if std is not None and not (np.isfinite(std[inside]) & (std[inside] > 0)).all():
        raise ValueError("std must be positive and finite on every void pixel")
    names = [*voids.classes, "all"]
    columns: dict[str, list[float]] = {key: [] for key in METRICS}
    pixels, blobs = [], []
    for index in range(len(names)):
        where = inside if index == len(voids.classes) else voids.size_class == index
        pixels.append(int(where.sum()))
        blobs.append(len(np.unique(voids.blob[where])))
        empty = not where.any()
        columns["rmse"].append(np.nan if empty else rmse(mean, truth, where))
        columns["mae"].append(np.nan if empty else mae(mean, truth, where))
        probabilistic = std is not None and not empty
        columns["nll"].append(nll(mean, std, truth, where) if probabilistic else np.nan)
        columns["coverage95"].append(coverage(mean, std, truth, where) if probabilistic else np.nan)
    data = {key: ("size_class", value) for key, value in columns.items()}
    data |= {"pixels": ("size_class", pixels), "blobs": ("size_class", blobs)}
    return xr.Dataset(data, coords={"size_class": names})


def compare(values: Raster, voids: Voids, methods: Mapping[str, Method]) -> xr.Dataset:
    """Remove ``voids`` from ``values``, fill them with each method and :func:`score` it.

    Returns the scores over ``fill_method`` (not ``method``, which ``Dataset.sel`` takes
    for itself) and ``size_class``, with per method ``seconds`` (wall time of the fill)
    and ``s_per_mpx`` (over the raster's ``megapixels``, all of them, valid or not); the
    methods' notes are in ``attrs["notes"]``.
    """
    if not methods:
        raise ValueError("no methods to compare")
    truth = as_values(values)
    holed = voids.apply(truth)
    scores, seconds, notes = [], [], {}
    for name, fill in methods.items():
        start = time.perf_counter()
        filled = fill(holed, voids.mask)
        seconds.append(time.perf_counter() - start)
        scores.append(score(truth, voids, filled.mean, filled.std))
        notes[name] = list(filled.notes)
    result = xr.concat(
        [scored[list(METRICS)] for scored in scores],
        dim=xr.DataArray(list(methods), dims="fill_method", name="fill_method"),
    )
    result["pixels"], result["blobs"] = scores[0]["pixels"], scores[0]["blobs"]
    result["seconds"] = ("fill_method", seconds)
    result["megapixels"] = truth.size / 1e6
    result["s_per_mpx"] = result["seconds"] / result["megapixels"]
    result.attrs["notes"] = notes
    return result


def pool(results: xr.Dataset, dim: str = "run") -> xr.Dataset:
    """Merge :func:`compare` results stacked along ``dim`` as if scored in one go: metrics
    weighted by pixels (RMSE through the mean square), counts and times summed."""
    weights = results["pixels"]
    total = weights.sum(dim)

    def weighted(metric: xr.DataArray) -> xr.DataArray:
        return (metric.where(weights > 0, 0.0) * weights).sum(dim, skipna=False) / total

    pooled = xr.Dataset(
        {
            "rmse": np.sqrt(weighted(results["rmse"] ** 2)),
            "mae": weighted(results["mae"]),
            "nll": weighted(results["nll"]),
            "coverage95": weighted(results["coverage95"]),
            "pixels": total,
            "blobs": results["blobs"].sum(dim),
            "seconds": results["seconds"].sum(dim),
            "megapixels": results["megapixels"].sum(dim),
        }
    )
    pooled["s_per_mpx"] = pooled["seconds"] / pooled["megapixels"]
    return pooled
