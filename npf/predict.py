"""Predictions of every method on a set of interpolation tasks, as an xarray Dataset.

Data flow: a :class:`~npf.data.GridDataset` and a context fraction give seeded
tasks; ConvCNP, the griddata baselines and (on ``gp``) the exact GP posterior
predict every pixel; :func:`score_predictions` scores them on the held-out
valid pixels. Both refuse, with a ``ValueError`` naming the images, inputs that
would give numbers that only look real: an image without context, no held-out
pixel to score, or a context pixel holding NaN.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import torch
import xarray as xr
from tqdm.auto import tqdm

from npf.baselines import BASELINES, interpolate
from npf.context import check_context, list_indices
from npf.data.base import GridDataset
from npf.kriging import simple_kriging
from npf.metrics import score, summarise
from npf.model import GridConvCNP
from npf.scaling import ValueScaling
from npf.tasks import ContextSampler


def evaluation_contexts(
    dataset: GridDataset, fraction: float, seed: int, indices: Sequence[int] | None = None
) -> tuple[np.ndarray, torch.Tensor]:
    """Seeded context masks for ``indices`` of ``dataset`` (all images by default)."""
    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    generator = torch.Generator().manual_seed(seed)
    valid = dataset.valid[torch.as_tensor(chosen)]
    return chosen, ContextSampler.fixed(fraction)(valid, generator)


@torch.no_grad()
def convcnp_predict(
    model: GridConvCNP,
    scaling: ValueScaling,
    values: torch.Tensor,
    context: torch.Tensor,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
) -> tuple[torch.Tensor, torch.Tensor]:
    """ConvCNP mean and std in physical units for rasters (N, C, H, W).

    ``context`` is a bool (N, 1, H, W) mask selecting finite values only
    (:func:`~npf.context.check_context`); every image needs a context pixel,
    since without one the model would return the data set's typical value as if
    it were a prediction.
    """
    check_context(values.detach().cpu(), context.cpu())
    if (empty := ~context.flatten(1).any(1)).any():
        batch = list_indices(torch.nonzero(empty).ravel().tolist())
        raise ValueError(
            f"images {batch} of the batch have no context pixel: nothing to predict from"
        )
    model.eval()
    means, stds = [], []
    for start in range(0, len(values), batch_size):
        y = values[start : start + batch_size].to(device)
        mask = context[start : start + batch_size].to(device)
        y_scaled, shift = scaling.to_model(y, mask)
        mean, std = model(y_scaled, mask)
        mean, std = scaling.from_model(mean, std, shift)
        means.append(mean.float().cpu())
        stds.append(std.float().cpu())
    return torch.cat(means), torch.cat(stds)


def predict(
    model: GridConvCNP | None,
    dataset: GridDataset,
    fraction: float = 1 / 8,
    seed: int = 0,
    indices: Sequence[int] | None = None,
    baselines: Sequence[str] = BASELINES,
    oracle: bool = False,
    batch_size: int = 64,
    device: str | torch.device = "cpu",
    progress: bool = True,
) -> xr.Dataset:
    """Predict every pixel of the chosen rasters from a ``fraction`` of their valid pixels.

    Returns a Dataset with ``truth`` (image, channel, y, x), ``valid`` and
    ``context`` (image, y, x), and ``mean`` / ``std`` (predictor, image,
    channel, y, x); ``std`` is NaN for the deterministic baselines. Raises
    ``ValueError`` if an image gets no context pixel (no valid pixel, or a
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
    values = dataset.values[torch.as_tensor(chosen)]
    n, channels, height, width = values.shape
    methods = (["convcnp"] if model is not None else []) + list(baselines)
    if oracle:
        methods.append("oracle")
    mean = np.full((len(methods), n, channels, height, width), np.nan, dtype=np.float32)
    std = np.full_like(mean, np.nan)
    if model is not None:
        model_mean, model_std = convcnp_predict(
            model, dataset.scaling, values, context, batch_size, device
        )
        mean[0], std[0] = model_mean.numpy(), model_std.numpy()
    values_np, context_np = values.numpy(), context[:, 0].numpy()
    for i in tqdm(range(n), desc="baselines", disable=not progress):
        for c in range(channels):
            for m, method in enumerate(methods):
                if method in BASELINES:
                    mean[m, i, c] = interpolate(values_np[i, c], context_np[i], method)
        if oracle:
            m = methods.index("oracle")
            mean[m, i, 0], std[m, i, 0] = simple_kriging(
                values_np[i, 0],
                context_np[i],
                dataset.meta["kernel"],
                float(dataset.meta["length_scale"][chosen[i]]),
                float(dataset.meta["noise_std"]),
            )
    dims = ("image", "channel", "y", "x")
    return xr.Dataset(
        {
            "truth": (dims, values_np),
            "valid": (("image", "y", "x"), valid[:, 0].numpy()),
            "context": (("image", "y", "x"), context_np),
            "mean": (("predictor", *dims), mean),
            "std": (("predictor", *dims), std),
        },
        coords={"predictor": methods, "image": chosen, "channel": np.arange(channels)},
        attrs={
            "dataset": dataset.name,
            "units": dataset.units,
            "context_fraction": fraction,
            "seed": seed,
        },
    )


def held_out_mask(predictions: xr.Dataset) -> np.ndarray:
    """(image, channel, y, x) pixels to score: valid and not context."""
    held_out = (predictions["valid"] & ~predictions["context"]).values[:, None]
    return np.broadcast_to(held_out, predictions["truth"].shape)


def is_probabilistic(predictions: xr.Dataset, predictor: str) -> bool:
    """True when ``predictor`` gives a standard deviation (not all NaN)."""
    return bool(np.isfinite(predictions["std"].sel(predictor=predictor).values).any())


def score_predictions(predictions: xr.Dataset) -> dict[str, dict[str, dict[str, float]]]:
    """Per method, each metric's mean over images and its 95 % confidence half-width.

    Pixels scored: valid and not in the context, all channels; images without
    one are left out, and ``ValueError`` is raised if no image has one.
    """
    truth = predictions["truth"].values
    held_out = held_out_mask(predictions)
    if not held_out.any():
        raise ValueError(
            "no held-out pixel (valid and not context) in any image: nothing to score; "
            "predict with a context fraction below 1"
        )
    results = {}
    for method in map(str, predictions["predictor"].values):
        mean = predictions["mean"].sel(predictor=method).values
        std = predictions["std"].sel(predictor=method).values
        probabilistic = is_probabilistic(predictions, method)
        per_image = [
            score(mean[i], std[i] if probabilistic else None, truth[i], held_out[i])
            for i in range(len(truth))
            if held_out[i].any()
        ]
        results[method] = summarise(per_image)
    return results
