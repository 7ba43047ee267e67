"""Figures of the study: training curves, the prediction figure (context, predictions,
truth), and the evaluation's sweep, calibration, slope and variogram figures.

Sized for the book's page: the image grids and the metric sweep are
:data:`PAGE_WIDTH` inches wide and their text is at least :data:`SMALL` points,
so it stays readable when the page shows a figure about 8 inches (780 px) wide.
Every figure colours a method with :data:`METHOD_COLOURS`.
"""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colorbar import Colorbar
from matplotlib.colors import to_rgb
from matplotlib.figure import Figure
from matplotlib.ticker import MaxNLocator

from npf.data.base import GaussianFieldTruth
from npf.study.tables import METRIC_LABELS, UNIT_METRICS
from npf.training import History

#: one colour per method in every figure (Okabe-Ito, distinguishable with colour-blindness);
#: the key order is the order of the methods' rows in the prediction figure
METHOD_COLOURS: dict[str, str] = {
    "convcnp": "#0072B2",
    "oracle": "#000000",
    "kriging": "#D55E00",
    "nearest": "#56B4E9",
    "linear": "#009E73",
    "cubic": "#CC79A7",
}
NEUTRAL = "#c8c8c8"
PAGE_WIDTH = 8.5  # inches
FONT = 12  # points: axis labels, titles
SMALL = 10  # points: ticks, legends, colour bars
MAX_COLUMNS = 4  # images in the prediction figure by default

#: a row of an image grid: (label, kind, predictor); kind is one of "context",
#: "truth", "mean" (value rows), "std" or "error" (spread rows, absolute error)
Row = tuple[str, str, str]
SPREAD_KINDS = ("std", "error")


def method_colour(method: str) -> str:
    """The colour of ``method`` in every figure; grey for a method not in METHOD_COLOURS."""
    return METHOD_COLOURS.get(method, "0.5")


def plot_training_curves(history: History, title: str = "") -> Figure:
    """Train and validation summed NLL per epoch, best epoch marked.

    There is no floor to draw, even where the exact posterior is known: the loss
    also scores the context pixels, whose observed values a model may predict
    more sharply than any posterior of a new noisy observation would.
    """
    epochs = [e["epoch"] for e in history.epochs]
    colour = method_colour("convcnp")
    fig, ax = plt.subplots(figsize=(7, 4), constrained_layout=True)
    train, val = ([e[key] for e in history.epochs] for key in ("train_loss", "val_loss"))
    ax.plot(epochs, train, "o--", ms=4, color=colour, mfc="white", label="train")
    ax.plot(epochs, val, "s-", ms=4, color=colour, label="validation")
    best = history.best_epoch
    if best is not None:
        best_loss = val[epochs.index(best)]
        ax.axvline(best, color="0.5", ls=":", lw=1)
        ax.plot([best], [best_loss], "*", color="crimson", ms=14, label=f"best (epoch {best})")
    ax.xaxis.set_major_locator(MaxNLocator(integer=True, steps=[1, 2, 5, 10], min_n_ticks=1))
    ax.set_xlabel("epoch", fontsize=FONT)
    ax.set_ylabel("NLL summed over target pixels", fontsize=FONT)
    ax.set_title(title, fontsize=FONT)
    ax.tick_params(labelsize=SMALL)
    ax.legend(fontsize=SMALL)
    ax.grid(alpha=0.3)
    return fig


def plot_step_log(history: History, steps_per_epoch: int, title: str = "") -> Figure:
    """Loss and gradient norm of the logged training steps, against the step: where a run
    spikes or diverges. The loss axis is linear unless spikes exceed 20 times the median
    absolute loss (then symlog). A non-finite loss is marked by a vertical line."""
    logged = history.steps
    colour = method_colour("convcnp")
    fig, (loss_ax, norm_ax) = plt.subplots(
        2, 1, figsize=(PAGE_WIDTH, 5.2), sharex=True, layout="constrained"
    )
    step = np.array([(s["epoch"] - 1) * steps_per_epoch + s["step"] for s in logged])
    loss = np.array([s["loss"] for s in logged], dtype=float)
    norm = np.array([np.nan if s["grad_norm"] is None else s["grad_norm"] for s in logged])
    finite = np.isfinite(loss)
    loss_ax.plot(step[finite], loss[finite], ".-", ms=3, lw=0.6, color=colour)
    typical = float(np.median(np.abs(loss[finite]))) if finite.any() else 1.0
    largest = float(np.abs(loss[finite]).max()) if finite.any() else 1.0
    if largest > 20 * typical:  # spikes orders of magnitude above the rest: symlog shows both
        loss_ax.set_yscale("symlog", linthresh=max(1.0, typical))
    for bad in step[~finite]:
        loss_ax.axvline(bad, color="crimson", lw=1.5, label="non-finite loss")
    norm_ax.plot(step, norm, ".-", ms=3, lw=0.6, color=colour)
    norm_ax.set_yscale("log")
    loss_ax.set_title(title or "training loss of the logged steps", fontsize=FONT)
    loss_ax.set_ylabel("loss (summed NLL)", fontsize=SMALL)
    norm_ax.set_ylabel("gradient norm", fontsize=SMALL)
    norm_ax.set_xlabel(f"training step ({steps_per_epoch} per epoch)", fontsize=SMALL)
    for ax in (loss_ax, norm_ax):
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3, which="both")
    if not finite.all():
        loss_ax.legend(fontsize=SMALL)
    return fig


def plot_learning_curve(
    history: History, images_per_epoch: int, reference: dict[str, float]
) -> Figure:
    """Validation held-out NLL gap to ``reference`` (the exact posterior's scores on the
    same validation tasks) and RMSE, against the training images (fields) seen."""
    epochs = [e for e in history.epochs if "val_heldout_nll" in e]
    seen = [e["epoch"] * images_per_epoch for e in epochs]
    colour = method_colour("convcnp")
    fig, (gap_ax, rmse_ax) = plt.subplots(1, 2, figsize=(PAGE_WIDTH, 3.4), layout="constrained")
    gap = [e["val_heldout_nll"] - reference["val_heldout_nll"] for e in epochs]
    gap_ax.plot(seen, gap, "o-", ms=3, color=colour)
    gap_ax.set_yscale("log")
    gap_ax.set_title("NLL gap to the exact posterior (nats per pixel)", fontsize=FONT)
    rmse_ax.plot(seen, [e["val_heldout_rmse"] for e in epochs], "o-", ms=3, color=colour,
                 label="convcnp")  # fmt: skip
    rmse_ax.axhline(
        reference["val_heldout_rmse"], color=method_colour("oracle"), ls="--", label="oracle"
    )
    rmse_ax.set_title("RMSE on held-out pixels", fontsize=FONT)
    rmse_ax.legend(fontsize=SMALL)
    for ax in (gap_ax, rmse_ax):
        ax.set_xscale("log")
        ax.set_xlabel("training fields seen (validation set, fixed contexts)", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3, which="both")
    return fig


def default_cmap(predictions: xr.Dataset) -> str:
    """Terrain colours for elevations, grey for intensities, viridis otherwise."""
    units = predictions.attrs.get("units", "")
    if units == "m":
        return "terrain"
    if units == "intensity":
        return "gray"
    return "viridis"


def _rgb(image: np.ndarray) -> np.ndarray:
    """(C, H, W) -> (H, W, 3) clipped to [0, 1] for display."""
    return np.clip(np.moveaxis(image, 0, -1), 0.0, 1.0)


def _masked_rgb(image: np.ndarray, show: np.ndarray) -> np.ndarray:
    rgb = _rgb(np.nan_to_num(image))
    rgb[~show] = to_rgb(NEUTRAL)
    return rgb


def prediction_rows(predictions: xr.Dataset) -> list[Row]:
    """Context, each predictor's mean (and std when it has one), truth.

    Predictors in the order of :data:`METHOD_COLOURS`, others after them: with
    ConvCNP and the three interpolations the report's seven rows, plus the
    oracle's mean and std on ``gp``.
    """
    order = list(METHOD_COLOURS)
    predictors = sorted(
        map(str, predictions["predictor"].values),
        key=lambda p: order.index(p) if p in order else len(order),
    )
    rows: list[Row] = [("context", "context", "")]
    for predictor in predictors:
        if predictions["probabilistic"].sel(predictor=predictor):
            rows += [
                (f"{predictor} mean", "mean", predictor),
                (f"{predictor} std", "std", predictor),
            ]
        else:
            rows.append((predictor, "mean", predictor))
    return [*rows, ("truth", "truth", "")]


def error_rows(predictions: xr.Dataset, predictors: Sequence[str]) -> list[Row]:
    """Context, truth, then per predictor its mean, absolute error and (when it
    has one) std."""
    rows: list[Row] = [("context", "context", ""), ("truth", "truth", "")]
    for predictor in predictors:
        rows += [
            (f"{predictor} mean", "mean", predictor),
            (f"{predictor} |error|", "error", predictor),
        ]
        if predictions["probabilistic"].sel(predictor=predictor):
            rows.append((f"{predictor} std", "std", predictor))
    return rows


def plot_predictions(
    predictions: xr.Dataset,
    images: Sequence[int] | None = None,
    rows: Sequence[Row] | None = None,
    cmap: str | None = None,
) -> Figure:
    """One column per test image (``images``: ids; default the first
    :data:`MAX_COLUMNS`), rows from :func:`prediction_rows` unless given (e.g.
    :func:`error_rows`); with the default rows, the report's seven-row figure.
    See :func:`plot_image_grid` for colour scales and colour bars.
    """
    ids = list(predictions["image"].values[:MAX_COLUMNS]) if images is None else list(images)
    rows = prediction_rows(predictions) if rows is None else rows
    return plot_image_grid(predictions.sel(image=ids), rows, cmap)


def _spread(sample: xr.Dataset, kind: str, predictor: str) -> np.ndarray:
    """(H, W) std or absolute error of ``predictor``, mean over channels, NaN where not valid."""
    mean = sample["mean"].sel(predictor=predictor).values
    field = (
        sample["std"].sel(predictor=predictor).values
        if kind == "std"
        else np.abs(mean - sample["truth"].values)
    )
    return np.where(sample["valid"].values, field.mean(axis=0), np.nan)


def _values(sample: xr.Dataset, kind: str, predictor: str) -> tuple[np.ndarray, np.ndarray]:
    """(C, H, W) values of a value row and the (H, W) pixels to show."""
    valid = sample["valid"].values
    if kind == "context":
        return sample["truth"].values, sample["context"].values & valid
    if kind == "truth":
        return sample["truth"].values, valid
    return sample["mean"].sel(predictor=predictor).values, valid


def plot_image_grid(
    predictions: xr.Dataset,
    rows: Sequence[Row],
    cmap: str | None = None,
    spread_cmap: str = "magma",
) -> Figure:
    """One column per image of ``predictions``, one row per entry of ``rows``.

    Value rows of a column share one colour scale (from its valid true values),
    shown by a colour bar under the column; RGB (3-channel) data are drawn as
    RGB images instead. Std and absolute-error rows (averaged over channels)
    share one scale for the whole figure, from 0 to the 99th percentile of their
    valid pixels, shown by one colour bar on the right. Pixels not observed
    (context row) or not valid (nodata) are grey.
    """
    n_rows, n_cols = len(rows), predictions.sizes["image"]
    rgb = predictions.sizes["channel"] == 3
    spreads = {
        (row, col): _spread(predictions.isel(image=col), kind, predictor)
        for row, (_, kind, predictor) in enumerate(rows)
        if kind in SPREAD_KINDS
        for col in range(n_cols)
    }
    spread_rows = sorted({row for row, _ in spreads})
    if spreads:
        pooled = np.concatenate([s.ravel() for s in spreads.values()])
        top = float(np.nanpercentile(pooled, 99))  # a few extreme errors would darken the rest
        spread_colours = plt.get_cmap(spread_cmap).with_extremes(bad=NEUTRAL)
    panel = (PAGE_WIDTH - 0.5 - (1.0 if spreads else 0.0)) / n_cols
    fig = plt.figure(
        figsize=(PAGE_WIDTH, n_rows * panel + (0.4 if rgb else 1.2)), layout="constrained"
    )
    # right of the images a column for the spread's colour bar
    grid = fig.add_gridspec(
        n_rows, n_cols + bool(spreads), width_ratios=[1] * n_cols + ([0.06] if spreads else [])
    )
    axes = np.array([[fig.add_subplot(grid[r, c]) for c in range(n_cols)] for r in range(n_rows)])
    value_cmap = plt.get_cmap(cmap or default_cmap(predictions)).with_extremes(bad=NEUTRAL)
    units = predictions.attrs.get("units", "")
    for col in range(n_cols):
        sample = predictions.isel(image=col)
        truth, valid = sample["truth"].values, sample["valid"].values
        low, high = np.nanmin(truth[:, valid]), np.nanmax(truth[:, valid])
        for row, (label, kind, predictor) in enumerate(rows):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=FONT)
            if row in spread_rows:
                spread_image = ax.imshow(spreads[row, col], cmap=spread_colours, vmin=0.0, vmax=top)
                continue
            field, show = _values(sample, kind, predictor)
            if rgb:
                ax.imshow(_masked_rgb(field, show))
            else:
                shown = np.where(show, field[0], np.nan)
                value_image = ax.imshow(shown, cmap=value_cmap, vmin=low, vmax=high)
        axes[0, col].set_title(f"test #{int(sample['image'])}", fontsize=FONT)
        if not rgb:
            # narrower than the column: tick labels at its ends stay within the column
            bar = fig.colorbar(
                value_image, ax=axes[-1, col], location="bottom", shrink=0.85, aspect=12
            )
            _style_bar(bar, units)
    if spreads:
        first, last = spread_rows[0], spread_rows[-1] + 1
        names = dict.fromkeys(
            "predicted std" if rows[row][1] == "std" else "|error|" for row in spread_rows
        )
        label = " and ".join(names) + (f" ({units})" if units else "")
        bar = fig.colorbar(
            spread_image,
            cax=fig.add_subplot(grid[first:last, n_cols]),
            extend="max" if np.nanmax(pooled) > top else "neither",
        )
        _style_bar(bar, label)
    return fig


def _style_bar(bar: Colorbar, label: str) -> None:
    bar.set_ticks(MaxNLocator(nbins=4))
    bar.ax.tick_params(labelsize=SMALL)
    bar.set_label(label, fontsize=SMALL)


def plot_metric_sweep(
    summary: dict[float, dict[str, dict[str, dict[str, float]]]],
    metrics: Sequence[str] = ("rmse", "crps", "nll", "coverage95"),
    units: str = "",
    training_max_context: float | None = None,
) -> Figure:
    """Each metric's mean and 95 % CI over images against the context fraction.

    Panels in a grid two wide; fractions above ``training_max_context`` (the
    largest context share ConvCNP was trained on) are shaded; each predictor has
    its colour of :data:`METHOD_COLOURS`. A mean far off the others' scale (one
    image's NLL of hundreds of nats can put a whole method's mean there) is left
    out of the axis range and written at the panel's edge instead.
    """
    fractions = sorted(summary)
    predictors = list(dict.fromkeys(p for f in fractions for p in summary[f]))
    n_cols = min(2, len(metrics))
    n_rows = -(-len(metrics) // n_cols)
    fig, axes = plt.subplots(
        n_rows,
        n_cols,
        figsize=(PAGE_WIDTH, 3.2 * n_rows + 0.6),
        squeeze=False,
        sharex=True,
        layout="constrained",
    )
    for ax in axes.flat[len(metrics) :]:
        ax.remove()
    for ax, metric in zip(axes.flat, metrics, strict=False):
        panel = []
        for predictor in predictors:
            points = [
                (f, summary[f][predictor][metric])
                for f in fractions
                if metric in summary[f][predictor]
            ]
            if not points:
                continue
            panel += [(f, s, predictor) for f, s in points]
            ax.errorbar(
                [f for f, _ in points],
                [s["mean"] for _, s in points],
                yerr=[s["ci95"] for _, s in points],
                marker="o",
                ms=4,
                capsize=2,
                color=method_colour(predictor),
                label=predictor,
            )
        _leave_out_far_points(ax, panel)
        if metric.startswith("coverage"):
            ax.axhline(int(metric.removeprefix("coverage")) / 100, color="0.4", ls=":", lw=1)
        if training_max_context is not None:
            ax.axvspan(training_max_context, max(fractions) * 1.2, color="0.9", zorder=0)
        ax.set_xscale("log")
        unit = f" ({units})" if units and metric in UNIT_METRICS else ""
        ax.set_title(METRIC_LABELS[metric] + unit, fontsize=FONT)
        ax.tick_params(labelsize=SMALL, labelbottom=True)
        ax.grid(alpha=0.3)
    handles = {}
    for i, ax in enumerate(axes.flat[: len(metrics)]):
        if i + n_cols >= len(metrics):  # the lowest panel of its column
            shaded = " (shaded: beyond training)" if training_max_context is not None else ""
            ax.set_xlabel("context fraction" + shaded, fontsize=SMALL)
        lines, labels = ax.get_legend_handles_labels()
        handles |= dict(zip(labels, lines, strict=True))
    fig.legend(
        handles.values(), handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL
    )
    return fig


def _leave_out_far_points(
    ax: Axes, points: Sequence[tuple[float, dict[str, float], str]], reach: float = 5.0
) -> None:
    """Limit the y-axis to the points within ``reach`` interquartile ranges of the middle
    half of the means (and their CIs), and write each point beyond it at the edge it
    lies past, with its predictor and value."""
    means = np.array([s["mean"] for _, s, _ in points], dtype=float)
    finite = np.isfinite(means)
    if finite.sum() < 4:
        return
    low, high = np.percentile(means[finite], [25, 75])
    spread = max(high - low, 1e-12)
    near = finite & (means >= low - reach * spread) & (means <= high + reach * spread)
    if near.all():
        return
    kept = [s for (_, s, _), inside in zip(points, near, strict=True) if inside]
    bottom = min(s["mean"] - s.get("ci95", 0.0) for s in kept)
    top = max(s["mean"] + s.get("ci95", 0.0) for s in kept)
    pad = 0.08 * (top - bottom or 1.0)
    ax.set_ylim(bottom - pad, top + pad)
    for (fraction, score, predictor), inside in zip(points, near, strict=True):
        if inside:
            continue
        above = not score["mean"] < bottom
        ax.annotate(
            f"{predictor} {score['mean']:.3g} {'↑' if above else '↓'}",
            xy=(fraction, 0.97 if above else 0.03),
            xycoords=("data", "axes fraction"),
            ha="left",
            va="top" if above else "bottom",
            fontsize=SMALL,
            color=method_colour(predictor),
        )


def plot_reliability(reliability: xr.DataArray, title: str = "") -> Figure:
    """Observed against nominal coverage of central intervals, one line per predictor."""
    fig, ax = plt.subplots(figsize=(4, 4), constrained_layout=True)
    ax.plot([0, 1], [0, 1], color="0.4", ls=":", lw=1, label="calibrated")
    for predictor in reliability["predictor"].values:
        curve = reliability.sel(predictor=predictor)
        ax.plot(
            curve["level"],
            curve,
            "o-",
            ms=3,
            color=method_colour(str(predictor)),
            label=str(predictor),
        )
    ax.set_xlabel("nominal coverage of the central interval")
    ax.set_ylabel("observed coverage")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.set_title(title, fontsize=FONT)
    ax.legend(fontsize=SMALL)
    ax.grid(alpha=0.3)
    return fig


def plot_pit(pit_density: xr.DataArray, title: str = "") -> Figure:
    """PIT histogram per predictor; a calibrated predictor is flat at 1."""
    predictors = list(pit_density["predictor"].values)
    fig, axes = plt.subplots(
        1, len(predictors), figsize=(3 * len(predictors), 2.8), squeeze=False, sharey=True
    )
    width = float(pit_density["pit_bin"][1] - pit_density["pit_bin"][0])
    for ax, predictor in zip(axes[0], predictors, strict=True):
        ax.bar(
            pit_density["pit_bin"],
            pit_density.sel(predictor=predictor),
            width=width * 0.9,
            color=method_colour(str(predictor)),
        )
        ax.axhline(1.0, color="0.3", ls=":", lw=1)
        ax.set_title(str(predictor), fontsize=FONT)
        ax.set_xlabel("PIT")
    axes[0, 0].set_ylabel("density")
    fig.suptitle(title, fontsize=FONT)
    fig.tight_layout()
    return fig


def plot_error_by_slope(slope_rmse: xr.Dataset, units: str = "m") -> Figure:
    """RMSE against terrain-slope class, one line per predictor, pixel counts on top."""
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    labels = [str(label) for label in slope_rmse["slope_class"].values]
    for predictor in slope_rmse["predictor"].values:
        ax.plot(
            labels,
            slope_rmse["rmse"].sel(predictor=predictor),
            "o-",
            ms=3,
            color=method_colour(str(predictor)),
            label=str(predictor),
        )
    for x, count in enumerate(slope_rmse["pixels"].values):
        ax.annotate(
            f"{count:,}",
            (x, 1.0),
            xycoords=("data", "axes fraction"),
            ha="center",
            va="bottom",
            fontsize=SMALL,
        )
    ax.set_xlabel("terrain slope (degrees)")
    ax.set_ylabel(f"RMSE ({units})")
    ax.legend(fontsize=SMALL)
    ax.grid(alpha=0.3)
    return fig


def plot_variogram_fits(variograms: xr.Dataset, truth: GaussianFieldTruth) -> Figure:
    """Fitted range and sill (channel 0) of every image against the truth, per fraction.

    ``truth``: the law of the images the variograms were fitted to (in their
    order); its range is the distance at which the true correlation falls to
    5 %, which is what PyKrige's range measures for its three models.
    """
    true_range = truth.correlation_distance(0.05)
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
    for fraction in variograms["fraction"].values:
        fits = variograms.sel(fraction=fraction, channel=0)
        axes[0].plot(true_range, fits["variogram_range"], "o", ms=3, label=f"{fraction:g}")
        axes[1].plot(true_range, fits["variogram_psill"] + fits["variogram_nugget"], "o", ms=3)
    line = np.array([true_range.min(), true_range.max()])
    axes[0].plot(line, line, "k:", lw=1)
    axes[1].axhline(truth.sill, color="k", ls=":", lw=1)
    axes[0].set(xlabel="true 5 % correlation distance (px)", ylabel="fitted range (px)")
    axes[1].set(xlabel="true 5 % correlation distance (px)", ylabel="fitted sill")
    axes[0].legend(title="context", fontsize=SMALL)
    return fig
