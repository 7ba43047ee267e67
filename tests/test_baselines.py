import numpy as np
import pytest
from scipy.spatial import Delaunay

from npf.baselines import BASELINES, interpolate


@pytest.fixture
def field() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(0)
    rows, cols = np.mgrid[0:20, 0:24]
    values = np.sin(rows / 4.0) + np.cos(cols / 5.0)
    context = rng.random((20, 24)) < 0.15
    return values, context


@pytest.mark.parametrize("method", BASELINES)
def test_reproduces_context_values_exactly(method, field) -> None:
    values, context = field
    result = interpolate(values, context, method)
    assert result.shape == values.shape
    assert np.isfinite(result).all()  # outside the hull: nearest fill
    np.testing.assert_allclose(result[context], values[context], atol=1e-12)


def test_linear_is_exact_on_a_plane(field) -> None:
    _, context = field
    rows, cols = np.mgrid[0:20, 0:24]
    plane = 2.0 * rows - 0.5 * cols + 3.0
    result = interpolate(plane, context, "linear")
    # inside the convex hull of the context, linear interpolation of a plane is exact
    inside = Delaunay(np.argwhere(context)).find_simplex(np.stack([rows, cols], -1)) >= 0
    assert inside.sum() > 100
    np.testing.assert_allclose(result[inside], plane[inside], atol=1e-9)


def test_degenerate_contexts() -> None:
    values = np.arange(16.0).reshape(4, 4)
    assert np.isnan(interpolate(values, np.zeros((4, 4), bool), "cubic")).all()
    line = np.zeros((4, 4), bool)
    line[1, :] = True  # collinear points cannot be triangulated: nearest is used
    np.testing.assert_array_equal(
        interpolate(values, line, "cubic"), interpolate(values, line, "nearest")
    )


def test_unknown_method() -> None:
    with pytest.raises(ValueError, match="valid methods"):
        interpolate(np.zeros((3, 3)), np.ones((3, 3), bool), "spline")
