"""Convolutional Conditional Neural Processes for geostatistical interpolation.

Data flow, one module per step: ``npf.data`` (rasters and validity masks) ->
``npf.tasks`` (context / target masks) -> ``npf.model`` (ConvCNP) trained by
``npf.training`` -> ``npf.predictors`` (ConvCNP, interpolation, kriging, the GP
oracle behind one interface) -> ``npf.predict`` (their predictions as xarray) ->
``npf.scoring`` (per-image scores, summaries, calibration) and ``npf.evaluation``
(a sweep of context sizes); ``npf.raster`` fills a user's GeoTIFF and
``npf.gridding`` grids their points. The study's harness (runs, figures, tables,
targets) is ``npf.study``, which the library never imports.
"""

from pathlib import Path

REPO_ROOT = Path(__file__).resolve().parents[1]

__version__ = "0.1.0"
