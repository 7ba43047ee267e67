"""Convolutional Conditional Neural Processes for geostatistical interpolation.

Data flow, one module per step: ``npf.data`` (rasters and validity masks) ->
``npf.tasks`` (context / target masks) -> ``npf.model`` (ConvCNP) trained by
``npf.training`` -> ``npf.predict`` (predictions of every method as xarray) ->
``npf.metrics`` / ``npf.report`` (scores, tables) and ``npf.plots`` (figures).
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

__version__ = "0.1.0"
