"""The void-filling page's harness: npf.study.void_filling (benchmark JSON -> tables, figures)."""

from __future__ import annotations

import json

import matplotlib
import numpy as np
import xarray as xr

from npf.std_calibration import StdCalibration
from npf.study.void_filling import (
    as_dataset,
    as_records,
    calibration_table,
    colour,
    label,
    plot_example_fill,
    plot_scores_by_size,
    read_results,
    scores_table,
)
from npf.voids import compare, fill_cubic, fill_gdal, fill_kriging, make_voids, pool

matplotlib.use("Agg")


def surface(size: int = 96) -> np.ndarray:
    rows, cols = np.mgrid[:size, :size]
    return 1000.0 + 40.0 * np.sin(rows / 12.0) + 30.0 * np.cos(cols / 9.0) + 0.5 * rows


METHODS = {"gdal": fill_gdal, "cubic": fill_cubic, "kriging": fill_kriging}


def test_stored_results_read_back_as_the_pooled_scores(tmp_path) -> None:
    values = surface()
    runs = [compare(values, make_voids(values, 0.05, seed), METHODS) for seed in (0, 1)]
    pooled = pool(xr.concat(runs, dim="run", data_vars="all"))
    path = tmp_path / "void-filling.json"
    path.write_text(json.dumps({"pooled_by_share": {"0.05": as_records(pooled)}, "runs": []}))
    restored = read_results(path).pooled[0.05]
    for name in ("rmse", "mae", "nll", "coverage95", "pixels", "s_per_mpx"):
        xr.testing.assert_allclose(restored[name], pooled[name].transpose(*restored[name].dims))
    assert list(restored["size_class"].values) == list(pooled["size_class"].values)
    again = as_records(as_dataset(as_records(pooled)))
    assert json.dumps(again) == json.dumps(as_records(pooled))  # NaN where no std


def test_table_and_figures_show_every_method() -> None:
    values = surface()
    voids = make_voids(values, 0.05, 0)
    pooled = compare(values, voids, METHODS)
    table = scores_table(pooled)
    lines = table.splitlines()
    assert len(lines) == 2 + pooled.sizes["size_class"] * 3
    all_rows = [line for line in lines if line.startswith("| all |")]
    assert [row.split(" | ")[1] for row in all_rows] == ["GDAL fillnodata", "cubic", "kriging"]
    assert all(row.split(" | ")[5] == "–" for row in all_rows[:2])  # no std: no NLL
    fig = plot_scores_by_size(pooled)
    legend = [text.get_text() for text in fig.legends[0].get_texts()]
    assert legend == ["GDAL fillnodata", "cubic", "kriging"]
    holed = voids.apply(values)
    fills = {name: fill(holed, voids.mask) for name, fill in METHODS.items()}
    fig = plot_example_fill(values, voids, fills)
    titles = [ax.get_title() for ax in fig.axes if ax.get_title()]
    assert titles[:3] == ["terrain", "with voids", "kriging\nstd"]
    assert [t.split("\n")[0] for t in titles if "RMSE" in t] == [
        "GDAL fillnodata",
        "cubic",
        "kriging",
    ]


def test_convcnp_centrings_are_named_and_coloured_apart() -> None:
    assert label("convcnp") == "ConvCNP"
    assert label("convcnp-local") == "ConvCNP, local mean"
    assert label("convcnp-window") == "ConvCNP, window-centred"
    assert colour("convcnp-filled") == colour("convcnp") != colour("convcnp-window")
    assert colour("convcnp-local") != colour("convcnp")
    assert label("convcnp-voids") == "ConvCNP, void-tuned"
    assert label("convcnp-voids-filled") == "ConvCNP, void-tuned, filled trend"
    assert colour("convcnp-voids-filled") == colour("convcnp") != colour("convcnp-voids-local")
    assert colour("convcnp-base-filled") != colour("convcnp")
    uncalibrated = "convcnp-voids-filled-uncalibrated"
    assert label(uncalibrated) == "ConvCNP, void-tuned, filled trend, uncalibrated"
    assert colour(uncalibrated) != colour("convcnp")
    assert len({colour(m) for m in ("gdal", "cubic", "kriging", "convcnp")}) == 4
    assert label("convcnp-raw-filled17") == "ConvCNP, void-tuned on raw context, filled trend 17 px"
    assert label("convcnp-base-local") == "ConvCNP, tile-trained, local mean"
    assert label("convcnp-new") == "ConvCNP, new"


def test_calibration_table_lists_each_factor_by_width() -> None:
    table = calibration_table(
        {"void-tuned, filled": StdCalibration((2.8, 34.0), (0.95, 1.41), (40_000, 30_000))}
    )
    assert table.splitlines()[2] == "| void-tuned, filled | 3 px: ×0.95, 34 px: ×1.41 | 70,000 |"
