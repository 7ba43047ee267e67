"""Figures and Markdown tables of the context-fraction evaluation (:mod:`npf.evaluation`)."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from npf.kriging import VARIOGRAM_MODELS
from npf.plots import FONT, PAGE_WIDTH, SMALL, Row, method_colour, plot_image_grid

#: Training drew context shares from [0, TRAINING_MAX_CONTEXT] (the report's 30 %).
TRAINING_MAX_CONTEXT = 0.3
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


def plot_metric_sweep(
    summary: dict[float, dict[str, dict[str, dict[str, float]]]],
    metrics: Sequence[str] = ("rmse", "crps", "nll", "coverage95"),
    units: str = "",
) -> Figure:
    """Each metric's mean and 95 % CI over images against the context fraction.

    Panels in a grid two wide; fractions above the training range are shaded;
    each predictor has its colour of :data:`~npf.plots.METHOD_COLOURS`.
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
        for predictor in predictors:
            points = [
                (f, summary[f][predictor][metric])
                for f in fractions
                if metric in summary[f][predictor]
            ]
            if not points:
                continue
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
        if metric.startswith("coverage"):
            ax.axhline(int(metric.removeprefix("coverage")) / 100, color="0.4", ls=":", lw=1)
        ax.axvspan(TRAINING_MAX_CONTEXT, max(fractions) * 1.2, color="0.9", zorder=0)
        ax.set_xscale("log")
        unit = f" ({units})" if units and metric in ("rmse", "mae", "crps", "mean_std") else ""
        ax.set_title(METRIC_LABELS[metric] + unit, fontsize=FONT)
        ax.tick_params(labelsize=SMALL, labelbottom=True)
        ax.grid(alpha=0.3)
    handles = {}
    for i, ax in enumerate(axes.flat[: len(metrics)]):
        if i + n_cols >= len(metrics):  # the lowest panel of its column
            ax.set_xlabel("context fraction (shaded: beyond training)", fontsize=SMALL)
        lines, labels = ax.get_legend_handles_labels()
        handles |= dict(zip(labels, lines, strict=True))
    fig.legend(
        handles.values(), handles, loc="outside lower center", ncols=len(handles), fontsize=SMALL
    )
    return fig


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


def plot_images(
    predictions: xr.Dataset, images: Sequence[int], predictors: Sequence[str] = ("convcnp",)
) -> Figure:
    """Columns = ``images`` (ids); rows = context, truth, then per predictor its mean,
    absolute error and (when probabilistic) std, with colour bars
    (:func:`~npf.plots.plot_image_grid`: errors and stds share one scale)."""
    rows: list[Row] = [("context", "context", ""), ("truth", "truth", "")]
    for predictor in predictors:
        rows += [
            (f"{predictor} mean", "mean", predictor),
            (f"{predictor} |error|", "error", predictor),
        ]
        if np.isfinite(predictions["std"].sel(predictor=predictor)).any():
            rows.append((f"{predictor} std", "std", predictor))
    return plot_image_grid(predictions.sel(image=list(images)), rows)


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


def coverage_table(
    summary: dict[float, dict[str, dict[str, dict[str, float]]]],
    levels: Sequence[str] = ("coverage50", "coverage90", "coverage95"),
) -> str:
    """Markdown: probabilistic predictors (rows) by fraction (columns), coverages at ``levels``."""
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
    return _markdown([f"predictor (nominal {nominal} %)", *(f"{f:.3g}" for f in fractions)], rows)


def _markdown(header: Sequence[str], rows: Sequence[Sequence[str]], align: str = "---:") -> str:
    lines = ["| " + " | ".join(header) + " |", "|---|" + f"{align}|" * (len(header) - 1)]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def variogram_table(variograms: xr.Dataset) -> str:
    """Markdown: per fraction, how many fits chose each model and which bounds were hit."""
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
    return _markdown(["context", "fits", *VARIOGRAM_MODELS, "on a bound", "bounds hit"], rows)


def image_table(scores: xr.DataArray, images: Sequence[int], fraction: float) -> str:
    """Markdown: RMSE of every predictor on the given images at ``fraction``."""
    rmse = scores.sel(fraction=fraction, metric="rmse")
    rows = [[str(image)] + [f"{v:.3g}" for v in rmse.sel(image=image).values] for image in images]
    return _markdown(["test image", *map(str, rmse["predictor"].values)], rows)


def group_table(scores: xr.DataArray, groups: np.ndarray, fraction: float) -> str:
    """Markdown: mean per-image RMSE of every predictor per group (e.g. DEM scene)."""
    rmse = scores.sel(fraction=fraction, metric="rmse")
    rows = []
    for group in np.unique(groups):
        chosen = rmse.isel(image=np.flatnonzero(groups == group))
        rows.append(
            [str(group), str(chosen.sizes["image"])]
            + [f"{v:.3g}" for v in chosen.mean("image").values]
        )
    return _markdown(["group", "images", *map(str, rmse["predictor"].values)], rows)


def slope_table(slope_rmse: xr.Dataset) -> str:
    """Markdown: RMSE per predictor and slope class, and the pixels per class."""
    classes = [f"{c}°" for c in slope_rmse["slope_class"].values]
    rows = [
        [str(p)] + [f"{v:.1f}" for v in slope_rmse["rmse"].sel(predictor=p).values]
        for p in slope_rmse["predictor"].values
    ]
    rows.append(["pixels"] + [f"{int(v):,}" for v in slope_rmse["pixels"].values])
    return _markdown(["predictor", *classes], rows)


def target_checks(
    summary: dict[float, dict[str, dict[str, dict[str, float]]]], dataset: str
) -> list[tuple[str, str, bool]]:
    """The study's targets for ConvCNP at 1/8 context that apply to ``dataset``.

    95 % intervals covering 93-97 %; on DEMs (``tfasr``) RMSE below cubic's
    and within 10 % of kriging's; with an oracle (``gp``) NLL within 0.05
    nats per pixel of it. Each check: (target, measured, met).
    """
    at_eighth = summary.get(0.125, {})
    if "convcnp" not in at_eighth:
        return []
    convcnp = at_eighth["convcnp"]
    coverage95 = convcnp["coverage95"]["mean"]
    checks = [
        ("95 % intervals cover 93-97 %", f"{100 * coverage95:.1f} %", 0.93 <= coverage95 <= 0.97)
    ]
    rmse = {name: scores["rmse"]["mean"] for name, scores in at_eighth.items()}
    if dataset == "tfasr":
        checks.append(
            (
                "RMSE below cubic's",
                f"{rmse['convcnp']:.2f} vs {rmse['cubic']:.2f}",
                rmse["convcnp"] < rmse["cubic"],
            )
        )
        ratio = rmse["convcnp"] / rmse["kriging"]
        checks.append(("RMSE within 10 % of kriging's", f"ratio {ratio:.3f}", ratio <= 1.10))
    if "oracle" in at_eighth:
        gap = convcnp["nll"]["mean"] - at_eighth["oracle"]["nll"]["mean"]
        checks.append(
            ("NLL within 0.05 nats/pixel of the oracle's", f"gap {gap:+.3f}", gap <= 0.05)
        )
    return checks


def target_table(checks: Sequence[tuple[str, str, bool]]) -> str:
    """Markdown of :func:`target_checks`."""
    rows = [[name, value, "yes" if met else "no"] for name, value, met in checks]
    return _markdown(["target (ConvCNP, context 1/8)", "measured", "met"], rows)


def plot_variogram_fits(variograms: xr.Dataset, true_range: np.ndarray, true_sill: float) -> Figure:
    """Fitted range and sill (channel 0) of every image against the truth, per fraction.

    ``true_range``: per image, the distance at which the true correlation falls
    to 5 % (what PyKrige's range measures for its three models).
    """
    fig, axes = plt.subplots(1, 2, figsize=(8, 3.6), constrained_layout=True)
    for fraction in variograms["fraction"].values:
        fits = variograms.sel(fraction=fraction, channel=0)
        axes[0].plot(true_range, fits["variogram_range"], "o", ms=3, label=f"{fraction:g}")
        axes[1].plot(true_range, fits["variogram_psill"] + fits["variogram_nugget"], "o", ms=3)
    line = np.array([true_range.min(), true_range.max()])
    axes[0].plot(line, line, "k:", lw=1)
    axes[1].axhline(true_sill, color="k", ls=":", lw=1)
    axes[0].set(xlabel="true 5 % correlation distance (px)", ylabel="fitted range (px)")
    axes[1].set(xlabel="true 5 % correlation distance (px)", ylabel="fitted sill")
    axes[0].legend(title="context", fontsize=SMALL)
    return fig
