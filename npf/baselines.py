"""Classical deterministic interpolation of the context onto the whole grid.

Uses :func:`scipy.interpolate.griddata`. Names say what each method is:

* ``nearest``: nearest-neighbour (Voronoi) interpolation;
* ``linear``: piecewise-linear interpolation on the Delaunay triangulation of
  the context points;
* ``cubic``: Clough-Tocher piecewise-cubic, C1-smooth interpolation on the
  same triangulation.

``linear`` and ``cubic`` are undefined outside the convex hull of the context;
there the nearest-neighbour value is used.
"""

from __future__ import annotations

import numpy as np
from scipy.interpolate import griddata

from npf.context import check_context

BASELINES = ("nearest", "linear", "cubic")


def interpolate(values: np.ndarray, context_mask: np.ndarray, method: str) -> np.ndarray:
    """Interpolate the context pixels of ``values`` (H, W) onto every pixel.

    With fewer than 3 context points (too few for a triangulation) ``linear``
    and ``cubic`` fall back to nearest; with none there is nothing to
    interpolate and the result is all NaN. Context values must be finite
    (:func:`~npf.context.check_context`).
    """
    if method not in BASELINES:
        raise ValueError(f"unknown interpolation {method!r}; valid methods: {BASELINES}")
    check_context(values, context_mask)
    height, width = values.shape
    rows, cols = np.nonzero(context_mask)
    if rows.size == 0:
        return np.full((height, width), np.nan)
    points = np.stack([rows, cols], axis=1).astype(np.float64)
    observed = values[rows, cols].astype(np.float64)
    grid_rows, grid_cols = np.mgrid[0:height, 0:width]
    nearest = griddata(points, observed, (grid_rows, grid_cols), method="nearest")
    if method == "nearest" or rows.size < 3 or _collinear(points):
        return nearest
    result = griddata(points, observed, (grid_rows, grid_cols), method=method)
    outside_hull = np.isnan(result)
    result[outside_hull] = nearest[outside_hull]
    return result


def _collinear(points: np.ndarray) -> bool:
    """True when the points span no area (Qhull cannot triangulate them)."""
    centred = points - points.mean(axis=0)
    return np.linalg.matrix_rank(centred, tol=1e-9) < 2
