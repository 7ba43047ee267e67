import math

import numpy as np
import pytest
import torch
import xarray as xr

from npf.data.base import GridDataset
from npf.data.gp import generate
from npf.evaluation import (
    add_kriging,
    error_by_slope,
    evaluate,
    score_images,
    summary,
    terrain_slope,
    worst_images,
)
from npf.evaluation_report import coverage_table, target_checks, target_table, variogram_table
from npf.model import GridConvCNP
from npf.predict import predict

FRACTIONS = (0.05, 0.125, 0.5)


@pytest.fixture(scope="module")
def fields():
    return generate(6, size=16, length_scale_range=(3.0, 5.0), seed=4)


@pytest.fixture(scope="module")
def sweep(fields):
    torch.manual_seed(0)
    model = GridConvCNP(1, hidden_channels=8, n_blocks=1, kernel_size=5, setconv_kernel_size=5)
    return evaluate(model, fields, FRACTIONS, seed=1, progress=False)


def test_perfect_predictor_scores_exactly(fields) -> None:
    predictions = predict(None, fields, fraction=0.25, baselines=("nearest",), progress=False)
    truth = predictions["truth"].values
    predictions["mean"][:] = truth[None]
    predictions["std"][:] = 0.5
    scores = score_images(predictions).sel(predictor="nearest")
    assert (scores.sel(metric=["rmse", "mae"]) == 0).all()
    assert (scores.sel(metric=["coverage50", "coverage90", "coverage95"]) == 1).all()
    np.testing.assert_allclose(scores.sel(metric="mean_std"), 0.5)
    # exact up to the float32 the predictions are stored in
    np.testing.assert_allclose(
        scores.sel(metric="nll"), math.log(0.5) + 0.5 * math.log(2 * math.pi), rtol=1e-6
    )
    np.testing.assert_allclose(
        scores.sel(metric="crps"), 0.5 * (math.sqrt(2) - 1) / math.sqrt(math.pi), rtol=1e-6
    )


def test_sweep_layout_and_which_metrics_apply(sweep) -> None:
    scores = sweep.scores
    assert list(scores["fraction"].values) == list(FRACTIONS)
    assert set(scores["predictor"].values) == {
        "convcnp",
        "nearest",
        "linear",
        "cubic",
        "oracle",
        "kriging",
    }
    assert scores.sizes["image"] == 6
    assert scores.sel(predictor="cubic", metric="nll").isnull().all()
    for predictor in ("convcnp", "oracle", "kriging"):
        assert np.isfinite(scores.sel(predictor=predictor)).all()
    assert set(sweep.reliability["predictor"].values) == {"convcnp", "oracle", "kriging"}
    np.testing.assert_allclose(sweep.pit_density.mean("pit_bin"), 1.0)
    assert sweep.variograms["variogram_model"].shape == (3, 6, 1)
    assert sweep.slope_rmse is None  # gp fields are not DEMs
    assert float(sweep.focus.attrs["context_fraction"]) == 0.125


def test_oracle_and_kriging_behave_as_theory_says(sweep) -> None:
    at_eighth = summary(sweep.scores)[0.125]
    # the exact posterior is the best predictor and is calibrated
    for predictor in ("nearest", "linear", "cubic", "kriging"):
        assert at_eighth["oracle"]["rmse"]["mean"] <= at_eighth[predictor]["rmse"]["mean"]
    assert (
        abs(float(sweep.reliability.sel(fraction=0.125, predictor="oracle", level=0.9)) - 0.9)
        < 0.05
    )
    # kriging with a fitted variogram comes close to it; every error falls with more context
    assert at_eighth["kriging"]["rmse"]["mean"] < 1.5 * at_eighth["oracle"]["rmse"]["mean"]
    rmse = sweep.scores.sel(metric="rmse").mean("image")
    assert (rmse.diff("fraction").sel(predictor=["oracle", "kriging", "cubic"]) < 0).all()
    assert at_eighth["kriging"]["rmse"]["ci95"] > 0


def test_worst_images_rank_by_metric(sweep) -> None:
    worst = worst_images(sweep.scores, 0.125, "kriging", k=3)
    values = sweep.scores.sel(fraction=0.125, predictor="kriging", metric="rmse")
    assert list(worst) == list(values.sortby(-values)["image"].values[:3])


def test_kriging_adds_a_predictor_and_its_variograms(fields) -> None:
    predictions = predict(None, fields, fraction=0.2, progress=False)
    kriged = add_kriging(predictions, progress=False)
    assert list(kriged["predictor"].values)[-1] == "kriging"
    np.testing.assert_array_equal(
        kriged["mean"].sel(predictor="cubic"), predictions["mean"].sel(predictor="cubic")
    )
    assert (kriged["variogram_range"] > 0).all()
    assert kriged["variogram_model"].dtype.kind == "U"


def test_slope_of_a_plane_and_errors_by_slope_class() -> None:
    resolution = 30.0
    cols = np.arange(16)[None, :].repeat(16, axis=0)
    plane = math.tan(math.radians(35.0)) * resolution * cols.astype(float)
    np.testing.assert_allclose(terrain_slope(plane, resolution), 35.0)
    context = np.zeros((1, 16, 16), dtype=bool)
    context[0, ::4, ::4] = True
    truth = plane[None, None]
    predictions = xr.Dataset(
        {
            "truth": (("image", "channel", "y", "x"), truth),
            "valid": (("image", "y", "x"), np.ones_like(context)),
            "context": (("image", "y", "x"), context),
            "mean": (("predictor", "image", "channel", "y", "x"), truth[None] + 2.0),
        },
        coords={"predictor": ["offset"]},
    )
    table = error_by_slope(predictions, np.array([resolution]))
    assert int(table["pixels"].sel(slope_class="30-45")) == 256 - 16
    assert int(table["pixels"].sum()) == 256 - 16
    assert float(table["rmse"].sel(predictor="offset", slope_class="30-45")) == pytest.approx(2.0)
    assert table["rmse"].sel(slope_class="0-5").isnull().all()


def test_focus_fraction_must_be_swept(fields) -> None:
    with pytest.raises(ValueError, match="focus_fraction"):
        evaluate(None, fields, (0.1, 0.2), progress=False)
    with pytest.raises(TypeError, match="sequence of numbers"):
        evaluate(None, fields, "[0.125]", progress=False)


def test_dem_like_data_get_slope_errors_in_metres() -> None:
    rows, cols = np.mgrid[0:16, 0:16].astype(np.float32)
    elevation = np.stack([100 + 3.0 * cols + 0.2 * rows**2, 50 + 0.5 * rows])[:, None]
    dem = GridDataset(
        "tfasr",
        torch.from_numpy(elevation),
        torch.ones(2, 1, 16, 16, dtype=torch.bool),
        units="m",
        meta={"resolution_m": np.array([30.0, 90.0]), "scene": np.array(["a", "b"])},
    )
    result = evaluate(None, dem, (0.125,), progress=False)
    slope = result.slope_rmse.sel(fraction=0.125)
    assert int(slope["pixels"].sum()) == 2 * (256 - 32)
    assert set(slope["predictor"].values) == {"nearest", "linear", "cubic", "kriging"}
    assert "oracle" not in result.scores["predictor"].values


def test_targets_are_checked_where_they_apply() -> None:
    def scores(rmse: float, nll: float = 0.0, coverage95: float = 0.95) -> dict:
        values = {"rmse": rmse, "nll": nll, "coverage95": coverage95}
        return {key: {"mean": value, "ci95": 0.0} for key, value in values.items()}

    dem = {0.125: {"convcnp": scores(10.0), "cubic": scores(11.0), "kriging": scores(9.5)}}
    checks = target_checks(dem, "tfasr")
    assert [met for _, _, met in checks] == [True, True, True]
    dem[0.125]["convcnp"] = scores(10.5, coverage95=0.90)
    assert [met for _, _, met in target_checks(dem, "tfasr")] == [False, True, False]
    gp = {0.125: {"convcnp": scores(1.0, nll=0.30), "oracle": scores(0.9, nll=0.26)}}
    assert target_checks(gp, "gp")[-1][2] is True
    gp[0.125]["convcnp"] = scores(1.0, nll=0.32)
    assert target_checks(gp, "gp")[-1][2] is False
    assert target_checks({0.125: {"cubic": scores(1.0)}}, "gp") == []
    assert "| no |" in target_table(target_checks(gp, "gp"))


def test_variogram_and_coverage_tables(sweep) -> None:
    table = variogram_table(sweep.variograms)
    assert table.count("\n") == 2 + len(FRACTIONS) - 1
    assert "| 0.125 | 6 |" in table
    coverage = coverage_table(summary(sweep.scores))
    assert coverage.splitlines()[0].startswith("| predictor (nominal 50 / 90 / 95 %) | 0.05 |")
    assert {line.split(" |")[0] for line in coverage.splitlines()[2:]} == {
        "| convcnp",
        "| oracle",
        "| kriging",
    }
