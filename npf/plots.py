"""Figures of the study: training curves and the seven-row prediction figure."""

from __future__ import annotations

from collections.abc import Sequence

import matplotlib.pyplot as plt
import numpy as np
import xarray as xr
from matplotlib.figure import Figure

from npf.training import History

#: rows of the prediction figure: (label, predictor or special row)
SEVEN_ROWS: tuple[tuple[str, str], ...] = (
    ("context", "context"),
    ("predicted mean", "convcnp"),
    ("predicted std", "std"),
    ("nearest", "nearest"),
    ("linear", "linear"),
    ("cubic", "cubic"),
    ("truth", "truth"),
)
NEUTRAL = "#c8c8c8"


def plot_training_curves(history: History, title: str = "") -> Figure:
    """Train and validation summed NLL per epoch, best epoch marked."""
    epochs = [e["epoch"] for e in history.epochs]
    fig, ax = plt.subplots(figsize=(6, 3.6), constrained_layout=True)
    ax.plot(epochs, [e["train_loss"] for e in history.epochs], "o-", ms=3, label="train")
    ax.plot(epochs, [e["val_loss"] for e in history.epochs], "s-", ms=3, label="validation")
    best = history.best_epoch
    if best is not None:
        best_loss = next(e["val_loss"] for e in history.epochs if e["epoch"] == best)
        ax.axvline(best, color="0.5", ls=":", lw=1)
        ax.plot([best], [best_loss], "*", color="crimson", ms=12, label=f"best (epoch {best})")
    ax.set_xlabel("epoch")
    ax.set_ylabel("NLL summed over target pixels")
    ax.set_title(title)
    ax.legend()
    ax.grid(alpha=0.3)
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
    rgb[~show] = np.array([200, 200, 200]) / 255
    return rgb


def plot_seven_rows(
    predictions: xr.Dataset,
    images: Sequence[int] | None = None,
    cmap: str | None = None,
    std_cmap: str = "magma",
) -> Figure:
    """The report's 7-row figure: context, mean, std, nearest, linear, cubic, truth.

    One column per test image (``images`` are positions along the ``image``
    dimension; default: the first 8). Each column has one colour scale for its
    value rows (from the valid true values) and one for its std. Pixels that are
    not observed (context row) or not valid (nodata) are drawn in neutral grey.
    """
    positions = list(range(min(8, predictions.sizes["image"]))) if images is None else images
    cmap = cmap or default_cmap(predictions)
    channels = predictions.sizes["channel"]
    fig, axes = plt.subplots(
        len(SEVEN_ROWS),
        len(positions),
        figsize=(1.55 * len(positions) + 0.9, 1.55 * len(SEVEN_ROWS)),
        squeeze=False,
        constrained_layout=True,
    )
    value_cmap = plt.get_cmap(cmap).with_extremes(bad=NEUTRAL)
    spread_cmap = plt.get_cmap(std_cmap).with_extremes(bad=NEUTRAL)
    for col, position in enumerate(positions):
        sample = predictions.isel(image=position)
        truth = sample["truth"].values
        valid = sample["valid"].values
        context = sample["context"].values & valid
        low, high = np.nanmin(truth[:, valid]), np.nanmax(truth[:, valid])
        std = sample["std"].sel(predictor="convcnp").values.mean(axis=0)
        std = np.where(valid, std, np.nan)
        for row, (label, key) in enumerate(SEVEN_ROWS):
            ax = axes[row, col]
            ax.set_xticks([])
            ax.set_yticks([])
            if col == 0:
                ax.set_ylabel(label, fontsize=9)
            if key == "std":
                im = ax.imshow(std, cmap=spread_cmap)
                fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02).ax.tick_params(labelsize=6)
                continue
            if key == "context":
                field, show = truth, context
            elif key == "truth":
                field, show = truth, valid
            else:
                field, show = sample["mean"].sel(predictor=key).values, valid
            if channels == 3:
                ax.imshow(_masked_rgb(field, show))
            else:
                shown = np.where(show, field[0], np.nan)
                im = ax.imshow(shown, cmap=value_cmap, vmin=low, vmax=high)
                if key == "truth":
                    bar = fig.colorbar(im, ax=ax, fraction=0.046, pad=0.02)
                    bar.ax.tick_params(labelsize=6)
        axes[0, col].set_title(f"test #{int(sample['image'])}", fontsize=8)
    return fig
