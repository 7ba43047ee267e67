"""Grid scattered point measurements with a trained ConvCNP, kriging's classic job.

Data flow: points (a CSV with columns ``x``, ``y`` and a value column, or any vector
file GDAL reads, e.g. a GeoPackage of point features) -> :class:`Points` in the grid's
CRS -> a raster holding the mean of the points inside each pixel (NaN elsewhere) ->
:func:`npf.raster.fill_raster`, which predicts every empty pixel and writes the mean
and std bands. Vector files are read with pyogrio (GDAL's OGR) and their geometries
decoded with shapely; points in another CRS than the grid are reprojected with
``rasterio.warp.transform``. A CSV carries no CRS: its coordinates are taken to be in
the grid's.
"""

from __future__ import annotations

import csv
import math
import os
import tempfile
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pyogrio
import rasterio
import shapely
from pyogrio.errors import DataLayerError, DataSourceError
from rasterio.crs import CRS
from rasterio.errors import CRSError
from rasterio.transform import Affine, from_origin
from rasterio.warp import transform as reproject_points
from rasterio.windows import Window

from npf.data.tiling import crs_problem
from npf.raster import DEFAULT_CHECKPOINT, DEFAULT_WINDOW, Filler, fill_raster

POINT = shapely.GeometryType.POINT


@dataclass(frozen=True)
class Points:
    """Scattered measurements: coordinates, values and the CRS the file declares (or None)."""

    x: np.ndarray
    y: np.ndarray
    values: np.ndarray
    crs: CRS | None = None

    def __len__(self) -> int:
        return len(self.values)

    def to(self, crs: CRS) -> Points:
        """The same points in ``crs`` (unchanged when they declare none or the same)."""
        if self.crs is None or self.crs == crs:
            return self
        x, y = reproject_points(self.crs, crs, self.x, self.y)
        return Points(np.asarray(x), np.asarray(y), self.values, crs)


def read_points(path: str | Path, column: str = "value", layer: str | None = None) -> Points:
    """Points with a finite position and value from a CSV (``x``, ``y``, ``column``) or a
    vector file of point features (``column`` one of its numeric fields)."""
    path = Path(path)
    if not path.is_file():
        raise FileNotFoundError(f"points file {path} not found")
    if path.suffix.lower() == ".csv":
        x, y, values, crs = _read_csv(path, column)
    else:
        x, y, values, crs = _read_vector(path, column, layer)
    keep = np.isfinite(x) & np.isfinite(y) & np.isfinite(values)
    if not keep.any():
        raise ValueError(f"{path}: no point with finite x, y and {column}")
    return Points(x[keep], y[keep], values[keep], crs)


def _read_csv(path: Path, column: str) -> tuple[np.ndarray, np.ndarray, np.ndarray, None]:
    with open(path, newline="") as handle:
        reader = csv.DictReader(handle)
        columns = [name.strip().lower() for name in reader.fieldnames or []]
        wanted = ("x", "y", column.lower())
        if missing := [name for name in wanted if name not in columns]:
            raise ValueError(f"{path}: missing columns {missing}; found {columns}")
        rows = [{k.strip().lower(): v for k, v in row.items()} for row in reader]
    try:
        table = np.array([[float(row[name]) for name in wanted] for row in rows]).reshape(-1, 3)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: non-numeric x, y or {column} ({error})") from error
    return table[:, 0], table[:, 1], table[:, 2], None


def _read_vector(
    path: Path, column: str, layer: str | None
) -> tuple[np.ndarray, np.ndarray, np.ndarray, CRS | None]:
    try:
        meta, _, geometry, fields = pyogrio.raw.read(path, layer=layer, columns=[column])
    except (DataSourceError, DataLayerError) as error:
        raise ValueError(f"{path}: cannot read as a vector file ({error})") from error
    names = list(meta["fields"])
    if column not in names:
        found = pyogrio.read_info(path, layer=layer)["fields"].tolist()
        raise ValueError(f"{path}: no field {column!r}; fields: {found} (choose one with --column)")
    if geometry is None:
        raise ValueError(f"{path}: the layer has no geometries")
    shapes = shapely.from_wkb(geometry)
    kinds = shapely.get_type_id(shapes)
    present = ~shapely.is_missing(shapes) & ~shapely.is_empty(shapes)
    if (other := present & (kinds != POINT)).any():
        kind = shapely.get_type_id(shapes[other][0])
        raise ValueError(
            f"{path}: {int(other.sum())} features are {shapely.GeometryType(kind).name.lower()}s; "
            "gridding takes point features"
        )
    try:
        values = np.asarray(fields[names.index(column)], dtype=np.float64)
    except (TypeError, ValueError) as error:
        raise ValueError(f"{path}: field {column!r} is not numeric ({error})") from error
    x = np.where(present, shapely.get_x(shapes), np.nan)
    y = np.where(present, shapely.get_y(shapes), np.nan)
    crs = CRS.from_user_input(meta["crs"]) if meta["crs"] else None
    return x, y, values, crs


@dataclass(frozen=True)
class Grid:
    """A raster's georeference."""

    crs: CRS
    transform: Affine
    width: int
    height: int

    @classmethod
    def like(cls, path: str | Path) -> Grid:
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"reference raster {path} not found")
        with rasterio.open(path) as ref:
            if problem := crs_problem(ref.crs):
                raise ValueError(f"{path}: {problem}")
            return cls(ref.crs, ref.transform, ref.width, ref.height)

    @classmethod
    def from_bounds(
        cls, bounds: tuple[float, float, float, float], resolution: float, crs: str | CRS | None
    ) -> Grid:
        xmin, ymin, xmax, ymax = bounds
        if not (xmax > xmin and ymax > ymin and resolution > 0):
            raise ValueError(f"need xmin < xmax, ymin < ymax and resolution > 0, got {bounds}")
        if crs is None:
            raise ValueError("the points carry no CRS (a CSV): pass --crs (e.g. EPSG:32633)")
        try:
            parsed = CRS.from_user_input(crs)
        except (CRSError, ValueError) as error:
            raise ValueError(f"unknown CRS {crs!r} ({error})") from error
        width = math.ceil((xmax - xmin) / resolution)
        height = math.ceil((ymax - ymin) / resolution)
        return cls(parsed, from_origin(xmin, ymax, resolution, resolution), width, height)


def rasterise(points: Points, grid: Grid, path: Path, strip: int = DEFAULT_WINDOW) -> int:
    """Write the mean of the points in each pixel to ``path`` (NaN elsewhere), strip by strip.

    ``points`` must be in the grid's CRS. Returns how many fall inside the grid; raises
    if none does.
    """
    inverse = ~grid.transform
    col = np.floor(inverse.a * points.x + inverse.b * points.y + inverse.c)
    row = np.floor(inverse.d * points.x + inverse.e * points.y + inverse.f)
    inside = (col >= 0) & (col < grid.width) & (row >= 0) & (row < grid.height)
    if not inside.any():
        raise ValueError(f"none of the {len(points)} points falls inside the grid")
    flat = row[inside].astype(np.int64) * grid.width + col[inside].astype(np.int64)
    pixels, which = np.unique(flat, return_inverse=True)
    means = np.bincount(which, points.values[inside]) / np.bincount(which)
    profile = {
        "driver": "GTiff",
        "width": grid.width,
        "height": grid.height,
        "count": 1,
        "dtype": "float32",
        "crs": grid.crs,
        "transform": grid.transform,
        "nodata": np.nan,
        "tiled": True,
        "BIGTIFF": "IF_SAFER",
    }
    with rasterio.open(path, "w", **profile) as dst:
        for top in range(0, grid.height, strip):
            height = min(strip, grid.height - top)
            lo, hi = np.searchsorted(pixels, [top * grid.width, (top + height) * grid.width])
            band = np.full(height * grid.width, np.nan, dtype=np.float32)
            band[pixels[lo:hi] - top * grid.width] = means[lo:hi]
            dst.write(
                band.reshape(1, height, grid.width), window=Window(0, top, grid.width, height)
            )
    return int(inside.sum())


def grid_points(
    points: str | Path | Points,
    destination: str | Path,
    grid: Grid,
    checkpoint: str | Path | Filler = DEFAULT_CHECKPOINT,
    window: int = DEFAULT_WINDOW,
    margin: int | None = None,
    device: str = "cpu",
    progress: bool = True,
) -> list[str]:
    """Grid scattered points: the mean of the points in a pixel is context, the rest predicted.

    ``points`` is a :class:`Points` or a file for :func:`read_points` (value column
    ``value``). Writes the same two bands as :func:`npf.raster.fill_raster`; returns its
    warnings.
    """
    # std calibrations are fitted on voids in known terrain, not on scattered points
    if isinstance(checkpoint, Filler):
        checkpoint = replace(checkpoint, calibrate_std=False)
    else:
        checkpoint = Filler.load(checkpoint, device, centring="local", calibrate_std=False)
    source = None if isinstance(points, Points) else Path(points)
    if source is not None:
        points = read_points(source)
    reprojected = points.to(grid.crs)
    destination = Path(destination)
    handle, name = tempfile.mkstemp(suffix=".tif", dir=destination.parent)
    os.close(handle)
    try:
        inside = rasterise(reprojected, grid, Path(name))
        tags = {
            "NPF_POINTS": str(source.resolve()) if source else "in memory",
            "NPF_POINTS_CRS": points.crs.to_string() if points.crs else "none (grid's CRS)",
            "NPF_POINTS_INSIDE": str(inside),
            "NPF_POINTS_OUTSIDE": str(len(points) - inside),
        }
        found = fill_raster(name, destination, checkpoint, window, margin, device, progress, tags)
    finally:
        Path(name).unlink(missing_ok=True)
    return found
