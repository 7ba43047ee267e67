"""Predictions of several methods on the same interpolation tasks, as an xarray Dataset.

Data flow: a :class:`~npf.data.GridDataset` and a context fraction give seeded
tasks; each :class:`~npf.predictors.Predictor` predicts every pixel of them.
Inputs that would give numbers that only look real are refused with a
``ValueError`` naming the images: an image without context, no held-out pixel
to score, or a context pixel holding NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr

from npf.context import list_indices
from npf.data.base import GridDataset
from npf.predictors import Predictor, Tasks
from npf.tasks import ContextSampler


def evaluation_contexts(
    dataset: GridDataset, fraction: float, seed: int, indices: Sequence[int] | None = None
) -> tuple[np.ndarray, torch.Tensor]:
    """Seeded context masks for ``indices`` of ``dataset`` (all images by default)."""
    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    generator = torch.Generator().manual_seed(seed)
    valid = dataset.valid[torch.as_tensor(chosen)]
    return chosen, ContextSampler.fixed(fraction)(valid, generator)


def evaluation_tasks(
    dataset: GridDataset, fraction: float, seed: int, indices: Sequence[int] | None = None
) -> Tasks:
    """The rasters at ``indices`` with seeded contexts of ``fraction`` of their valid pixels.

    Raises ``ValueError`` if an image gets no context pixel (no valid pixel, or a
    ``fraction`` too small) or no image keeps a held-out pixel (``fraction`` 1).
    """
    chosen, context = evaluation_contexts(dataset, fraction, seed, indices)
    valid = dataset.valid[torch.as_tensor(chosen)]
    if (empty := ~context.flatten(1).any(1)).any():
        counts = valid.flatten(1).sum(1)[empty].tolist()
        raise ValueError(
            f"images {list_indices(chosen[empty.numpy()])} get no context pixel at context "
            f"fraction {fraction:g} (their valid pixels: {counts[:10]}): raise the fraction or "
            "leave them out (indices=...)"
        )
    if not (valid & ~context).any():
        raise ValueError(
            f"context fraction {fraction:g} leaves no held-out pixel (valid and not context) in "
            f"any of the {len(chosen)} images: nothing to predict or score; use a fraction below 1"
        )
    return Tasks(
        values=dataset.values[torch.as_tensor(chosen)].numpy(),
        valid=valid[:, 0].numpy(),
        context=context[:, 0].numpy(),
        images=chosen,
    )


def predict(
    predictors: Sequence[Predictor],
    dataset: GridDataset,
    fraction: float = 1 / 8,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    progress: bool = True,
) -> xr.Dataset:
    """Predict every pixel of the chosen rasters from a ``fraction`` of their valid pixels.

    Returns a Dataset with ``truth`` (image, channel, y, x), ``valid`` and
    ``context`` (image, y, x), ``mean`` / ``std`` (predictor, image, channel,
    y, x; ``std`` is NaN for deterministic predictors, which the coordinate
    ``probabilistic`` marks) and each predictor's diagnostics over (image,
    channel). See :func:`evaluation_tasks` for the errors raised.
    """
    names = [predictor.name for predictor in predictors]
    if len(set(names)) != len(names):
        raise ValueError(f"predictor names must differ, got {names}")
    tasks = evaluation_tasks(dataset, fraction, seed, indices)
    mean = np.full((len(predictors), *tasks.values.shape), np.nan, dtype=np.float32)
    std = np.full_like(mean, np.nan)
    diagnostics: dict[str, tuple[tuple[str, str], np.ndarray]] = {}
    for p, predictor in enumerate(predictors):
        prediction = predictor.predict(tasks, progress)
        mean[p] = prediction.mean
        if prediction.std is not None:
            std[p] = prediction.std
        for key, value in prediction.diagnostics.items():
            diagnostics[key] = (("image", "channel"), value)
    dims = ("image", "channel", "y", "x")
    return xr.Dataset(
        {
            "truth": (dims, tasks.values),
            "valid": (("image", "y", "x"), tasks.valid),
            "context": (("image", "y", "x"), tasks.context),
            "mean": (("predictor", *dims), mean),
            "std": (("predictor", *dims), std),
            **diagnostics,
        },
        coords={
            "predictor": names,
            "probabilistic": ("predictor", [predictor.probabilistic for predictor in predictors]),
            "image": tasks.images,
            "channel": np.arange(tasks.values.shape[1]),
        },
        attrs={
            "dataset": dataset.name,
            "units": dataset.units,
            "context_fraction": fraction,
            "seed": seed,
        },
    )
