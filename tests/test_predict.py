import subprocess
import sys

import numpy as np
import pytest
import torch

from npf.data import load_splits
from npf.predict import evaluation_contexts, predict
from npf.predictors import (
    GaussianProcessOracle,
    Interpolation,
    OrdinaryKriging,
    default_predictors,
)
from npf.scoring import score_images, summarise_scores
from npf.study.tables import metrics_table


@pytest.fixture(scope="module")
def gp_test():
    return load_splits("gp", n_train=20, n_test=12, size=16).test


def test_baselines_and_oracle_layout_and_masks(gp_test) -> None:
    predictions = predict(default_predictors(gp_test), gp_test, fraction=0.25, progress=False)
    assert list(predictions["predictor"].values) == ["nearest", "linear", "cubic", "oracle"]
    assert list(predictions["probabilistic"].values) == [False, False, False, True]
    assert predictions["mean"].shape == (4, 12, 1, 16, 16)
    assert int(predictions["context"].sum()) == 12 * 64  # a quarter of 256 pixels per image
    # deterministic predictors carry no std; the oracle's std is positive
    assert np.isnan(predictions["std"].sel(predictor="cubic")).all()
    assert (predictions["std"].sel(predictor="oracle") > 0).all()


def test_oracle_is_calibrated_and_best(gp_test) -> None:
    predictions = predict(default_predictors(gp_test), gp_test, fraction=0.125, progress=False)
    results = summarise_scores(score_images(predictions))
    assert abs(results["oracle"]["coverage95"]["mean"] - 0.95) < 0.03
    for baseline in ("nearest", "linear", "cubic"):
        assert results["oracle"]["rmse"]["mean"] < results[baseline]["rmse"]["mean"]
    table = metrics_table(results)
    assert table.count("\n") == 5 and "| oracle |" in table
    # only the oracle is probabilistic: NLL does not apply to the others
    assert "nll" in results["oracle"] and "nll" not in results["cubic"]


def test_evaluation_contexts_are_seeded(gp_test) -> None:
    _, a = evaluation_contexts(gp_test, 0.1, seed=5)
    _, b = evaluation_contexts(gp_test, 0.1, seed=5)
    _, c = evaluation_contexts(gp_test, 0.1, seed=6)
    assert (a == b).all() and not (a == c).all()


def test_training_path_imports_without_optional_packages() -> None:
    # The GPU machine has neither PyKrige nor rasterio: training and prediction must not need them.
    code = (
        "import sys; sys.modules['pykrige'] = None; sys.modules['rasterio'] = None\n"
        "import npf.predict, npf.predictors, npf.training, npf.study.figures, npf.study.tables, "
        "npf.data.dem"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_image_without_context_is_refused_by_name(gp_test) -> None:
    dataset = gp_test.subset(range(6))
    dataset.valid[3] = False  # an image with no valid pixel gets no context
    with pytest.raises(ValueError, match=r"images \[3\] get no context pixel .* \[0\]"):
        predict([NEAREST], dataset, fraction=0.25, progress=False)
    with pytest.raises(ValueError, match=r"images \[0, 1, 2, 3, 4, 5\] get no context pixel"):
        predict([NEAREST], gp_test.subset(range(6)), fraction=0.001, progress=False)


def test_nothing_held_out_is_refused_before_predicting_or_scoring(gp_test) -> None:
    with pytest.raises(ValueError, match="context fraction 1 leaves no held-out pixel"):
        predict([NEAREST], gp_test, fraction=1.0, progress=False)
    predictions = predict([NEAREST], gp_test, fraction=0.25, progress=False)
    predictions["context"] = predictions["valid"]
    with pytest.raises(ValueError, match="no held-out pixel .* nothing to score"):
        score_images(predictions)


def test_every_predictor_reads_only_the_context(gp_test) -> None:
    """Changing the pixels outside the context changes no prediction."""
    dataset = gp_test.subset(range(3))
    predictors = [*default_predictors(dataset), OrdinaryKriging()]
    before = predict(predictors, dataset, fraction=0.2, seed=3, progress=False)
    context = torch.from_numpy(before["context"].values)[:, None]
    dataset.values = torch.where(context, dataset.values, dataset.values + 5.0)
    after = predict(predictors, dataset, fraction=0.2, seed=3, progress=False)
    np.testing.assert_allclose(after["mean"], before["mean"], atol=1e-5)
    np.testing.assert_allclose(after["std"], before["std"], atol=1e-5)


def test_kriging_diagnostics_are_its_fitted_variograms(gp_test) -> None:
    predictions = predict([OrdinaryKriging()], gp_test.subset(range(4)), 0.2, progress=False)
    assert predictions["variogram_range"].dims == ("image", "channel")
    assert (predictions["variogram_range"] > 0).all()
    assert predictions["variogram_model"].dtype.kind == "U"


def test_the_oracle_follows_each_image_by_its_id(gp_test) -> None:
    """A subset's oracle uses the subset images' own length scales."""
    ids = [7, 2]
    whole = predict(default_predictors(gp_test), gp_test, 0.25, indices=ids, progress=False)
    alone = predict(
        [GaussianProcessOracle(gp_test.truth.subset(np.array(ids)))],
        gp_test.subset(ids),
        0.25,
        progress=False,
    )
    np.testing.assert_allclose(
        whole["mean"].sel(predictor="oracle").values, alone["mean"].sel(predictor="oracle").values
    )


def test_predictor_names_must_differ_and_methods_exist(gp_test) -> None:
    with pytest.raises(ValueError, match="names must differ"):
        predict([NEAREST, NEAREST], gp_test, progress=False)
    with pytest.raises(ValueError, match="unknown interpolation 'spline'"):
        Interpolation("spline")


NEAREST = Interpolation("nearest")
