"""Every public predictor refuses a bad context in one line, before computing anything."""

from __future__ import annotations

from collections.abc import Callable

import numpy as np
import pytest
import torch

from npf.baselines import interpolate
from npf.kriging import empirical_variogram, ordinary_kriging, simple_kriging
from npf.model import GridConvCNP
from npf.predictors import convcnp_predict
from npf.scaling import ValueScaling


def convcnp(values: np.ndarray, context: np.ndarray) -> None:
    model = GridConvCNP(1, hidden_channels=4, n_blocks=1, kernel_size=3, setconv_kernel_size=3)
    as_batch = torch.as_tensor(np.asarray(values, np.float32))[None, None]
    convcnp_predict(model, ValueScaling(), as_batch, torch.as_tensor(context)[None, None])


PREDICTORS: dict[str, Callable[[np.ndarray, np.ndarray], object]] = {
    "linear": lambda values, context: interpolate(values, context, "linear"),
    "simple_kriging": lambda values, context: simple_kriging(values, context, "rbf", 3.0, 0.1),
    "ordinary_kriging": ordinary_kriging,
    "convcnp": convcnp,
}


@pytest.fixture
def field() -> tuple[np.ndarray, np.ndarray]:
    rows, cols = np.mgrid[0:12, 0:12]
    context = np.random.default_rng(0).random((12, 12)) < 0.3
    return np.sin(rows / 3.0) + np.cos(cols / 4.0), context


@pytest.mark.parametrize("name", PREDICTORS)
def test_nan_context_value_is_refused(name: str, field) -> None:
    values, context = field
    row, col = np.argwhere(context)[0]
    values[row, col] = np.nan
    with pytest.raises(ValueError, match="1 context pixels.* hold NaN or infinite values"):
        PREDICTORS[name](values, context)
    values[row, col] = 0.0
    values[~context] = np.nan  # NaN outside the context is never read
    PREDICTORS[name](values, context)


@pytest.mark.parametrize("name", PREDICTORS)
def test_wrong_mask_shape_or_dtype_is_refused(name: str, field) -> None:
    values, context = field
    with pytest.raises(ValueError, match=r"context mask must be bool of shape \(.*12, 12\)"):
        PREDICTORS[name](values, context[:, :-1])
    with pytest.raises(ValueError, match="context mask must be bool .* got int64"):
        PREDICTORS[name](values, context.astype(np.int64))


def test_variogram_of_nan_values_says_nan() -> None:
    points = np.argwhere(np.ones((4, 4), bool)).astype(float)
    values = np.arange(16.0)
    values[5] = np.nan
    with pytest.raises(ValueError, match="1 of 16 values are NaN or infinite"):
        empirical_variogram(points, values)


def test_convcnp_refuses_an_image_without_context() -> None:
    model = GridConvCNP(1, hidden_channels=4, n_blocks=1, kernel_size=3, setconv_kernel_size=3)
    values = torch.full((3, 1, 8, 8), 4_000.0)
    context = torch.zeros(3, 1, 8, 8, dtype=torch.bool)
    context[0, 0, 2, 2] = True
    with pytest.raises(ValueError, match=r"images \[1, 2\] of the batch have no context pixel"):
        convcnp_predict(model, ValueScaling(157.8, center_on_context=True), values, context)
