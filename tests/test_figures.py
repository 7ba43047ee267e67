"""The figures are readable at the book's page width and colour each method the same way."""

from __future__ import annotations

import matplotlib.pyplot as plt
import numpy as np
import pytest
import torch
import xarray as xr
from matplotlib.axes import Axes
from matplotlib.colors import to_hex
from matplotlib.figure import Figure

from npf.baselines import BASELINES
from npf.data.base import GridDataset
from npf.data.gp import generate
from npf.model import GridConvCNP
from npf.predict import predict
from npf.predictors import ConvCNP, default_predictors
from npf.scaling import ValueScaling
from npf.study.figures import (
    METHOD_COLOURS,
    error_rows,
    plot_error_by_slope,
    plot_metric_sweep,
    plot_pit,
    plot_predictions,
    plot_reliability,
    plot_training_curves,
)
from npf.training import History

SHOWN_WIDTH_IN = 780 / 96  # the book shows a figure 780 px wide; CSS has 96 px per inch


def shown_points(fig: Figure, fontsize: float) -> float:
    """Font size in points as the reader sees it once the figure is scaled to the page."""
    return fontsize * SHOWN_WIDTH_IN / fig.get_figwidth()


def small_model(dataset: GridDataset) -> list:
    """An untrained small ConvCNP and the study's other predictors for ``dataset``."""
    torch.manual_seed(0)
    model = GridConvCNP(
        dataset.channels, hidden_channels=8, n_blocks=1, kernel_size=5, setconv_kernel_size=5
    )
    return default_predictors(dataset, ConvCNP(model, ValueScaling()))


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


@pytest.fixture(scope="module")
def gp_predictions() -> xr.Dataset:
    fields = generate(6, size=16, length_scale_range=(3.0, 5.0), seed=4)
    return predict(small_model(fields), fields, fraction=0.25, progress=False)


@pytest.fixture(scope="module")
def rgb_predictions() -> xr.Dataset:
    values = torch.rand(3, 3, 12, 12, generator=torch.Generator().manual_seed(0))
    valid = torch.ones(3, 1, 12, 12, dtype=torch.bool)
    valid[:, :, :2] = False  # a nodata strip
    values[:, :, :2] = float("nan")
    dataset = GridDataset("eurosat", values, valid, units="intensity")
    return predict(small_model(dataset), dataset, fraction=0.25, progress=False)


def image_grid(fig: Figure, n_cols: int) -> np.ndarray:
    """The image panels as (row, column); colour bars hold no image."""
    panels = [ax for ax in fig.axes if ax.images]
    return np.array(panels).reshape(-1, n_cols)


def colour_bars(fig: Figure) -> list[Axes]:
    return [ax for ax in fig.axes if not ax.images]


def test_prediction_figure_fits_the_page_with_the_oracle_rows(gp_predictions) -> None:
    fig = plot_predictions(gp_predictions)
    assert 8 <= fig.get_figwidth() <= 9
    grid = image_grid(fig, 4)  # four of the six images by default
    labels = [ax.get_ylabel() for ax in grid[:, 0]]
    assert labels == [
        "context",
        "convcnp mean",
        "convcnp std",
        "oracle mean",
        "oracle std",
        "nearest",
        "linear",
        "cubic",
        "truth",
    ]
    assert [ax.get_title() for ax in grid[0]] == [f"test #{i}" for i in range(4)]
    label_size = grid[0, 0].yaxis.label.get_fontsize()
    assert shown_points(fig, label_size) >= 10
    fig.canvas.draw()
    for bar in colour_bars(fig):
        ticks = [t for t in bar.get_xticklabels() + bar.get_yticklabels() if t.get_text()]
        assert ticks and all(shown_points(fig, t.get_fontsize()) >= 9 for t in ticks)


def test_one_value_scale_per_column_and_one_std_scale_per_figure(gp_predictions) -> None:
    fig = plot_predictions(gp_predictions, images=[5, 2])
    grid = image_grid(fig, 2)
    assert [ax.get_title() for ax in grid[0]] == ["test #5", "test #2"]
    std_rows = [1 + 1, 1 + 3]  # convcnp std, oracle std
    value_rows = [r for r in range(len(grid)) if r not in std_rows]
    for col, image in enumerate([5, 2]):
        truth = gp_predictions["truth"].sel(image=image).values
        limits = {grid[r, col].images[0].get_clim() for r in value_rows}
        assert limits == {(truth.min(), truth.max())}
    std_limits = {grid[r, c].images[0].get_clim() for r in std_rows for c in range(2)}
    assert len(std_limits) == 1 and std_limits.pop()[0] == 0
    bars = colour_bars(fig)
    # a value bar under each column, one std bar beside the figure
    assert sorted(bar.get_xlabel() or bar.get_ylabel() for bar in bars) == [
        "field value",
        "field value",
        "predicted std (field value)",
    ]


def test_without_the_oracle_the_report_seven_rows(gp_predictions) -> None:
    model_and_baselines = gp_predictions.sel(predictor=["convcnp", *BASELINES])
    grid = image_grid(plot_predictions(model_and_baselines, images=[0]), 1)
    assert [ax.get_ylabel() for ax in grid[:, 0]] == [
        "context",
        "convcnp mean",
        "convcnp std",
        "nearest",
        "linear",
        "cubic",
        "truth",
    ]


def test_rgb_values_as_colour_images_and_std_averaged_over_channels(rgb_predictions) -> None:
    fig = plot_predictions(rgb_predictions)
    grid = image_grid(fig, 3)
    assert grid[1, 0].images[0].get_array().shape == (12, 12, 3)  # convcnp mean
    std = grid[2, 0].images[0].get_array()
    expected = rgb_predictions["std"].sel(predictor="convcnp").isel(image=0).mean("channel")
    np.testing.assert_allclose(std[2:], expected.values[2:], rtol=1e-6)
    assert std.mask[:2].all()  # nodata drawn grey
    assert [bar.get_ylabel() for bar in colour_bars(fig)] == ["predicted std (intensity)"]


def epochs(n: int) -> History:
    return History(
        [
            {"epoch": e, "train_loss": 10.0 / e, "val_loss": 9.0 / e + e, "seconds": 1.0}
            for e in range(1, n + 1)
        ]
    )


def visible_xticks(fig: Figure) -> list[float]:
    fig.canvas.draw()
    ax = fig.axes[0]
    low, high = ax.get_xlim()
    return [float(t) for t in ax.get_xticks() if low <= t <= high]


@pytest.mark.parametrize("n_epochs", [1, 7, 50])
def test_training_curves_tick_whole_epochs(n_epochs: int) -> None:
    ticks = visible_xticks(plot_training_curves(epochs(n_epochs)))
    assert ticks and all(t.is_integer() for t in ticks)


def sweep_summary() -> dict[float, dict[str, dict[str, dict[str, float]]]]:
    def scores(value: float, probabilistic: bool) -> dict[str, dict[str, float]]:
        metrics = ("rmse", "crps", "nll", "coverage95") if probabilistic else ("rmse",)
        return {m: {"mean": value, "ci95": 0.1} for m in metrics}

    return {
        f: {
            "convcnp": scores(1.0 - f, True),
            "kriging": scores(1.1 - f, True),
            "linear": scores(1.3 - f, False),
        }
        for f in (0.05, 0.125, 0.5)
    }


def test_metric_sweep_is_a_two_by_two_grid_with_fixed_colours() -> None:
    fig = plot_metric_sweep(sweep_summary(), units="m")
    assert 8 <= fig.get_figwidth() <= 9
    panels = fig.axes
    assert [ax.get_title() for ax in panels] == [
        "RMSE (m)",
        "CRPS (m)",
        "NLL per pixel (nats)",
        "95 % interval coverage",
    ]
    fig.canvas.draw()
    corners = [ax.get_position() for ax in panels]
    assert len({round(c.x0, 3) for c in corners}) == 2
    assert len({round(c.y0, 3) for c in corners}) == 2
    for ax in panels:
        for container in ax.containers:
            colour = to_hex(container.lines[0].get_color())
            assert colour == METHOD_COLOURS[container.get_label()].lower()
    assert [t.get_text() for t in fig.legends[0].get_texts()] == ["convcnp", "kriging", "linear"]
    # an odd number of panels: the legend still names every predictor, x labels on the lowest
    fig = plot_metric_sweep(sweep_summary(), metrics=("nll", "rmse", "coverage95"))
    assert [bool(ax.get_xlabel()) for ax in fig.axes] == [False, True, True]
    assert sorted(t.get_text() for t in fig.legends[0].get_texts()) == [
        "convcnp",
        "kriging",
        "linear",
    ]


def test_metric_sweep_writes_a_far_off_mean_at_the_edge_instead_of_scaling_to_it() -> None:
    summary = sweep_summary()
    summary[0.05]["kriging"]["nll"] = {"mean": 67.3, "ci95": 97.0}  # one image's NLL of 1e4
    nll = plot_metric_sweep(summary, metrics=("nll",)).axes[0]
    bottom, top = nll.get_ylim()
    assert top < 2.0 and bottom > -1.0  # the others' means and CIs, not 67 +- 97
    assert [t.get_text() for t in nll.texts] == ["kriging 67.3 ↑"]
    rmse = plot_metric_sweep(summary, metrics=("rmse",)).axes[0]
    assert not rmse.texts and rmse.get_ylim()[1] > 1.3  # nothing far off: matplotlib's limits


def test_worst_images_have_colour_bars(gp_predictions) -> None:
    rows = error_rows(gp_predictions, ["convcnp", "nearest"])
    fig = plot_predictions(gp_predictions, [3, 1], rows)
    grid = image_grid(fig, 2)
    assert [ax.get_ylabel() for ax in grid[:, 0]] == [
        "context",
        "truth",
        "convcnp mean",
        "convcnp |error|",
        "convcnp std",
        "nearest mean",
        "nearest |error|",
    ]
    spread_limits = {grid[r, c].images[0].get_clim() for r in (3, 4, 6) for c in range(2)}
    assert len(spread_limits) == 1
    assert sorted(bar.get_xlabel() or bar.get_ylabel() for bar in colour_bars(fig)) == [
        "field value",
        "field value",
        "|error| and predicted std (field value)",
    ]


def test_each_method_has_one_distinct_colour_in_every_figure() -> None:
    assert set(METHOD_COLOURS) == {"convcnp", "oracle", "kriging", *BASELINES}
    assert len(set(METHOD_COLOURS.values())) == len(METHOD_COLOURS)
    predictors = ["kriging", "linear", "convcnp"]
    levels = xr.DataArray(
        np.full((3, 4), 0.5), coords={"predictor": predictors, "level": [0.2, 0.4, 0.6, 0.8]}
    )
    pit = xr.DataArray(
        np.ones((3, 4)), coords={"predictor": predictors, "pit_bin": [0.125, 0.375, 0.625, 0.875]}
    )
    slope = xr.Dataset(
        {
            "rmse": (("predictor", "slope_class"), np.ones((3, 2))),
            "pixels": ("slope_class", [5, 6]),
        },
        coords={"predictor": predictors, "slope_class": ["0-5", "5-15"]},
    )
    reliability = plot_reliability(levels).axes[0].get_lines()[1:]  # after the diagonal
    by_slope = plot_error_by_slope(slope).axes[0].get_lines()
    pit_bars = [ax.patches[0] for ax in plot_pit(pit).axes]
    for i, predictor in enumerate(predictors):
        expected = METHOD_COLOURS[predictor].lower()
        assert to_hex(reliability[i].get_color()) == expected
        assert to_hex(by_slope[i].get_color()) == expected
        assert to_hex(pit_bars[i].get_facecolor()) == expected
    sweep = plot_metric_sweep(sweep_summary())
    assert {
        container.get_label(): to_hex(container.lines[0].get_color())
        for container in sweep.axes[0].containers
    } == {p: METHOD_COLOURS[p].lower() for p in predictors}
