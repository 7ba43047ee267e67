"""Markdown tables and sentences of the results pages, all built by :func:`markdown_table`."""

from __future__ import annotations

import math
import statistics
from collections.abc import Sequence

import numpy as np
import xarray as xr

from npf.kriging import VARIOGRAM_MODELS
from npf.scoring import Summary, paired_difference
from npf.training import History

#: every metric's label, in tables and figure titles
METRIC_LABELS = {
    "rmse": "RMSE",
    "mae": "MAE",
    "nll": "NLL per pixel (nats)",
    "crps": "CRPS",
    "coverage50": "50 % interval coverage",
    "coverage90": "90 % interval coverage",
    "coverage95": "95 % interval coverage",
    "mean_std": "mean predicted std",
}
#: metrics measured in the data's units
UNIT_METRICS = ("rmse", "mae", "crps", "mean_std")
#: the columns of :func:`metrics_table`
TABLE_METRICS = ("rmse", "mae", "nll", "crps", "coverage95", "mean_std")


def markdown_table(
    header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "---:"
) -> str:
    """A Markdown table; the first column left-aligned, the others by ``align``."""
    lines = ["| " + " | ".join(header) + " |", "|---|" + f"{align}|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def metrics_table(results: Summary, digits: int | None = None) -> str:
    """One row per predictor, ``mean ± 95 % CI`` over images; ``–`` where a metric
    does not apply. ``digits`` after the point: by default enough for three
    significant digits of the smallest RMSE, and at least 3."""
    if digits is None:
        smallest = min(scores["rmse"]["mean"] for scores in results.values())
        digits = max(3, 2 - math.floor(math.log10(smallest))) if smallest > 0 else 3

    def cell(scores: dict[str, dict[str, float]], metric: str) -> str:
        if metric not in scores:
            return "–"
        return f"{scores[metric]['mean']:.{digits}f} ± {scores[metric]['ci95']:.{digits}f}"

    rows = [
        [predictor] + [cell(scores, metric) for metric in TABLE_METRICS]
        for predictor, scores in results.items()
    ]
    return markdown_table(["predictor", *(METRIC_LABELS[m] for m in TABLE_METRICS)], rows)


def paired_table(
    scores: xr.DataArray, predictor: str = "convcnp", metrics: Sequence[str] = ("rmse", "mae")
) -> str:
    """``predictor``'s score minus every other predictor's on the same images.

    ``scores``: (predictor, image, metric). Negative means ``predictor`` is better;
    the interval is the 95 % confidence half-width of the mean paired difference.
    """
    rows = []
    for other in map(str, scores["predictor"].values):
        if other == predictor:
            continue
        cells = []
        for metric in metrics:
            d = paired_difference(scores, predictor, other, metric)
            cells += [
                f"{d['mean']:+.3g} ± {d['ci95']:.2g}",
                f"{100 * d['lower_share']:.0f} %",
            ]
        rows.append([other, *cells])
    header = ["versus"]
    for metric in metrics:
        header += [f"{METRIC_LABELS[metric]} difference", "images better"]
    return markdown_table(header, rows)


def training_summary(history: History) -> str:
    """Best epoch, whether validation loss rose after it, and time per epoch."""
    epochs = history.epochs
    if not epochs:
        return "No epoch has been trained yet."
    best = history.best_epoch
    best_loss = min(e["val_loss"] for e in epochs)
    rises = sum(b["val_loss"] > a["val_loss"] for a, b in zip(epochs, epochs[1:], strict=False))
    after_best = [e["val_loss"] for e in epochs if e["epoch"] > best]
    trend = (
        f"after it, validation loss stayed above the best, ending at {after_best[-1]:.1f}"
        if after_best
        else "it is the last epoch trained"
    )
    return (
        f"{len(epochs)} epochs trained. Lowest validation loss {best_loss:.1f} "
        f"(summed NLL per image) at epoch {best}; {trend}. Validation loss rose from "
        f"one epoch to the next {rises} time(s) out of {len(epochs) - 1}. "
        f"Median time per epoch: {median_epoch_seconds(history):.1f} s."
    )


def median_epoch_seconds(history: History) -> float | None:
    """The median wall time of an epoch (with an even count, the mean of the middle two);
    ``None`` before an epoch has finished."""
    seconds = [e["seconds"] for e in history.epochs]
    return statistics.median(seconds) if seconds else None


def coverage_table(
    summary: dict[float, Summary],
    levels: Sequence[str] = ("coverage50", "coverage90", "coverage95"),
) -> str:
    """Probabilistic predictors (rows) by fraction (columns), coverages at ``levels``."""
    fractions = sorted(summary)
    predictors = [
        p
        for p in dict.fromkeys(p for f in fractions for p in summary[f])
        if all(level in summary[fractions[0]].get(p, {}) for level in levels)
    ]
    nominal = " / ".join(level.removeprefix("coverage") for level in levels)
    rows = [
        [str(p)]
        + [
            " / ".join(f"{100 * summary[f][p][level]['mean']:.1f}" for level in levels)
            for f in fractions
        ]
        for p in predictors
    ]
    return markdown_table(
        [f"predictor (nominal {nominal} %)", *(f"{f:.3g}" for f in fractions)], rows
    )


def variogram_table(variograms: xr.Dataset) -> str:
    """Per fraction, how many fits chose each model and which bounds were hit."""
    rows = []
    for fraction in variograms["fraction"].values:
        models = variograms["variogram_model"].sel(fraction=fraction).values.ravel()
        flags = variograms["variogram_flags"].sel(fraction=fraction).values.ravel()
        names, counts = np.unique([f for f in flags if f], return_counts=True)
        rows.append(
            [f"{fraction:.3g}", str(models.size)]
            + [str(int((models == m).sum())) for m in VARIOGRAM_MODELS]
            + [str(int((flags != "").sum()))]
            + [", ".join(f"{n}: {c}" for n, c in zip(names, counts, strict=True)) or "–"]
        )
    return markdown_table(["context", "fits", *VARIOGRAM_MODELS, "on a bound", "bounds hit"], rows)


def image_table(scores: xr.DataArray, images: Sequence[int]) -> str:
    """RMSE of every predictor on the given images; ``scores``: (predictor, image, metric)."""
    rmse = scores.sel(metric="rmse")
    rows = [[str(image)] + [f"{v:.3g}" for v in rmse.sel(image=image).values] for image in images]
    return markdown_table(["test image", *map(str, rmse["predictor"].values)], rows)


def group_table(scores: xr.DataArray, groups: np.ndarray) -> str:
    """Mean per-image RMSE of every predictor per group (e.g. DEM scene);
    ``scores``: (predictor, image, metric), ``groups`` one label per image."""
    rmse = scores.sel(metric="rmse")
    rows = []
    for group in np.unique(groups):
        chosen = rmse.isel(image=np.flatnonzero(groups == group))
        rows.append(
            [str(group), str(chosen.sizes["image"])]
            + [f"{v:.3g}" for v in chosen.mean("image").values]
        )
    return markdown_table(["group", "images", *map(str, rmse["predictor"].values)], rows)


def slope_table(slope_rmse: xr.Dataset) -> str:
    """RMSE per predictor and slope class, and the pixels per class."""
    classes = [f"{c}°" for c in slope_rmse["slope_class"].values]
    rows = [
        [str(p)] + [f"{v:.1f}" for v in slope_rmse["rmse"].sel(predictor=p).values]
        for p in slope_rmse["predictor"].values
    ]
    rows.append(["pixels"] + [f"{int(v):,}" for v in slope_rmse["pixels"].values])
    return markdown_table(["predictor", *classes], rows)
