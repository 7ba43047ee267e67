import subprocess
import sys

import numpy as np
import pytest

from npf.data import load_splits
from npf.predict import evaluation_contexts, predict, score_predictions
from npf.report import metrics_table


@pytest.fixture(scope="module")
def gp_test():
    return load_splits("gp", n_train=20, n_test=12, size=16).test


def test_baselines_and_oracle_layout_and_masks(gp_test) -> None:
    predictions = predict(None, gp_test, fraction=0.25, oracle=True, progress=False)
    assert list(predictions["predictor"].values) == ["nearest", "linear", "cubic", "oracle"]
    assert predictions["mean"].shape == (4, 12, 1, 16, 16)
    assert int(predictions["context"].sum()) == 12 * 64  # a quarter of 256 pixels per image
    # deterministic predictors carry no std; the oracle's std is positive
    assert np.isnan(predictions["std"].sel(predictor="cubic")).all()
    assert (predictions["std"].sel(predictor="oracle") > 0).all()


def test_oracle_is_calibrated_and_best(gp_test) -> None:
    results = score_predictions(predict(None, gp_test, fraction=0.125, oracle=True, progress=False))
    assert abs(results["oracle"]["coverage95"]["mean"] - 0.95) < 0.03
    for baseline in ("nearest", "linear", "cubic"):
        assert results["oracle"]["rmse"]["mean"] < results[baseline]["rmse"]["mean"]
    table = metrics_table(results)
    assert table.count("\n") == 5 and "| oracle |" in table


def test_evaluation_contexts_are_seeded(gp_test) -> None:
    _, a = evaluation_contexts(gp_test, 0.1, seed=5)
    _, b = evaluation_contexts(gp_test, 0.1, seed=5)
    _, c = evaluation_contexts(gp_test, 0.1, seed=6)
    assert (a == b).all() and not (a == c).all()


def test_training_path_imports_without_optional_packages() -> None:
    # The GPU machine has neither PyKrige nor rasterio: training and prediction must not need them.
    code = (
        "import sys; sys.modules['pykrige'] = None; sys.modules['rasterio'] = None\n"
        "import npf.predict, npf.training, npf.plots, npf.report, npf.data.dem"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


def test_image_without_context_is_refused_by_name(gp_test) -> None:
    dataset = gp_test.subset(range(6))
    dataset.valid[3] = False  # an image with no valid pixel gets no context
    with pytest.raises(ValueError, match=r"images \[3\] get no context pixel .* \[0\]"):
        predict(None, dataset, fraction=0.25, progress=False)
    with pytest.raises(ValueError, match=r"images \[0, 1, 2, 3, 4, 5\] get no context pixel"):
        predict(None, gp_test.subset(range(6)), fraction=0.001, progress=False)


def test_nothing_held_out_is_refused_before_predicting_or_scoring(gp_test) -> None:
    with pytest.raises(ValueError, match="context fraction 1 leaves no held-out pixel"):
        predict(None, gp_test, fraction=1.0, progress=False)
    predictions = predict(None, gp_test, fraction=0.25, baselines=("nearest",), progress=False)
    predictions["context"] = predictions["valid"]
    with pytest.raises(ValueError, match="no held-out pixel .* nothing to score"):
        score_predictions(predictions)
