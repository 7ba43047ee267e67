"""Widen a ConvCNP's std inside voids by the width of the void.

The DEM model learnt its uncertainty on 64-px tiles whose gaps between context pixels
are small; a void 40-60 px across is wider than anything it saw in training, and its
95 % intervals there hold too few of the true values (88-89 % at 40-60 px on five
training scenes, against 95-97 % for voids under 20 px). A :class:`StdCalibration`
multiplies the std of every pixel of a void by a factor that depends on the void's
width (:func:`void_width`: twice the largest distance from inside it to observed
terrain, the diameter of the largest circle it holds), interpolated between width
classes; :func:`fit_std_calibration` chooses each class's factor so that the central
``level`` interval of the standardised errors ``(truth - mean) / std`` seen on
*training* scenes holds ``level`` of them (``benchmarks/void_filling.py
--fit-std-calibration`` runs it). On those scenes a factor by each pixel's own distance
to observed terrain evened out the coverage of the void sizes less well (92-97 %
against 94.5-95.2 %): the std is off for whole voids, not for their centres.

Calibrations live beside their checkpoint, in ``<checkpoint>.std.json``
(:func:`calibration_path`), one per centring label (``"local"``, ``"filled (17 px)"``,
...), since the centring changes what the model predicts.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from scipy.ndimage import distance_transform_edt, label, maximum
from scipy.stats import norm

#: lower edges (px) of the void-width classes a calibration is fitted on; a void of one
#: pixel is 2 px wide
WIDTH_EDGES_PX = (2.0, 4.0, 8.0, 12.0, 18.0, 27.0, 40.0, 60.0)
#: a class with fewer pixels is merged into its neighbour (below it, or above for the
#: first): the pixels of one void share their error, so a class needs several voids (a void
#: 50 px across holds about 2,000 pixels)
MIN_PIXELS = 10_000
#: the interval the factors are fitted for
LEVEL = 0.95
#: factors never go below 1: a calibration widens the model's intervals where they were
#: too narrow, never narrows them (leave-one-scene-out over the 13 training scenes, the
#: void-tuned model: per-scene coverage 2.0 points from 95 % on average, worst scene
#: 91.1 %, against 2.3 points and 90.6 % when factors may narrow)
WIDEN_ONLY = True


@dataclass(frozen=True)
class StdCalibration:
    """Std factors at void widths (px); linear in between, constant beyond the ends."""

    widths_px: tuple[float, ...]
    factors: tuple[float, ...]
    pixels: tuple[int, ...] = ()
    fitted_on: dict[str, Any] = field(default_factory=dict, compare=False)

    def __post_init__(self) -> None:
        if not self.widths_px or len(self.widths_px) != len(self.factors):
            raise ValueError("a calibration needs one factor per width, at least one")
        if any(np.diff(self.widths_px) <= 0):
            raise ValueError(f"widths must increase: {self.widths_px}")
        if not all(np.isfinite(self.factors)) or min(self.factors) <= 0:
            raise ValueError(f"factors must be positive and finite: {self.factors}")

    def factor(self, width_px: np.ndarray) -> np.ndarray:
        """The std factor at each void width."""
        return np.interp(width_px, self.widths_px, self.factors)

    def apply(self, std: np.ndarray, observed: np.ndarray) -> np.ndarray:
        """``std`` (H, W) with each unobserved pixel's value scaled for the width of its
        void (:func:`void_width`); observed pixels unchanged."""
        if not observed.any():
            return std
        return np.where(observed, std, std * self.factor(void_width(observed)))

    def to_json(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_json(cls, entry: Mapping[str, Any]) -> StdCalibration:
        return cls(
            tuple(map(float, entry["widths_px"])),
            tuple(map(float, entry["factors"])),
            tuple(map(int, entry.get("pixels", ()))),
            dict(entry.get("fitted_on", {})),
        )


def void_width(observed: np.ndarray) -> np.ndarray:
    """For each pixel of a void (a 4-connected group of unobserved pixels), twice the
    largest Euclidean distance (px) from inside that void to an observed pixel; 0 on
    observed pixels."""
    distance = distance_transform_edt(~observed)
    voids, count = label(~observed)
    if not count:
        return np.zeros(observed.shape)
    widest = np.r_[0.0, maximum(distance, voids, np.arange(1, count + 1))]
    return 2.0 * widest[voids]


def fit_std_calibration(
    errors: np.ndarray,
    width_px: np.ndarray,
    edges: Sequence[float] = WIDTH_EDGES_PX,
    level: float = LEVEL,
    min_pixels: int = MIN_PIXELS,
    fitted_on: dict[str, Any] | None = None,
    widen_only: bool = WIDEN_ONLY,
) -> StdCalibration:
    """Per width class, the factor that makes the central ``level`` interval hold
    ``level`` of the standardised ``errors`` ((truth - mean) / std) of pixels in voids of
    that width (at least 1 with ``widen_only``); placed at the class's median width.
    Classes with under ``min_pixels`` pixels are merged."""
    errors, width_px = np.ravel(errors), np.ravel(width_px)
    if errors.shape != width_px.shape:
        raise ValueError(f"errors {errors.shape} and widths {width_px.shape} differ")
    keep = np.isfinite(errors) & np.isfinite(width_px)
    if keep.sum() < min_pixels:
        raise ValueError(f"{int(keep.sum())} finite errors: at least {min_pixels} are needed")
    errors, width_px = np.abs(errors[keep]), width_px[keep]
    classes = np.digitize(width_px, edges[1:])
    groups: list[np.ndarray] = []
    for index in range(len(edges)):
        members = np.flatnonzero(classes == index)
        if groups and (len(groups[-1]) < min_pixels or len(members) < min_pixels):
            groups[-1] = np.concatenate([groups[-1], members])
        elif len(members):
            groups.append(members)
    if len(groups) > 1 and len(groups[-1]) < min_pixels:
        groups[-2:] = [np.concatenate(groups[-2:])]
    quantile = norm.ppf(0.5 + level / 2)
    floor = 1.0 if widen_only else 0.0
    return StdCalibration(
        tuple(float(np.median(width_px[g])) for g in groups),
        tuple(max(floor, float(np.quantile(errors[g], level) / quantile)) for g in groups),
        tuple(len(g) for g in groups),
        fitted_on or {},
    )


def calibration_path(checkpoint: str | Path) -> Path:
    """Where the calibrations of ``checkpoint`` are stored: ``<checkpoint>.std.json``."""
    return Path(checkpoint).with_suffix(".std.json")


def read_calibrations(checkpoint: str | Path) -> dict[str, StdCalibration]:
    """The calibrations stored beside ``checkpoint`` by centring label (none: empty)."""
    path = calibration_path(checkpoint)
    if not path.is_file():
        return {}
    try:
        entries = json.loads(path.read_text())
        return {label: StdCalibration.from_json(entry) for label, entry in entries.items()}
    except (ValueError, KeyError, TypeError, AttributeError) as error:
        raise ValueError(f"{path}: not a std calibration file ({error})") from error


def write_calibration(checkpoint: str | Path, label: str, calibration: StdCalibration) -> Path:
    """Store ``calibration`` for centring ``label`` beside ``checkpoint`` (others kept)."""
    path = calibration_path(checkpoint)
    entries = {key: value.to_json() for key, value in read_calibrations(checkpoint).items()}
    entries[label] = calibration.to_json()
    path.write_text(json.dumps(entries, indent=1) + "\n")
    return path
