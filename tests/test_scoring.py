"""Scores of predictions: exact on known cases, paired differences, slope classes."""

import math

import numpy as np
import pytest
import xarray as xr

from npf.data.gp import generate
from npf.predict import predict
from npf.predictors import Interpolation
from npf.scoring import (
    error_by_slope,
    paired_difference,
    score_images,
    summarise_scores,
    terrain_slope,
    worst_images,
)


@pytest.fixture(scope="module")
def fields():
    return generate(6, size=16, length_scale_range=(3.0, 5.0), seed=4)


def test_perfect_predictor_scores_exactly(fields) -> None:
    predictions = predict([Interpolation("nearest")], fields, fraction=0.25, progress=False)
    predictions["probabilistic"][:] = True
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


def test_a_diverged_model_gets_huge_finite_scores_not_missing_ones(fields) -> None:
    """A model whose means and stds reached 1e32 (the report's SGD on FashionMNIST):
    squared errors overflow float32, yet its RMSE is a number and stays in the summary."""
    predictions = predict([Interpolation("nearest")], fields, fraction=0.25, progress=False)
    predictions["probabilistic"][:] = True
    predictions["mean"][:] = -1e32
    predictions["std"][:] = 5e31
    scores = score_images(predictions)
    assert np.isfinite(scores.sel(metric=["rmse", "mae", "nll", "mean_std"])).all()
    summary = summarise_scores(scores)["nearest"]
    assert summary["rmse"]["mean"] == pytest.approx(1e32, rel=1e-3)
    # z = 1e32 / 5e31 = 2 at every pixel (the truth is negligible beside 1e32)
    expected_nll = 0.5 * 2**2 + math.log(5e31) + 0.5 * math.log(2 * math.pi)
    assert summary["nll"]["mean"] == pytest.approx(expected_nll, rel=1e-6)


def test_worst_images_rank_by_metric(fields) -> None:
    scores = score_images(predict(PAIR, fields, fraction=0.125, progress=False))
    worst = worst_images(scores, "cubic", k=3)
    values = scores.sel(predictor="cubic", metric="rmse")
    assert list(worst) == list(values.sortby(-values)["image"].values[:3])


PAIR = [Interpolation("nearest"), Interpolation("cubic")]


def test_paired_difference_is_the_mean_of_per_image_differences(fields) -> None:
    scores = score_images(predict(PAIR, fields, fraction=0.125, progress=False))
    rmse = scores.sel(metric="rmse")
    expected = (rmse.sel(predictor="cubic") - rmse.sel(predictor="nearest")).values
    result = paired_difference(scores, "cubic", "nearest")
    assert result["mean"] == pytest.approx(expected.mean())
    assert result["ci95"] == pytest.approx(1.96 * expected.std(ddof=1) / math.sqrt(6))
    assert result["lower_share"] == pytest.approx(np.mean(expected < 0))
    assert result["images"] == 6
    # the summaries of the two predictors differ by the same mean
    summary = summarise_scores(scores)
    assert summary["cubic"]["rmse"]["mean"] - summary["nearest"]["rmse"]["mean"] == pytest.approx(
        result["mean"]
    )
    with pytest.raises(ValueError, match="no image has a nll"):
        paired_difference(scores, "cubic", "nearest", "nll")


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
