"""Cut GeoTIFF scenes into square tiles in the TfaSR layout, each keeping its georeference.

A scene is read window by window (``rasterio.windows``); a window becomes a tile
unless more than ``max_nodata_fraction`` of its pixels are invalid or more than
``max_sea_fraction`` of its valid pixels lie at or below sea level. Invalid:
nodata, non-finite, and any elevation outside [-500 m, 9,000 m], which also
catches SRTM voids (-32768, -32767) in files without a nodata tag. Each tile is
written to a temporary file and renamed, so no half tile is ever left behind; a
scene that cannot be read, or lacks a usable georeference (no CRS, or a pixel
size in metres outside [0.1 m, 10 km], as when degrees meet a projected CRS), is
reported and skipped, and the tiles it had already given are removed.

Scenes are split into train and test *by scene*. Scenes whose footprints lie
within ``margin_km`` of each other (overlapping, touching or neighbours in the
same range) must share a split, so the test set holds unseen terrain only.
"""

from __future__ import annotations

import math
import os
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import rasterio
from rasterio.crs import CRS
from rasterio.errors import RasterioError
from rasterio.transform import Affine
from rasterio.warp import transform, transform_bounds
from rasterio.windows import Window
from rasterio.windows import transform as window_transform
from tqdm.auto import tqdm

from npf.data.base import CorruptFileError

# WGS84 ellipsoid: semi-major axis (m) and first eccentricity squared
WGS84_A = 6_378_137.0
WGS84_E2 = 6.694379990141e-3

SCENE_SUFFIXES = (".tif", ".tiff")

#: Physically possible elevations (m): the Dead Sea shore lies at -430 m, Everest at 8,849 m.
#: Anything outside, such as the SRTM voids -32768 and -32767, is an invalid pixel.
ELEVATION_RANGE_M = (-500.0, 9_000.0)
#: Plausible ground size of a DEM pixel (m); outside it the CRS contradicts the transform.
PIXEL_SIZE_RANGE_M = (0.1, 10_000.0)


@dataclass(frozen=True)
class TileRules:
    """Which windows become tiles."""

    size: int = 64
    max_nodata_fraction: float = 0.05
    max_sea_fraction: float = 0.5
    sea_level_m: float = 0.0

    def __post_init__(self) -> None:
        if self.size < 2:
            raise ValueError(f"tile size must be at least 2, got {self.size}")
        for name in ("max_nodata_fraction", "max_sea_fraction"):
            if not 0.0 <= getattr(self, name) <= 1.0:
                raise ValueError(f"{name} must lie in [0, 1], got {getattr(self, name)}")

    def reject_reason(self, elevation: np.ndarray, valid: np.ndarray) -> str | None:
        """Why a window is not kept as a tile, or ``None`` to keep it."""
        if 1.0 - valid.mean() > self.max_nodata_fraction:
            return f"nodata > {self.max_nodata_fraction:.0%}"
        if (elevation[valid] <= self.sea_level_m).mean() > self.max_sea_fraction:
            return f"sea (<= {self.sea_level_m:g} m) > {self.max_sea_fraction:.0%}"
        return None


@dataclass
class SceneReport:
    """What tiling one scene gave."""

    scene: str
    split: str
    stride: int
    windows: int = 0
    kept: int = 0
    skipped: Counter[str] = field(default_factory=Counter)
    error: str | None = None

    def as_dict(self) -> dict:
        return {**asdict(self), "skipped": dict(self.skipped)}


def scene_name(path: Path) -> str:
    return path.stem


def find_scenes(source: Path) -> list[Path]:
    """GeoTIFF files directly inside ``source``, sorted by name."""
    return sorted(p for p in source.iterdir() if p.suffix.lower() in SCENE_SUFFIXES)


def tile_windows(height: int, width: int, size: int, stride: int) -> Iterator[Window]:
    """Full ``size x size`` windows, row by row, every ``stride`` pixels."""
    if stride < 1:
        raise ValueError(f"stride must be positive, got {stride}")
    for row in range(0, height - size + 1, stride):
        for col in range(0, width - size + 1, stride):
            yield Window(col, row, size, size)


def decode(band: np.ma.MaskedArray) -> tuple[np.ndarray, np.ndarray]:
    """A band read with ``masked=True`` as float64 with NaN where invalid, and the validity mask.

    Invalid: the dataset's nodata (or mask band), any non-finite value and any
    elevation outside ``ELEVATION_RANGE_M`` (SRTM voids when no nodata is tagged).
    """
    low, high = ELEVATION_RANGE_M
    elevation = band.astype(np.float64).filled(np.nan)
    valid = ~np.ma.getmaskarray(band) & (elevation >= low) & (elevation <= high)
    elevation[~valid] = np.nan
    return elevation, valid


def tile_scene(
    path: Path, out_dir: Path, stride: int, rules: TileRules = TileRules(), split: str = ""
) -> SceneReport:
    """Cut one scene into tiles named ``<scene>_r<row>_c<col>.tif`` inside ``out_dir``."""
    scene = scene_name(path)
    report = SceneReport(scene, split, stride)
    try:
        dataset = rasterio.open(path)
    except (RasterioError, OSError) as error:
        report.error = f"{path.name}: cannot open ({error})"
        return report
    out_dir.mkdir(parents=True, exist_ok=True)
    written: list[Path] = []
    with dataset:
        try:
            check_georeference(path, dataset)
        except CorruptFileError as error:
            report.error = str(error)
            return report
        profile = tile_profile(dataset, rules.size)
        for window in tile_windows(dataset.height, dataset.width, rules.size, stride):
            report.windows += 1
            try:
                band = dataset.read(1, window=window, masked=True)
            except (RasterioError, OSError) as error:
                for tile in written:
                    tile.unlink()
                report.kept = 0
                report.error = (
                    f"{path.name}: cannot read rows {window.row_off}.. cols {window.col_off}.. "
                    f"({error}); its {len(written)} tiles so far were removed"
                )
                return report
            if reason := rules.reject_reason(*decode(band)):
                report.skipped[reason] += 1
                continue
            tags = {
                "NPF_SCENE": scene,
                "NPF_SOURCE": path.name,
                "NPF_ROW": window.row_off,
                "NPF_COL": window.col_off,
            }
            name = f"{scene}_r{window.row_off:05d}_c{window.col_off:05d}.tif"
            transform_ = window_transform(window, dataset.transform)
            written.append(
                write_tile(out_dir / name, np.ma.getdata(band), profile, transform_, tags)
            )
            report.kept += 1
    return report


def tile_profile(dataset: rasterio.DatasetReader, size: int) -> dict:
    """GeoTIFF creation options of a tile cut from ``dataset`` (same dtype, CRS, nodata)."""
    dtype = dataset.dtypes[0]
    return {
        "driver": "GTiff",
        "height": size,
        "width": size,
        "count": 1,
        "dtype": dtype,
        "crs": dataset.crs,
        "nodata": dataset.nodata,
        "compress": "deflate",
        "predictor": 3 if np.dtype(dtype).kind == "f" else 2,
    }


def write_tile(path: Path, raw: np.ndarray, profile: dict, transform_, tags: dict) -> Path:
    """Write one tile through a temporary file, renamed only once complete."""
    partial = path.with_name(f".{path.name}.partial")
    try:
        with rasterio.open(partial, "w", transform=transform_, **profile) as tile:
            tile.write(raw, 1)
            tile.update_tags(**tags)
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
    return path


def implausible_pixels(sizes: dict[str, np.ndarray]) -> np.ndarray:
    """Where the ground pixel size of :func:`ground_pixel_size` lies outside
    ``PIXEL_SIZE_RANGE_M`` (or is not finite): the CRS contradicts the transform."""
    low, high = PIXEL_SIZE_RANGE_M
    width, height = sizes["pixel_width_m"], sizes["pixel_height_m"]
    return ~((low <= width) & (width <= high) & (low <= height) & (height <= high))


def crs_problem(crs: CRS | None) -> str | None:
    """Why ``crs`` cannot place a raster on the Earth, or ``None`` if it can."""
    if crs is None:
        return "no CRS, so no ground pixel size"
    if not (crs.is_geographic or crs.is_projected):
        return f"CRS {crs.to_string()!r} is neither geographic nor projected"
    return None


def check_georeference(path: Path, dataset: rasterio.DatasetReader) -> None:
    """Raise ``CorruptFileError`` naming ``path`` unless the raster has a geographic or
    projected CRS and its centre pixel is 0.1 m to 10 km wide and high on the ground."""
    if problem := crs_problem(dataset.crs):
        raise CorruptFileError(f"{path.name}: {problem}")
    centre = np.array([dataset.height // 2]), np.array([dataset.width // 2])
    sizes = ground_pixel_size(dataset.crs, [dataset.transform], *centre)
    if implausible_pixels(sizes)[0]:
        low, high = PIXEL_SIZE_RANGE_M
        raise CorruptFileError(
            f"{path.name}: pixels of {sizes['pixel_width_m'][0]:.3g} x "
            f"{sizes['pixel_height_m'][0]:.3g} m, outside {low:g} m .. {high:g} m: its CRS "
            f"({dataset.crs}) contradicts its transform (e.g. degrees in a metric CRS)"
        )


def scene_footprint(path: Path) -> tuple[float, float, float, float]:
    """(west, south, east, north) of a scene in degrees (WGS84); ``CorruptFileError`` if
    its georeference is unusable (:func:`check_georeference`)."""
    with rasterio.open(path) as dataset:
        check_georeference(path, dataset)
        return transform_bounds(dataset.crs, "EPSG:4326", *dataset.bounds)


def footprint_gap_km(a: Sequence[float], b: Sequence[float]) -> float:
    """Approximate distance between two lon/lat boxes, 0 if they touch or overlap."""
    latitude = (a[1] + a[3] + b[1] + b[3]) / 4
    width, height = metres_per_degree(np.array(latitude))
    dx = max(0.0, max(a[0], b[0]) - min(a[2], b[2])) * float(width)
    dy = max(0.0, max(a[1], b[1]) - min(a[3], b[3])) * float(height)
    return math.hypot(dx, dy) / 1000.0


def check_split(
    footprints: dict[str, Sequence[float]], test_scenes: set[str], margin_km: float
) -> None:
    """Raise ``ValueError`` if scenes closer than ``margin_km`` fall into different splits."""
    names = sorted(footprints)
    crossing = [
        f"{a} / {b} ({footprint_gap_km(footprints[a], footprints[b]):.0f} km apart)"
        for i, a in enumerate(names)
        for b in names[i + 1 :]
        if (a in test_scenes) != (b in test_scenes)
        and footprint_gap_km(footprints[a], footprints[b]) <= margin_km
    ]
    if crossing:
        raise ValueError(
            f"scenes within {margin_km:g} km of each other must share a split: "
            + "; ".join(crossing)
        )


def tile_scenes(
    scenes: Sequence[Path],
    out_root: Path,
    test_scenes: Sequence[str],
    train_stride: int,
    rules: TileRules = TileRules(),
    margin_km: float = 50.0,
) -> list[SceneReport]:
    """Tile ``scenes`` into ``out_root/{train,test}``.

    Test tiles never overlap (stride = tile size); training tiles use
    ``train_stride`` (a smaller stride gives overlapping windows).
    """
    names = {scene_name(path) for path in scenes}
    if unknown := sorted(set(test_scenes) - names):
        raise ValueError(f"test scenes not found among the sources: {', '.join(unknown)}")
    reports = []
    readable = {}
    for path in scenes:
        try:
            readable[path] = scene_footprint(path)
        except CorruptFileError as error:
            reports.append(SceneReport(scene_name(path), "", 0, error=str(error)))
        except (RasterioError, OSError) as error:
            message = f"{path.name}: cannot read ({error})"
            reports.append(SceneReport(scene_name(path), "", 0, error=message))
    check_split({scene_name(p): box for p, box in readable.items()}, set(test_scenes), margin_km)
    for path in tqdm(list(readable), desc="tiling scenes", unit="scene"):
        split = "test" if scene_name(path) in test_scenes else "train"
        stride = rules.size if split == "test" else train_stride
        reports.append(tile_scene(path, out_root / split, stride, rules, split))
    return reports


def metres_per_degree(latitude: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Length of one degree of longitude and of latitude (m) on the WGS84 ellipsoid."""
    phi = np.radians(latitude)
    w = 1.0 - WGS84_E2 * np.sin(phi) ** 2
    prime_vertical = WGS84_A / np.sqrt(w)
    meridional = WGS84_A * (1.0 - WGS84_E2) / w**1.5
    return np.radians(1.0) * prime_vertical * np.cos(phi), np.radians(1.0) * meridional


def ground_pixel_size(
    crs, transforms: Sequence[Affine], rows: np.ndarray, cols: np.ndarray
) -> dict[str, np.ndarray]:
    """Ground size (m) of pixel (``rows[i]``, ``cols[i]``) of the raster georeferenced by
    ``transforms[i]`` in ``crs``, and the pixel's centre in lon/lat.

    Works for any CRS: the pixel's corners are taken to WGS84 degrees, and
    degree steps are converted to metres with the ellipsoid's local radii of
    curvature (written here because pyproj is not a dependency; exact for the
    small steps of one pixel). Returns ``pixel_width_m``, ``pixel_height_m``,
    ``resolution_m`` (the square root of the pixel area), ``lon`` and ``lat``.
    """
    offsets = [(0.0, 0.0), (1.0, 0.0), (0.0, 1.0), (0.5, 0.5)]
    points = np.array(
        [
            affine @ (col + d_col, row + d_row)
            for d_col, d_row in offsets
            for affine, row, col in zip(transforms, rows, cols, strict=True)
        ],
        dtype=np.float64,
    ).reshape(len(offsets), -1, 2)
    lon, lat = transform(crs, "EPSG:4326", points[..., 0].ravel(), points[..., 1].ravel())
    lon = np.asarray(lon).reshape(len(offsets), -1)
    lat = np.asarray(lat).reshape(len(offsets), -1)
    per_lon, per_lat = metres_per_degree(lat[0])

    def step(k: int) -> np.ndarray:
        d_lon = (lon[k] - lon[0] + 180.0) % 360.0 - 180.0
        return np.hypot(d_lon * per_lon, (lat[k] - lat[0]) * per_lat)

    width, height = step(1), step(2)
    return {
        "pixel_width_m": width,
        "pixel_height_m": height,
        "resolution_m": np.sqrt(width * height),
        "lon": lon[3],
        "lat": lat[3],
    }
