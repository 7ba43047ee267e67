"""The context-fraction sweep: every predictor scored at every fraction."""

import numpy as np
import pytest
import torch

from npf.data.base import GridDataset
from npf.data.gp import generate
from npf.evaluation import evaluate
from npf.model import GridConvCNP
from npf.predictors import ConvCNP, default_predictors
from npf.scaling import ValueScaling
from npf.study.tables import coverage_table, variogram_table

FRACTIONS = (0.05, 0.125, 0.5)


@pytest.fixture(scope="module")
def fields():
    return generate(6, size=16, length_scale_range=(3.0, 5.0), seed=4)


@pytest.fixture(scope="module")
def sweep(fields):
    torch.manual_seed(0)
    model = GridConvCNP(1, hidden_channels=8, n_blocks=1, kernel_size=5, setconv_kernel_size=5)
    predictors = default_predictors(fields, ConvCNP(model, ValueScaling()), kriging=True)
    return evaluate(predictors, fields, FRACTIONS, seed=1, progress=False)


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
    at_eighth = sweep.summary()[0.125]
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


def test_focus_fraction_must_be_swept(fields) -> None:
    with pytest.raises(ValueError, match="focus_fraction"):
        evaluate(default_predictors(fields), fields, (0.1, 0.2), progress=False)
    with pytest.raises(TypeError, match="sequence of numbers"):
        evaluate(default_predictors(fields), fields, "[0.125]", progress=False)


def test_dem_like_data_get_slope_errors_in_metres() -> None:
    rows, cols = np.mgrid[0:16, 0:16].astype(np.float32)
    elevation = np.stack([100 + 3.0 * cols + 0.2 * rows**2, 50 + 0.5 * rows])[:, None]
    dem = GridDataset(
        "tfasr",
        torch.from_numpy(elevation),
        torch.ones(2, 1, 16, 16, dtype=torch.bool),
        units="m",
        labels={"scene": np.array(["a", "b"])},
        pixel_size_m=np.array([30.0, 90.0]),
    )
    result = evaluate(default_predictors(dem, kriging=True), dem, (0.125,), progress=False)
    slope = result.slope_rmse.sel(fraction=0.125)
    assert int(slope["pixels"].sum()) == 2 * (256 - 32)
    assert set(slope["predictor"].values) == {"nearest", "linear", "cubic", "kriging"}
    assert "oracle" not in result.scores["predictor"].values


def test_variogram_and_coverage_tables(sweep) -> None:
    table = variogram_table(sweep.variograms)
    assert table.count("\n") == 2 + len(FRACTIONS) - 1
    assert "| 0.125 | 6 |" in table
    coverage = coverage_table(sweep.summary())
    assert coverage.splitlines()[0].startswith("| predictor (nominal 50 / 90 / 95 %) | 0.05 |")
    assert {line.split(" |")[0] for line in coverage.splitlines()[2:]} == {
        "| convcnp",
        "| oracle",
        "| kriging",
    }
