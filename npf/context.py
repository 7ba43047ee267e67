"""The check every predictor makes of its context mask before using it.

A context pixel must hold a finite value: NaN marks missing data, which is never
context (the loaders' validity masks leave it out). Checking at each public
predictor turns a wrong mask into one line naming the problem, instead of a NaN
spreading over the whole prediction or an error deep inside scipy or torch.
"""

from __future__ import annotations

import numpy as np
from numpy.typing import ArrayLike


def check_context(values: ArrayLike, context_mask: ArrayLike) -> None:
    """Raise ``ValueError`` unless ``context_mask`` can select the context of ``values``.

    One raster: ``values`` (H, W) and a mask (H, W); a batch: ``values``
    (N, C, H, W) and masks (N, 1, H, W) (numpy arrays or CPU tensors). The mask
    must be boolean, of that shape, and select finite values only, in every channel.
    """
    values, mask = np.asarray(values), np.asarray(context_mask)
    if values.ndim not in (2, 4):
        raise ValueError(
            f"values must be one raster (H, W) or a batch (N, C, H, W), got shape {values.shape}"
        )
    expected = values.shape if values.ndim == 2 else (values.shape[0], 1, *values.shape[2:])
    if mask.dtype != np.bool_ or mask.shape != expected:
        raise ValueError(
            f"context mask must be bool of shape {expected} for values of shape {values.shape}, "
            f"got {mask.dtype} {mask.shape}"
        )
    missing = mask & ~np.isfinite(values)
    where = ""
    if values.ndim == 4:
        missing = missing.any(axis=1)
        where = f" (images {list_indices(np.flatnonzero(missing.any(axis=(1, 2))))})"
    if missing.any():
        raise ValueError(
            f"{int(missing.sum())} context pixels{where} hold NaN or infinite values; missing "
            "data is never context: leave it out of the mask (context & isfinite(values))"
        )


def list_indices(indices: ArrayLike, limit: int = 10) -> str:
    """The first ``limit`` of ``indices`` as text, and how many more there are."""
    indices = np.asarray(indices)
    more = f" and {len(indices) - limit} more" if len(indices) > limit else ""
    return f"{indices[:limit].tolist()}{more}"
