"""Quantitative evaluation of every method over a sweep of context fractions.

Builds on :func:`npf.predict.predict` (ConvCNP, griddata baselines and, on
``gp``, the exact GP posterior) and adds ordinary kriging with a variogram
fitted per image and channel (:func:`npf.kriging.ordinary_kriging`). For each
context fraction it keeps, per method and image, the scores of
:mod:`npf.metrics` plus coverage of the 50 % and 90 % central intervals, the
pooled reliability curve and PIT histogram (:mod:`npf.calibration`), the
fitted variograms and, for DEMs, the error against terrain slope. Scored
pixels: valid and not in the context, all channels.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import xarray as xr
from tqdm.auto import tqdm

from npf.baselines import BASELINES
from npf.calibration import RELIABILITY_LEVELS, observed_coverage, pit, pit_histogram
from npf.data.base import GridDataset
from npf.kriging import ordinary_kriging
from npf.metrics import coverage, score, summarise
from npf.model import GridConvCNP
from npf.predict import held_out_mask, is_probabilistic, predict

#: Central-interval levels whose coverage is scored per image (95 % is in ``score``).
EXTRA_COVERAGE_LEVELS = (0.5, 0.9)
#: Terrain-slope classes (degrees) for the error-against-slope table.
SLOPE_EDGES_DEG = (0.0, 5.0, 10.0, 20.0, 30.0, 45.0, 90.0)
PIT_BINS = 20
METRICS = ("rmse", "mae", "nll", "crps", "coverage50", "coverage90", "coverage95", "mean_std")


def add_kriging(
    predictions: xr.Dataset, n_closest: int | None = None, progress: bool = True
) -> xr.Dataset:
    """``predictions`` with an ``ordinary_kriging`` predictor and its fitted variograms.

    Every image and channel gets its own variogram, fitted to its context.
    The variograms are added as ``variogram_<field>`` variables over
    (image, channel): ``model``, ``psill``, ``range``, ``nugget`` and ``flags``
    (parameters on a bound, comma-separated; empty when none).
    """
    truth = predictions["truth"].values
    context = predictions["context"].values
    n, channels, height, width = truth.shape
    mean = np.empty((1, n, channels, height, width), dtype=np.float32)
    std = np.empty_like(mean)
    fits = [[None] * channels for _ in range(n)]
    for i in tqdm(range(n), desc="ordinary kriging", disable=not progress):
        for c in range(channels):
            mean[0, i, c], std[0, i, c], fits[i][c] = ordinary_kriging(
                truth[i, c], context[i], n_closest=n_closest
            )
    dims = ("predictor", "image", "channel", "y", "x")
    result = predictions.drop_vars(["mean", "std"]).assign_coords(
        predictor=[*predictions["predictor"].values, "kriging"]
    )
    result["mean"] = (dims, np.concatenate([predictions["mean"].values, mean]))
    result["std"] = (dims, np.concatenate([predictions["std"].values, std]))
    for field in ("model", "psill", "range", "nugget"):
        column = [[getattr(fit, field) for fit in row] for row in fits]
        result[f"variogram_{field}"] = (("image", "channel"), np.array(column))
    flags = [[",".join(fit.at_bounds) for fit in row] for row in fits]
    result["variogram_flags"] = (("image", "channel"), np.array(flags))
    return result


def image_scores(
    mean: np.ndarray, std: np.ndarray | None, truth: np.ndarray, mask: np.ndarray
) -> dict[str, float]:
    """:func:`npf.metrics.score` plus coverage at ``EXTRA_COVERAGE_LEVELS``."""
    result = score(mean, std, truth, mask)
    if std is not None:
        for level in EXTRA_COVERAGE_LEVELS:
            result[f"coverage{round(100 * level)}"] = coverage(mean, std, truth, mask, level)
    return result


def score_images(predictions: xr.Dataset) -> xr.DataArray:
    """Per-image scores (predictor, image, metric); NaN where a metric does not apply."""
    truth = predictions["truth"].values
    mask = held_out_mask(predictions)
    predictors = [str(p) for p in predictions["predictor"].values]
    table = np.full((len(predictors), len(truth), len(METRICS)), np.nan)
    for p, predictor in enumerate(predictors):
        mean = predictions["mean"].sel(predictor=predictor).values
        std = predictions["std"].sel(predictor=predictor).values
        probabilistic = is_probabilistic(predictions, predictor)
        for i in range(len(truth)):
            if mask[i].any():
                scores = image_scores(mean[i], std[i] if probabilistic else None, truth[i], mask[i])
                table[p, i] = [scores.get(metric, np.nan) for metric in METRICS]
    return xr.DataArray(
        table,
        dims=("predictor", "image", "metric"),
        coords={
            "predictor": predictors,
            "image": predictions["image"].values,
            "metric": list(METRICS),
        },
    )


def calibration_curves(predictions: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Pooled reliability (predictor, level) and PIT density (predictor, pit_bin).

    Pools every held-out pixel of every image; only probabilistic predictors.
    """
    truth = predictions["truth"].values
    mask = held_out_mask(predictions)
    predictors = [str(p) for p in predictions["predictor"].values]
    predictors = [p for p in predictors if is_probabilistic(predictions, p)]
    reliability, density = [], []
    for predictor in predictors:
        values = pit(
            predictions["mean"].sel(predictor=predictor).values,
            predictions["std"].sel(predictor=predictor).values,
            truth,
            mask,
        )
        reliability.append(observed_coverage(values))
        density.append(pit_histogram(values, PIT_BINS)[0])
    bin_centres = (np.arange(PIT_BINS) + 0.5) / PIT_BINS
    return (
        xr.DataArray(
            np.array(reliability).reshape(len(predictors), -1),
            dims=("predictor", "level"),
            coords={"predictor": predictors, "level": RELIABILITY_LEVELS},
        ),
        xr.DataArray(
            np.array(density).reshape(len(predictors), -1),
            dims=("predictor", "pit_bin"),
            coords={"predictor": predictors, "pit_bin": bin_centres},
        ),
    )


def terrain_slope(elevation: np.ndarray, resolution_m: float) -> np.ndarray:
    """Slope in degrees of an elevation raster (H, W) in metres; NaN next to invalid pixels.

    Central differences inside, one-sided at the edges (``numpy.gradient``).
    """
    d_row, d_col = np.gradient(elevation.astype(np.float64), resolution_m)
    return np.degrees(np.arctan(np.hypot(d_row, d_col)))


def error_by_slope(
    predictions: xr.Dataset, resolution_m: np.ndarray, edges: Sequence[float] = SLOPE_EDGES_DEG
) -> xr.Dataset:
    """RMSE per predictor and terrain-slope class, pooled over held-out pixels.

    Slope comes from the true DEM (channel 0, metres) and each tile's pixel
    size ``resolution_m`` (per image). Returns ``rmse`` (predictor, slope_class)
    and ``pixels`` (slope_class).
    """
    truth = predictions["truth"].values[:, 0]
    slope = np.stack(
        [terrain_slope(tile, float(res)) for tile, res in zip(truth, resolution_m, strict=True)]
    )
    mask = held_out_mask(predictions)[:, 0] & np.isfinite(slope)
    classes = np.digitize(slope, edges[1:-1])
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    predictors = [str(p) for p in predictions["predictor"].values]
    rmse = np.full((len(predictors), len(labels)), np.nan)
    pixels = np.zeros(len(labels), dtype=np.int64)
    for k in range(len(labels)):
        pixels[k] = np.count_nonzero(mask & (classes == k))
    for p, predictor in enumerate(predictors):
        squared_error = (predictions["mean"].sel(predictor=predictor).values[:, 0] - truth) ** 2
        for k in range(len(labels)):
            if pixels[k]:
                rmse[p, k] = np.sqrt(np.mean(squared_error[mask & (classes == k)]))
    return xr.Dataset(
        {"rmse": (("predictor", "slope_class"), rmse), "pixels": ("slope_class", pixels)},
        coords={"predictor": predictors, "slope_class": labels},
    )


@dataclass
class Evaluation:
    """Results of a context-fraction sweep.

    Attributes:
        scores: per-image scores (fraction, predictor, image, metric).
        reliability: observed coverage (fraction, predictor, level).
        pit_density: PIT histogram density (fraction, predictor, pit_bin).
        variograms: fitted variograms (fraction, image, channel), ``None`` without kriging.
        slope_rmse: RMSE by slope class (fraction, predictor, slope_class) and
            ``pixels``, for DEMs with ``resolution_m``; else ``None``.
        focus: all predictions at ``focus_fraction`` (for figures of single images).
    """

    scores: xr.DataArray
    reliability: xr.DataArray
    pit_density: xr.DataArray
    variograms: xr.Dataset | None
    slope_rmse: xr.Dataset | None
    focus: xr.Dataset


def evaluate(
    model: GridConvCNP | None,
    dataset: GridDataset,
    fractions: Sequence[float],
    seed: int = 0,
    indices: Sequence[int] | None = None,
    kriging: bool = True,
    kriging_neighbours: int | None = None,
    oracle: bool | None = None,
    focus_fraction: float = 1 / 8,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> Evaluation:
    """Predict and score ``indices`` of ``dataset`` at every context fraction.

    Context masks are seeded by ``seed`` (the same seed for every fraction, so
    a smaller fraction's context is contained in a larger one's). ``oracle``
    defaults to whether the data set records its true covariance (``gp``).
    ``focus_fraction`` must be one of ``fractions``.
    """
    if isinstance(fractions, str) or not all(isinstance(f, int | float) for f in fractions):
        raise TypeError(f"fractions must be a sequence of numbers, got {fractions!r}")
    if focus_fraction not in fractions:
        raise ValueError(f"focus_fraction {focus_fraction} is not among fractions {fractions}")
    if oracle is None:
        oracle = {"kernel", "length_scale", "noise_std"} <= set(dataset.meta)
    slope_ready = dataset.units == "m" and "resolution_m" in dataset.meta
    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    scores, reliability, density, variograms, slope = [], [], [], [], []
    focus = None
    for fraction in fractions:
        predictions = predict(
            model,
            dataset,
            fraction=fraction,
            seed=seed,
            indices=chosen,
            baselines=BASELINES,
            oracle=oracle,
            batch_size=batch_size,
            device=device,
            progress=progress,
        )
        if kriging:
            predictions = add_kriging(predictions, kriging_neighbours, progress)
            variograms.append(
                predictions[[name for name in predictions if name.startswith("variogram_")]]
            )
        scores.append(score_images(predictions))
        curve, pit_density = calibration_curves(predictions)
        reliability.append(curve)
        density.append(pit_density)
        if slope_ready:
            resolution = np.asarray(dataset.meta["resolution_m"])[chosen]
            slope.append(error_by_slope(predictions, resolution))
        if fraction == focus_fraction:
            focus = predictions
    sweep = pd.Index(list(fractions), name="fraction")
    return Evaluation(
        scores=xr.concat(scores, dim=sweep),
        reliability=xr.concat(reliability, dim=sweep),
        pit_density=xr.concat(density, dim=sweep),
        variograms=xr.concat(variograms, dim=sweep) if variograms else None,
        slope_rmse=xr.concat(slope, dim=sweep) if slope else None,
        focus=focus,
    )


def summary(scores: xr.DataArray) -> dict[float, dict[str, dict[str, dict[str, float]]]]:
    """{fraction: {predictor: {metric: {mean, ci95}}}} over images (:func:`npf.metrics.summarise`).

    Metrics that do not apply to a predictor (NaN for every image) are left out,
    and so are images without held-out pixels (NaN for every metric).
    """
    result: dict[float, dict[str, dict[str, dict[str, float]]]] = {}
    metrics = [str(m) for m in scores["metric"].values]
    for fraction in scores["fraction"].values:
        result[float(fraction)] = {}
        for predictor in scores["predictor"].values:
            table = scores.sel(fraction=fraction, predictor=predictor).values
            applies = [j for j in range(len(metrics)) if np.isfinite(table[:, j]).any()]
            per_image = [
                {metrics[j]: float(row[j]) for j in applies}
                for row in table
                if not np.isnan(row[applies]).all()
            ]
            result[float(fraction)][str(predictor)] = summarise(per_image)
    return result


def worst_images(
    scores: xr.DataArray, fraction: float, predictor: str, metric: str = "rmse", k: int = 6
) -> np.ndarray:
    """Ids of the ``k`` images on which ``predictor`` scores worst (highest ``metric``)."""
    values = scores.sel(fraction=fraction, predictor=predictor, metric=metric)
    order = np.argsort(-np.nan_to_num(values.values, nan=-np.inf))
    return values["image"].values[order[:k]]
