"""Scores of predictions (:func:`npf.predict.predict`) on their held-out pixels.

Held-out pixels are valid and not in the context, all channels. Per image and
predictor: the scores of :mod:`npf.metrics` plus coverage of the 50 % and 90 %
central intervals; over images: means with 95 % confidence half-widths, and
paired differences between two predictors on the same images; pooled over
pixels: reliability curves and PIT histograms (:mod:`npf.calibration`), and the
error of elevation models by terrain slope.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import xarray as xr

from npf.calibration import RELIABILITY_LEVELS, observed_coverage, pit, pit_histogram
from npf.metrics import coverage, score, summarise

#: Central-interval levels whose coverage is scored per image (95 % is in ``score``).
EXTRA_COVERAGE_LEVELS = (0.5, 0.9)
METRICS = ("rmse", "mae", "nll", "crps", "coverage50", "coverage90", "coverage95", "mean_std")
PIT_BINS = 20
#: Terrain-slope classes (degrees) for the error-against-slope table.
SLOPE_EDGES_DEG = (0.0, 5.0, 10.0, 20.0, 30.0, 45.0, 90.0)

#: {predictor: {metric: {"mean": ..., "ci95": ...}}}
Summary = dict[str, dict[str, dict[str, float]]]


def held_out_mask(predictions: xr.Dataset) -> np.ndarray:
    """(image, channel, y, x) pixels to score: valid and not context."""
    held_out = (predictions["valid"] & ~predictions["context"]).values[:, None]
    return np.broadcast_to(held_out, predictions["truth"].shape)


def probabilistic_predictors(predictions: xr.Dataset) -> list[str]:
    """The predictors that give a standard deviation."""
    flags = predictions["probabilistic"]
    return [str(p) for p, flag in zip(flags["predictor"].values, flags.values, strict=True) if flag]


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
    """Per-image scores (predictor, image, metric); NaN where a metric does not apply
    or an image has no held-out pixel. Raises ``ValueError`` when no image has one."""
    truth = predictions["truth"].values
    mask = held_out_mask(predictions)
    if not mask.any():
        raise ValueError(
            "no held-out pixel (valid and not context) in any image: nothing to score; "
            "predict with a context fraction below 1"
        )
    predictors = [str(p) for p in predictions["predictor"].values]
    probabilistic = probabilistic_predictors(predictions)
    table = np.full((len(predictors), len(truth), len(METRICS)), np.nan)
    for p, predictor in enumerate(predictors):
        mean = predictions["mean"].sel(predictor=predictor).values
        std = predictions["std"].sel(predictor=predictor).values
        for i in range(len(truth)):
            if mask[i].any():
                spread = std[i] if predictor in probabilistic else None
                scores = image_scores(mean[i], spread, truth[i], mask[i])
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


def summarise_scores(scores: xr.DataArray) -> Summary:
    """Each metric's mean over images and its 95 % confidence half-width, per predictor.

    ``scores``: (predictor, image, metric) from :func:`score_images`. Metrics that
    do not apply to a predictor (NaN for every image) are left out, and so are
    images without held-out pixels (NaN for every metric).
    """
    metrics = [str(m) for m in scores["metric"].values]
    result: Summary = {}
    for predictor in scores["predictor"].values:
        table = scores.sel(predictor=predictor).transpose("image", "metric").values
        applies = [j for j in range(len(metrics)) if (~np.isnan(table[:, j])).any()]
        per_image = [
            {metrics[j]: float(row[j]) for j in applies}
            for row in table
            if not np.isnan(row[applies]).all()
        ]
        result[str(predictor)] = summarise(per_image)
    return result


def paired_difference(
    scores: xr.DataArray, predictor: str, other: str, metric: str = "rmse"
) -> dict[str, float]:
    """Mean over images of ``predictor``'s ``metric`` minus ``other``'s on the same image,
    its 95 % confidence half-width, and the share of images where ``predictor`` is lower.

    Pairing removes the spread between easy and hard images that both predictors
    share, so a small but consistent difference shows as significant.
    """
    difference = (
        scores.sel(predictor=predictor, metric=metric) - scores.sel(predictor=other, metric=metric)
    ).values
    difference = difference[np.isfinite(difference)]
    if difference.size == 0:
        raise ValueError(f"no image has a {metric} for both {predictor} and {other}")
    summary = summarise([{"difference": float(d)} for d in difference])["difference"]
    return summary | {"lower_share": float(np.mean(difference < 0)), "images": difference.size}


def calibration_curves(predictions: xr.Dataset) -> tuple[xr.DataArray, xr.DataArray]:
    """Pooled reliability (predictor, level) and PIT density (predictor, pit_bin).

    Pools every held-out pixel of every image; only probabilistic predictors.
    """
    truth = predictions["truth"].values
    mask = held_out_mask(predictions)
    predictors = probabilistic_predictors(predictions)
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


def terrain_slope(elevation: np.ndarray, pixel_size_m: float) -> np.ndarray:
    """Slope in degrees of an elevation raster (H, W) in metres; NaN next to invalid pixels.

    Central differences inside, one-sided at the edges (``numpy.gradient``).
    """
    d_row, d_col = np.gradient(elevation.astype(np.float64), pixel_size_m)
    return np.degrees(np.arctan(np.hypot(d_row, d_col)))


def error_by_slope(
    predictions: xr.Dataset, pixel_size_m: np.ndarray, edges: Sequence[float] = SLOPE_EDGES_DEG
) -> xr.Dataset:
    """RMSE per predictor and terrain-slope class, pooled over held-out pixels.

    Slope comes from the true DEM (channel 0, metres) and each tile's ground
    pixel size (per image). Returns ``rmse`` (predictor, slope_class) and
    ``pixels`` (slope_class).
    """
    truth = predictions["truth"].values[:, 0]
    slope = np.stack(
        [terrain_slope(tile, float(size)) for tile, size in zip(truth, pixel_size_m, strict=True)]
    )
    mask = held_out_mask(predictions)[:, 0] & np.isfinite(slope)
    classes = np.digitize(slope, edges[1:-1])
    labels = [f"{lo:g}-{hi:g}" for lo, hi in zip(edges[:-1], edges[1:], strict=False)]
    predictors = [str(p) for p in predictions["predictor"].values]
    rmse = np.full((len(predictors), len(labels)), np.nan)
    pixels = np.array([np.count_nonzero(mask & (classes == k)) for k in range(len(labels))])
    for p, predictor in enumerate(predictors):
        squared_error = (predictions["mean"].sel(predictor=predictor).values[:, 0] - truth) ** 2
        for k in range(len(labels)):
            if pixels[k]:
                rmse[p, k] = np.sqrt(np.mean(squared_error[mask & (classes == k)]))
    return xr.Dataset(
        {"rmse": (("predictor", "slope_class"), rmse), "pixels": ("slope_class", pixels)},
        coords={"predictor": predictors, "slope_class": labels},
    )


def worst_images(
    scores: xr.DataArray, predictor: str, metric: str = "rmse", k: int = 6
) -> np.ndarray:
    """Ids of the ``k`` images on which ``predictor`` scores worst (highest ``metric``).

    ``scores``: (predictor, image, metric) from :func:`score_images`.
    """
    values = scores.sel(predictor=predictor, metric=metric)
    order = np.argsort(-np.nan_to_num(values.values, nan=-np.inf))
    return values["image"].values[order[:k]]
