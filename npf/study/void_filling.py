"""The book page "Filling voids in elevation models": the stored results of
``benchmarks/void_filling.py`` as tables and figures, and one example fill to look at.

The benchmark writes one JSON per run; :func:`read_results` turns its pooled scores
back into the :func:`npf.voids.pool` Dataset (``fill_method`` x ``size_class``), which
:func:`scores_table` and :func:`plot_scores_by_size` show.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import xarray as xr
from matplotlib.figure import Figure

from npf.std_calibration import StdCalibration
from npf.study.figures import FONT, PAGE_WIDTH, SMALL, method_colour
from npf.study.tables import METRIC_LABELS, UNIT_METRICS, markdown_table
from npf.voids import METRICS, Fill, Voids

#: the methods' names in the benchmark, as the page writes them
LABELS = {"convcnp": "ConvCNP", "gdal": "GDAL fillnodata", "cubic": "cubic", "kriging": "kriging"}
#: GDAL's fill has no entry in METHOD_COLOURS (it is not a study predictor)
GDAL_COLOUR = "#8C564B"
#: the benchmark's names for ConvCNP variants, ``convcnp[-<checkpoint>][-<centring>]``:
#: checkpoints (``--checkpoint base=... voids=...``) ...
CHECKPOINT_LABELS = {
    "base": "tile-trained",
    "voids": "void-tuned",
    "raw": "void-tuned on raw context",
}
#: ... and centrings (``--centrings local filled window``)
CENTRING_LABELS = {"local": "local mean", "window": "window-centred", "filled": "filled trend"}
#: the variants drawn in the study's ConvCNP colour; the others are grey
MAIN_CONVCNP = ("convcnp", "convcnp-filled", "convcnp-voids-filled")


def label(method: str) -> str:
    """How the page names a benchmark method, e.g. ``convcnp-voids-filled17``:
    "ConvCNP, void-tuned, filled trend 17 px"."""
    if method in LABELS:
        return LABELS[method]
    first, *parts = method.split("-")
    if first != "convcnp":
        return method
    words = []
    for part in parts:
        centring = part.rstrip("0123456789")
        if part in CHECKPOINT_LABELS:
            words.append(CHECKPOINT_LABELS[part])
        elif centring in CENTRING_LABELS:
            box = part[len(centring) :]
            words.append(
                f"{CENTRING_LABELS[centring]} {box} px" if box else CENTRING_LABELS[centring]
            )
        else:
            words.append(part)
    return ", ".join(["ConvCNP", *(word for word in words if word)])


def colour(method: str) -> str:
    """The study's colour of the method: ConvCNP's for the main ConvCNP variant (filled
    trend centring, void-tuned), grey for the others, brown for GDAL."""
    if method == "gdal":
        return GDAL_COLOUR
    return method_colour("convcnp" if method in MAIN_CONVCNP else method)


@dataclass(frozen=True)
class VoidResults:
    """One benchmark run: pooled scores per void share, and its record."""

    pooled: dict[float, xr.Dataset]
    record: dict[str, Any]

    @property
    def runs(self) -> pd.DataFrame:
        """One row per scene, share and seed: the overall RMSE of each method (m)."""
        rows = []
        for run in self.record["runs"]:
            for score in run["scores"]:
                if score["size_class"] == "all":
                    rows.append(
                        {k: run[k] for k in ("scene", "share", "seed")}
                        | {"method": score["fill_method"], "rmse": score["rmse"]}
                    )
        frame = pd.DataFrame(rows)
        return frame.pivot_table(index=["scene", "share", "seed"], columns="method", values="rmse")


def as_records(result: xr.Dataset) -> dict[str, Any]:
    """A compare/pool Dataset as plain JSON: scores per method and class, times per method."""
    scores = result[[*METRICS, "pixels", "blobs"]].to_dataframe().reset_index()
    return {
        "scores": scores.to_dict("records"),
        "seconds": result["seconds"].to_series().to_dict(),
        "s_per_mpx": result["s_per_mpx"].to_series().to_dict(),
        "megapixels": float(result["megapixels"]),
    }


def as_dataset(records: Mapping[str, Any]) -> xr.Dataset:
    """:func:`as_records` back to the Dataset (as :func:`npf.voids.pool` made it)."""
    frame = pd.DataFrame(records["scores"]).set_index(["fill_method", "size_class"])
    pooled = xr.Dataset.from_dataframe(frame)
    methods, classes = (
        list(dict.fromkeys(score[key] for score in records["scores"]))
        for key in ("fill_method", "size_class")
    )
    pooled = pooled.sel(fill_method=methods, size_class=classes)
    for count in ("pixels", "blobs"):  # the same voids for every method
        pooled[count] = pooled[count].isel(fill_method=0, drop=True).astype(int)
    pooled["seconds"] = ("fill_method", [records["seconds"][m] for m in methods])
    pooled["s_per_mpx"] = ("fill_method", [records["s_per_mpx"][m] for m in methods])
    pooled["megapixels"] = records["megapixels"]
    return pooled


def read_results(path: str | Path) -> VoidResults:
    """A JSON written by ``benchmarks/void_filling.py``."""
    record = json.loads(Path(path).read_text())
    pooled = {float(share): as_dataset(r) for share, r in record["pooled_by_share"].items()}
    return VoidResults(pooled, record)


def scores_table(pooled: xr.Dataset, units: str = "m") -> str:
    """Markdown: one row per size class and method; seconds per megapixel on ``all`` rows."""
    header = [
        "void size (px)",
        "method",
        "pixels",
        f"RMSE ({units})",
        f"MAE ({units})",
        "NLL",
        "95 % coverage",
        "s / Mpx",
    ]
    rows = []
    for size_class in map(str, pooled["size_class"].values):
        for method in map(str, pooled["fill_method"].values):
            row = pooled.sel(size_class=size_class, fill_method=method)
            rows.append(
                [
                    size_class,
                    label(method),
                    f"{int(row['pixels']):,}",
                    _cell(row["rmse"]),
                    _cell(row["mae"]),
                    _cell(row["nll"], ".2f"),
                    _cell(row["coverage95"], ".1%"),
                    _cell(row["s_per_mpx"], ".2f") if size_class == "all" else "",
                ]
            )
    return markdown_table(header, rows)


def calibration_table(calibrations: Mapping[str, StdCalibration]) -> str:
    """Markdown: for each calibration (by the name the page gives it), the std factor at
    each void width it was fitted at, and the void pixels behind it."""
    rows = [
        [
            name,
            ", ".join(
                f"{width:.0f} px: ×{factor:.2f}"
                for width, factor in zip(calibration.widths_px, calibration.factors, strict=True)
            ),
            f"{sum(calibration.pixels):,}",
        ]
        for name, calibration in calibrations.items()
    ]
    return markdown_table(["model and centring", "std factor by void width", "pixels"], rows)


def _cell(value: xr.DataArray, style: str = ".1f") -> str:
    return f"{float(value):{style}}" if np.isfinite(value) else "–"


def plot_scores_by_size(pooled: xr.Dataset, units: str = "m") -> Figure:
    """RMSE, MAE, NLL and 95 % coverage inside the voids against the void size class."""
    classes = [c for c in map(str, pooled["size_class"].values) if c != "all"]
    fig, axes = plt.subplots(
        2, 2, figsize=(PAGE_WIDTH, 6.6), sharex=True, layout="constrained", squeeze=False
    )
    methods = list(map(str, pooled["fill_method"].values))
    # the grey ConvCNP variants told apart by their lines
    greys = [m for m in methods if m.startswith("convcnp") and m not in MAIN_CONVCNP]
    styles = {m: ("--", ":", "-.")[i % 3] for i, m in enumerate(greys)}
    for ax, metric in zip(axes.flat, METRICS, strict=True):
        for method in methods:
            values = pooled[metric].sel(fill_method=method, size_class=classes).values
            if not np.isfinite(values).any():
                continue
            ax.plot(
                classes,
                values,
                marker="o",
                color=colour(method),
                linestyle=styles.get(method, "-"),
                label=label(method),
            )
        if metric == "coverage95":
            ax.axhline(0.95, color="0.4", ls=":", lw=1)
        unit = f" ({units})" if metric in UNIT_METRICS else ""
        ax.set_title(METRIC_LABELS.get(metric, metric) + unit, fontsize=FONT)
        ax.tick_params(labelsize=SMALL, labelbottom=True)
        ax.grid(alpha=0.3)
    for ax in axes[-1]:
        ax.set_xlabel("void size class (equivalent diameter, px)", fontsize=SMALL)
    handles, labels = axes.flat[0].get_legend_handles_labels()
    fig.legend(handles, labels, loc="outside lower center", ncols=len(labels), fontsize=SMALL)
    return fig


def _stacked(method: str) -> str:
    """The method's label with a variant on a line of its own, for narrow panels."""
    return label(method).replace(", ", "\n")


def plot_example_fill(truth: np.ndarray, voids: Voids, fills: Mapping[str, Fill]) -> Figure:
    """Top: the terrain, the terrain with its voids, and each std map; bottom: each
    method's absolute error inside the voids, on one colour scale (m)."""
    methods = list(fills)
    stds = [m for m in methods if fills[m].std is not None]
    columns = max(len(methods), 2 + len(stds))
    fig, axes = plt.subplots(
        2, columns, figsize=(PAGE_WIDTH, PAGE_WIDTH / columns * 2 + 1.2), layout="constrained"
    )
    for ax in axes.flat:
        ax.set_xticks([]), ax.set_yticks([])
    low, high = np.nanpercentile(truth, [1, 99])
    terrain = {"cmap": "terrain", "vmin": low, "vmax": high}
    axes[0, 0].imshow(truth, **terrain)
    axes[0, 0].set_title("terrain", fontsize=SMALL)
    image = axes[0, 1].imshow(voids.apply(truth), **terrain)
    axes[0, 1].set_title("with voids", fontsize=SMALL)
    fig.colorbar(image, ax=axes[0, :2], shrink=0.8, label="elevation (m)")
    inside = voids.mask
    std_max = max(np.nanpercentile(fills[m].std[inside], 99) for m in stds) if stds else 1.0
    for ax, method in zip(axes[0, 2:], stds, strict=False):
        std = np.where(inside, fills[method].std, np.nan)
        image = ax.imshow(std, cmap="viridis", vmin=0, vmax=std_max)
        ax.set_title(f"{_stacked(method)}\nstd", fontsize=SMALL)
    if stds:
        fig.colorbar(image, ax=axes[0, 2:], shrink=0.8, label="std (m)")
    errors = {m: np.where(inside, np.abs(fills[m].mean - truth), np.nan) for m in methods}
    error_max = max(np.nanpercentile(e, 99) for e in errors.values())
    for ax, method in zip(axes[1], methods, strict=False):
        image = ax.imshow(errors[method], cmap="magma", vmin=0, vmax=error_max)
        rmse = float(np.sqrt(np.nanmean(errors[method] ** 2)))
        ax.set_title(f"{_stacked(method)}\nRMSE {rmse:.1f} m", fontsize=SMALL)
    fig.colorbar(image, ax=axes[1, :], shrink=0.8, label="|error| in voids (m)")
    for ax in list(axes[0, 2 + len(stds) :]) + list(axes[1, len(methods) :]):
        ax.remove()
    return fig
