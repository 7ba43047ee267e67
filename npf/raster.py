"""Fill the voids of a raster with a trained ConvCNP (gridding points: :mod:`npf.gridding`).

Data flow: a single-band raster (GeoTIFF or :class:`xarray.DataArray`, invalid
pixels = missing) is cut into windows of ``window`` pixels; each is read with a
``margin`` of at least the model's receptive field, predicted from its valid
pixels, and only its centre is kept, so memory stays bounded by one window.

Checkpoints trained to centre on the context (DEMs) saw ``(y - shift) / scale`` with
``shift`` the context mean of one 64-px training tile. A window is far larger, so
with ``centring="local"`` each pixel is centred on the mean of the valid
pixels within a training tile about it (:func:`local_context_mean`): the model then
sees values of the size it was trained on, and the smooth shift surface leaves no
steps at window borders (windows are read half a tile wider for it, so that a
windowed fill equals a whole-raster one). Inside a large void that mean comes from the
few valid pixels at the corners of the tile, however the terrain slopes:
``centring="filled"`` first fills the voids with GDAL's inverse-distance fill
(:func:`rasterio.fill.fillnodata`), then averages that over a box of ``trend_px``
about each pixel (:func:`filled_trend`), so the model predicts residuals from a smooth
surface that runs through the void (windowed and whole-raster fills then agree except
near voids cut by a window edge). ``filled`` is the default for filling voids
(:data:`FILL_CENTRING`: in the voids of five training scenes it cut the ConvCNP's RMSE
by 26-31 % against ``local``); gridding scattered points keeps ``local``, the centring
nearest to training. ``centring="window"`` subtracts the window's own context mean
instead (the earlier behaviour). ``benchmarks/void_filling.py --centrings`` compares
them. Without centring too the result equals a whole-raster prediction.
Observed pixels keep their value and get std 0; pixels with no valid pixel in their
window are left nodata.

Where a calibration is stored beside the checkpoint for the fill's centring
(``<checkpoint>.std.json``, :mod:`npf.std_calibration`), the std of each void is scaled by
a factor for the void's width, fitted on training scenes; ``calibrate_std=False`` keeps
the model's own std.

What ConvCNP was not trained for is reported as warnings (:class:`ExtrapolationWarning`,
also stored in the output): voids wider than the training tiles, context denser
than in training, and values far from the context mean they are centred on, in
model units.

Without a checkpoint, filling uses the void-tuned DEM model shipped in
``npf/checkpoints/dem-voids.pt`` (:data:`FILL_CHECKPOINT`) and gridding the study's DEM
model ``npf/checkpoints/dem.pt`` (:data:`DEFAULT_CHECKPOINT`); their README says which
runs and epochs they come from.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field, replace
from functools import cached_property
from pathlib import Path

import numpy as np
import rasterio
import xarray as xr
from rasterio.errors import RasterioError
from rasterio.fill import fillnodata
from rasterio.windows import Window
from scipy.ndimage import distance_transform_edt, uniform_filter
from tqdm.auto import tqdm

from npf import __version__
from npf.data.tiling import crs_problem, decode
from npf.model import DepthwiseSeparableConv2d, GridConvCNP
from npf.predictors import ConvCNP, Tasks
from npf.scaling import ValueScaling
from npf.std_calibration import StdCalibration, calibration_path, read_calibrations

#: side of the tiles the DEM model was trained on (px)
TRAINING_TILE = 64
#: |value - its centring shift| / scale beyond which a value is far outside training: 99 % of
#: the DEM training tiles stay below 10 (the largest reaches 16)
FAR_VALUE_SCALES = 10.0
#: px per window: at 512 a 1,201 x 1,201 scene takes 9 windows and 1.7 GiB, at 256 it takes
#: 25 windows, 11-20 % longer in fp32 and 0.6 GiB less (benchmarks/fill_speed.py)
DEFAULT_WINDOW = 512
#: the study's DEM model (from the ``tfasr`` run), used for gridding points when no
#: checkpoint is given
DEFAULT_CHECKPOINT = Path(__file__).parent / "checkpoints" / "dem.pt"
#: that model after 4 epochs with half of the tasks being voids (the ``tfasr-voids`` run),
#: used for filling voids when no checkpoint is given: more accurate in voids, less so on
#: scattered points
FILL_CHECKPOINT = Path(__file__).parent / "checkpoints" / "dem-voids.pt"
#: how a fill centres the values of a context-centred checkpoint (module docstring)
CENTRINGS = ("local", "filled", "window")
#: the centring of a fill unless told otherwise (gridding points uses ``local``)
FILL_CENTRING = "filled"
#: side (px, odd so that the box is centred) of the box that smooths the ``filled``
#: centring's trend surface
TREND_PX = 17
BAND_DESCRIPTIONS = ("mean: filled value (observed pixels unchanged)", "std (0 where observed)")


class ExtrapolationWarning(UserWarning):
    """The input asks the model for something it was not trained on."""


def receptive_radius(model: GridConvCNP) -> int:
    """Pixels on each side of a pixel that its prediction depends on."""
    radius = model.encoder.conv.log_weight.shape[-1] // 2
    for module in model.modules():
        if isinstance(module, DepthwiseSeparableConv2d):
            radius += module.depthwise_weight.shape[-1] // 2
    return radius


def local_context_mean(values: np.ndarray, size: int = TRAINING_TILE) -> np.ndarray:
    """Mean of the finite ``values`` in the ``size`` x ``size`` box about each pixel.

    A pixel whose box holds no finite value takes the mean of a box twice as wide,
    and so on (at worst the whole raster's). Raises when no value is finite.
    """
    valid = np.isfinite(values)
    if not valid.any():
        raise ValueError("no valid pixel to centre on")
    filled = np.where(valid, values, 0.0)
    shift = np.full(values.shape, np.nan)
    missing = np.ones(values.shape, dtype=bool)
    while missing.any():
        count = uniform_filter(valid.astype(np.float64), size, mode="constant")
        total = uniform_filter(filled, size, mode="constant")
        found = missing & (count * size**2 > 0.5)  # box sums are exact to well below 0.5
        shift[found] = total[found] / count[found]
        missing &= ~found
        size *= 2
    return shift


def filled_trend(
    values: np.ndarray, size: int = TREND_PX, search: int = 2 * TRAINING_TILE
) -> np.ndarray:
    """The mean over a ``size`` x ``size`` box about each pixel of ``values`` with its
    invalid pixels filled by GDAL's inverse-distance fill (searching ``search`` px; pixels
    farther from any valid one take the mean of the valid ones)."""
    valid = np.isfinite(values)
    if not valid.any():
        raise ValueError("no valid pixel to centre on")
    start = np.where(valid, values, values[valid].mean())
    filled = fillnodata(start, mask=valid.astype(np.uint8), max_search_distance=search)
    return local_context_mean(filled, size)


@dataclass
class Filler:
    """A single-band ConvCNP ready to fill rasters, and how it centres values."""

    convcnp: ConvCNP
    path: Path
    centring: str = FILL_CENTRING
    trend_px: int = TREND_PX
    #: std calibrations by centring label (:mod:`npf.std_calibration`), read from beside
    #: the checkpoint; ``calibrate_std=False`` leaves the model's std as it is
    calibrations: dict[str, StdCalibration] = field(default_factory=dict)
    calibrate_std: bool = True

    def __post_init__(self) -> None:
        if self.centring not in CENTRINGS:
            raise ValueError(f"unknown centring {self.centring!r}; valid: {', '.join(CENTRINGS)}")
        if self.trend_px < 1 or self.trend_px % 2 == 0:
            raise ValueError(f"trend_px must be an odd number of pixels, not {self.trend_px}")

    @classmethod
    def load(
        cls,
        path: str | Path,
        device: str = "cpu",
        precision: str = "fp32",
        compile: bool = False,
        centring: str = FILL_CENTRING,
        trend_px: int = TREND_PX,
        calibrate_std: bool = True,
    ) -> Filler:
        """Load ``path`` and the std calibrations stored beside it; raise unless it
        predicts single-band rasters.

        ``precision`` and ``compile``: as for :class:`~npf.predictors.ConvCNP`.
        """
        path = Path(path)
        convcnp = ConvCNP.load(path, device, precision=precision, compile=compile)
        if convcnp.model.y_channels != 1:
            raise ValueError(
                f"checkpoint {path} predicts {convcnp.model.y_channels}-channel rasters (data set "
                f"{convcnp.dataset!r}); filling needs a single-band (e.g. DEM) model"
            )
        return cls(convcnp, path, centring, trend_px, read_calibrations(path), calibrate_std)

    @property
    def is_dem(self) -> bool:
        """DEM checkpoints also treat elevations outside -500..9000 m as voids."""
        return self.convcnp.dataset == "tfasr"

    @property
    def scaling(self) -> ValueScaling:
        return self.convcnp.scaling

    def provenance(self) -> dict[str, str]:
        """Where the predictions come from, as GeoTIFF tags / attributes."""
        return {
            "NPF_CHECKPOINT": str(self.path.resolve()),
            "NPF_DATASET": str(self.convcnp.dataset),
            "NPF_EPOCH": str(self.convcnp.checkpoint.get("epoch")),
            "NPF_PRECISION": self.convcnp.precision,
            "NPF_CENTRING": self.centring_label if self.scaling.center_on_context else "none",
            "NPF_STD_CALIBRATION": (
                f"{calibration_path(self.path).resolve()} [{self.centring_label}]"
                if self.std_calibration
                else "none"
            ),
            "NPF_VERSION": __version__,
        }

    @property
    def centring_label(self) -> str:
        """The centring, with the trend's box for ``filled``."""
        return f"filled ({self.trend_px} px)" if self.centring == "filled" else self.centring

    @property
    def std_calibration(self) -> StdCalibration | None:
        """The calibration applied to the std: the one stored for this centring, if any."""
        return self.calibrations.get(self.centring_label) if self.calibrate_std else None

    def valid_values(self, band: np.ma.MaskedArray) -> np.ndarray:
        """A band read with ``masked=True`` as float64, NaN where invalid."""
        if self.is_dem:
            return decode(band)[0]
        values = band.astype(np.float64).filled(np.nan)
        values[~np.isfinite(values)] = np.nan
        return values

    @property
    def local(self) -> bool:
        """Whether each pixel is centred on its own neighbourhood (``local`` or ``filled``)."""
        return self.scaling.center_on_context and self.centring != "window"

    @cached_property
    def model_input(self) -> ConvCNP:
        """The ConvCNP that sees the window: with local centring one that only scales,
        since the values come centred already."""
        if not self.local:
            return self.convcnp
        return replace(self.convcnp, scaling=ValueScaling(self.scaling.scale))

    def margin(self) -> int:
        """Pixels the model must see beyond what a window keeps: its receptive field,
        at least half a training tile."""
        return max(receptive_radius(self.convcnp.model), TRAINING_TILE // 2)

    @property
    def centring_margin(self) -> int:
        """Pixels read beyond the model's window so that local centring averages a whole
        tile about each of its pixels (then a windowed fill equals a whole-raster one)."""
        return TRAINING_TILE // 2 if self.local else 0

    def shift(self, values: np.ndarray) -> np.ndarray | float:
        """What centring subtracts from a window (H, W) before the model sees it."""
        if not self.scaling.center_on_context:
            return 0.0
        if self.centring == "window":
            return float(np.nanmean(values))
        if self.centring == "filled":
            return filled_trend(values, self.trend_px)
        return local_context_mean(values)

    def predict(
        self, values: np.ndarray, shift: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray]:
        """Mean and std of one window (H, W) from its finite pixels, which stay as given.

        With local centring the model predicts the residuals from ``shift`` (by
        default :meth:`shift` of the window itself), and the shift is added back.
        """
        context = np.isfinite(values)
        if not self.local:
            shift = 0.0
        elif shift is None:
            shift = self.shift(values)
        prediction = self.model_input.predict(Tasks.of_raster(values - shift, context))
        mean = prediction.mean[0, 0].astype(np.float64) + shift
        std = prediction.std[0, 0].astype(np.float64)
        if self.std_calibration is not None:
            std = self.std_calibration.apply(std, context)
        return np.where(context, values, mean), np.where(context, 0.0, std)


@dataclass
class Extrapolation:
    """Counts of what a fill asked beyond the model's training."""

    windows: int = 0
    dense_windows: int = 0
    max_density: float = 0.0
    observed: int = 0
    pixels: int = 0
    far_voids: int = 0
    unfilled: int = 0
    far_values: int = 0
    messages: list[str] = field(default_factory=list)

    def warnings(self, filler: Filler, margin: int) -> list[str]:
        """One line per kind of extrapolation found."""
        found = []
        if self.far_voids:
            found.append(
                f"{self.far_voids} void pixels lie more than {TRAINING_TILE // 2} px from any "
                f"observed pixel (voids wider than the {TRAINING_TILE}-px training tiles): "
                "extrapolation"
            )
        if self.unfilled:
            found.append(
                f"{self.unfilled} void pixels have no observed pixel within {margin} px "
                "and were left nodata"
            )
        if self.dense_windows:
            found.append(
                f"context density up to {self.max_density:.0%} in {self.dense_windows} of "
                f"{self.windows} windows (raster: {self.observed / self.pixels:.0%}); the model "
                f"was trained on at most {filler.convcnp.max_context:.0%}"
            )
        if self.far_values:
            found.append(
                f"{self.far_values} observed values lie more than {FAR_VALUE_SCALES:g} x "
                f"{filler.scaling.scale:g} from the context mean they are centred on: far "
                "outside the training range"
            )
        return found

    def tags(self) -> dict[str, str]:
        """Counts and warnings as GeoTIFF tags / attributes."""
        return {
            "NPF_WARNINGS": " | ".join(self.messages) or "none",
            "NPF_OBSERVED_PIXELS": str(self.observed),
            "NPF_FILLED_PIXELS": str(self.pixels - self.observed - self.unfilled),
            "NPF_UNFILLED_PIXELS": str(self.unfilled),
            "NPF_FAR_VOID_PIXELS": str(self.far_voids),
        }


def windows(height: int, width: int, size: int, margin: int) -> Iterator[tuple[Window, Window]]:
    """``(centre, read)`` windows tiling the raster; ``read`` is ``centre`` plus ``margin``."""
    for row in range(0, height, size):
        for col in range(0, width, size):
            centre = Window(col, row, min(size, width - col), min(size, height - row))
            top, left = max(row - margin, 0), max(col - margin, 0)
            bottom = min(row + centre.height + margin, height)
            right = min(col + centre.width + margin, width)
            yield centre, Window(left, top, right - left, bottom - top)


def within(inner: Window, outer: Window) -> tuple[slice, slice]:
    """Where ``inner`` lies in an array read from ``outer``."""
    row, col = inner.row_off - outer.row_off, inner.col_off - outer.col_off
    return slice(row, row + inner.height), slice(col, col + inner.width)


def check_window(filler: Filler, window: int, margin: int | None) -> int:
    """The margin to use: at least :meth:`Filler.margin`."""
    if window < 1:
        raise ValueError(f"window must be a positive number of pixels, got {window}")
    needed = filler.margin()
    if margin is None:
        return needed
    if margin < needed:
        raise ValueError(
            f"margin {margin} px is below the {needed} px the model needs (its receptive field "
            "or half a training tile): windows would show seams"
        )
    return margin


def fill_windows(
    shape: tuple[int, int],
    read: Callable[[Window], np.ndarray],
    write: Callable[[Window, np.ndarray, np.ndarray], None],
    filler: Filler,
    window: int = DEFAULT_WINDOW,
    margin: int | None = None,
    progress: bool = True,
) -> Extrapolation:
    """Predict a raster of ``shape`` window by window; return what it extrapolated.

    ``read(window)`` gives float values with NaN where invalid; ``write(window, mean,
    std)`` stores a centre window, NaN where nothing could be predicted.
    """
    margin = check_window(filler, window, margin)
    # the model's windows, and the wider ones read to centre each of their pixels locally
    grid = list(
        zip(
            windows(*shape, window, margin),
            windows(*shape, window, margin + filler.centring_margin),
            strict=True,
        )
    )
    if not any(np.isfinite(read(centre)).any() for (centre, _), _ in grid):
        raise ValueError("the raster has no valid pixel: nothing to predict from")
    found = Extrapolation()
    for (centre, seen), (_, wide) in tqdm(
        grid, desc="filling", unit="window", disable=not progress
    ):
        values = read(wide)
        shift = filler.shift(values) if filler.local else None
        part = within(seen, wide)
        values = values[part]
        if shift is not None:
            shift = shift[part]
        valid = np.isfinite(values)
        inner = within(centre, seen)
        found.windows += 1
        found.pixels += centre.height * centre.width
        found.observed += int(valid[inner].sum())
        if not valid.any():
            found.unfilled += centre.height * centre.width
            empty = np.full((centre.height, centre.width), np.nan)
            write(centre, empty, empty)
            continue
        density = float(valid.mean())
        if density > filler.convcnp.max_context:
            found.dense_windows += 1
            found.max_density = max(found.max_density, density)
        offset = values - (filler.shift(values) if shift is None else shift)
        far = np.abs(offset[inner][valid[inner]]) > FAR_VALUE_SCALES * filler.scaling.scale
        found.far_values += int(far.sum())
        distance = distance_transform_edt(~valid)[inner]
        found.far_voids += int((distance > TRAINING_TILE // 2).sum())
        mean, std = filler.predict(values, shift)
        write(centre, mean[inner], std[inner])
    found.messages = found.warnings(filler, margin)
    for message in found.messages:
        warnings.warn(message, ExtrapolationWarning, stacklevel=3)
    return found


def open_filler(checkpoint: str | Path | Filler, device: str = "cpu") -> Filler:
    """``checkpoint`` itself if already loaded, else the single-band model stored there
    (default settings; load a :class:`Filler` yourself for others)."""
    return checkpoint if isinstance(checkpoint, Filler) else Filler.load(checkpoint, device)


def fill_raster(
    source: str | Path,
    destination: str | Path,
    checkpoint: str | Path | Filler = FILL_CHECKPOINT,
    window: int = DEFAULT_WINDOW,
    margin: int | None = None,
    device: str = "cpu",
    progress: bool = True,
    tags: dict[str, str] | None = None,
) -> list[str]:
    """Write ``destination``: ``source``'s single band filled (band 1) and its std (band 2).

    The output keeps the input's CRS, transform and nodata (NaN when the input has
    none), and holds the model's provenance, ``tags`` and the warnings in its tags.
    Returns the extrapolation warnings.
    """
    source, destination = Path(source), Path(destination)
    if not source.is_file():
        raise FileNotFoundError(f"input raster {source} not found")
    if destination.resolve() == source.resolve():
        raise ValueError(f"output {destination} would overwrite the input: choose another path")
    filler = open_filler(checkpoint, device)
    try:
        src = rasterio.open(source)
    except RasterioError as error:
        raise ValueError(f"{source}: cannot read as a raster ({error})") from error
    with src:
        if src.count != 1:
            raise ValueError(f"{source} has {src.count} bands; fill takes a single-band raster")
        if problem := crs_problem(src.crs):
            raise ValueError(f"{source}: {problem}; assign one first (e.g. gdal_edit.py -a_srs)")
        nodata = np.nan if src.nodata is None else float(src.nodata)
        profile = {
            "driver": "GTiff",
            "width": src.width,
            "height": src.height,
            "count": 2,
            "dtype": "float32",
            "crs": src.crs,
            "transform": src.transform,
            "nodata": nodata,
            "tiled": True,
            "blockxsize": 256,
            "blockysize": 256,
            "compress": "deflate",
            "BIGTIFF": "IF_SAFER",
        }
        try:
            with rasterio.open(destination, "w", **profile) as dst:

                def read(window: Window) -> np.ndarray:
                    return filler.valid_values(src.read(1, window=window, masked=True))

                def write(window: Window, mean: np.ndarray, std: np.ndarray) -> None:
                    bands = np.stack([mean, std])
                    bands[:, np.isnan(mean)] = nodata
                    dst.write(bands.astype(np.float32), window=window)

                found = fill_windows(
                    (src.height, src.width), read, write, filler, window, margin, progress
                )
                for band, description in enumerate(BAND_DESCRIPTIONS, start=1):
                    dst.set_band_description(band, description)
                dst.update_tags(
                    **filler.provenance(),
                    **(tags or {}),
                    **found.tags(),
                    NPF_SOURCE=str(source.resolve()),
                )
        except BaseException:
            destination.unlink(missing_ok=True)  # no half-written output
            raise
    return found.messages


def fill_dataarray(
    data: xr.DataArray,
    checkpoint: str | Path | Filler = FILL_CHECKPOINT,
    window: int = DEFAULT_WINDOW,
    margin: int | None = None,
    device: str = "cpu",
    progress: bool = False,
) -> xr.Dataset:
    """Fill a 2-D DataArray (NaN = missing; a ``band`` of size 1 is dropped).

    Returns a Dataset with ``mean`` and ``std`` on ``data``'s coordinates (a
    rioxarray ``spatial_ref`` among them), ``data``'s attributes plus the model's
    provenance and ``warnings``.
    """
    filler = open_filler(checkpoint, device)
    if "band" in data.dims and data.sizes["band"] == 1:
        data = data.isel(band=0)
    if data.ndim != 2:
        raise ValueError(f"expected a 2-D (y, x) DataArray, got dims {data.dims}")
    values = filler.valid_values(np.ma.masked_invalid(data.values.astype(np.float64)))
    mean = np.full(values.shape, np.nan)
    std = np.full(values.shape, np.nan)

    def write(w: Window, m: np.ndarray, s: np.ndarray) -> None:
        mean[w.toslices()], std[w.toslices()] = m, s

    found = fill_windows(
        values.shape, lambda w: values[w.toslices()], write, filler, window, margin, progress
    )
    return xr.Dataset(
        {"mean": (data.dims, mean), "std": (data.dims, std)},
        coords=data.coords,
        attrs={**data.attrs, **filler.provenance(), **found.tags()},
    )
