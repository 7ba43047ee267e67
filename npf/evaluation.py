"""Every predictor scored over a sweep of context fractions.

For each fraction, :func:`npf.predict.predict` runs the predictors on the same
seeded contexts and :mod:`npf.scoring` keeps, per predictor and image, the
scores, the pooled reliability curve and PIT histogram, kriging's fitted
variograms when kriging is among the predictors and, for elevation models, the
error against terrain slope.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import xarray as xr

from npf.data.base import GridDataset
from npf.predict import predict
from npf.predictors import Predictor
from npf.scoring import Summary, calibration_curves, error_by_slope, score_images, summarise_scores


@dataclass
class Evaluation:
    """Results of a context-fraction sweep.

    Attributes:
        scores: per-image scores (fraction, predictor, image, metric).
        reliability: observed coverage (fraction, predictor, level).
        pit_density: PIT histogram density (fraction, predictor, pit_bin).
        variograms: fitted variograms (fraction, image, channel), ``None`` without kriging.
        slope_rmse: RMSE by slope class (fraction, predictor, slope_class) and
            ``pixels``, for data with ground pixel sizes (DEMs); else ``None``.
        focus: all predictions at ``focus_fraction`` (for figures of single images).
    """

    scores: xr.DataArray
    reliability: xr.DataArray
    pit_density: xr.DataArray
    variograms: xr.Dataset | None
    slope_rmse: xr.Dataset | None
    focus: xr.Dataset

    def summary(self) -> dict[float, Summary]:
        """{fraction: {predictor: {metric: {mean, ci95}}}}, by
        :func:`~npf.scoring.summarise_scores`."""
        return {
            float(fraction): summarise_scores(self.scores.sel(fraction=fraction))
            for fraction in self.scores["fraction"].values
        }


def evaluate(
    predictors: Sequence[Predictor],
    dataset: GridDataset,
    fractions: Sequence[float],
    seed: int = 0,
    indices: Sequence[int] | None = None,
    focus_fraction: float = 1 / 8,
    progress: bool = True,
) -> Evaluation:
    """Predict and score ``indices`` of ``dataset`` at every context fraction.

    Context masks are seeded by ``seed`` (the same seed for every fraction, so
    a smaller fraction's context is contained in a larger one's).
    ``focus_fraction`` must be one of ``fractions``.
    """
    if isinstance(fractions, str) or not all(isinstance(f, int | float) for f in fractions):
        raise TypeError(f"fractions must be a sequence of numbers, got {fractions!r}")
    if focus_fraction not in fractions:
        raise ValueError(f"focus_fraction {focus_fraction} is not among fractions {fractions}")
    chosen = np.arange(len(dataset)) if indices is None else np.asarray(indices)
    scores, reliability, density, variograms, slope = [], [], [], [], []
    focus = None
    for fraction in fractions:
        predictions = predict(predictors, dataset, fraction, seed, chosen, progress)
        if "variogram_model" in predictions:
            variograms.append(
                predictions[[name for name in predictions if name.startswith("variogram_")]]
            )
        scores.append(score_images(predictions))
        curve, pit_density = calibration_curves(predictions)
        reliability.append(curve)
        density.append(pit_density)
        if dataset.pixel_size_m is not None:
            slope.append(error_by_slope(predictions, dataset.pixel_size_m[chosen]))
        if fraction == focus_fraction:
            focus = predictions
    sweep = pd.Index(list(fractions), name="fraction")
    return Evaluation(
        scores=xr.concat(scores, dim=sweep),
        reliability=xr.concat(reliability, dim=sweep),
        pit_density=xr.concat(density, dim=sweep),
        variograms=xr.concat(variograms, dim=sweep) if variograms else None,
        slope_rmse=xr.concat(slope, dim=sweep) if slope else None,
        focus=focus,
    )
