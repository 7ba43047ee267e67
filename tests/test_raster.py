"""Filling raster voids and gridding points with a checkpoint: npf.raster, npf.gridding and
python -m npf."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pyogrio
import pytest
import rasterio
import rasterio.warp
import shapely
import torch
import xarray as xr
from rasterio.transform import from_origin
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from npf import __version__
from npf.__main__ import main
from npf.acceleration import native_bf16
from npf.gridding import Grid, grid_points, read_points
from npf.raster import (
    DEFAULT_CHECKPOINT,
    FILL_CHECKPOINT,
    ExtrapolationWarning,
    Filler,
    fill_dataarray,
    fill_raster,
    filled_trend,
    local_context_mean,
)
from npf.training import TrainConfig, Trainer, build_model

SMALL = {"hidden_channels": 16, "n_blocks": 2, "kernel_size": 5}
CRS = "EPSG:32633"
TRANSFORM = from_origin(500_000.0, 5_200_000.0, 30.0, 30.0)
NODATA = -9999.0

# dense context is reported by every fill of these small rasters; tests of warnings catch them
pytestmark = pytest.mark.filterwarnings("ignore::npf.raster.ExtrapolationWarning")


@pytest.fixture(scope="module")
def checkpoint(tiny_gp, tmp_path_factory) -> Path:
    """A one-epoch model of the Gaussian fields (no context centring), as ``best.pt``."""
    out = tmp_path_factory.mktemp("run")
    config = TrainConfig(compile=False, precision="fp32", epochs=1, batch_size=16, device="cpu")
    Trainer(build_model(1, **SMALL), tiny_gp, config, out).fit(progress=False)
    return out / "best.pt"


def variant(checkpoint: Path, path: Path, **changes) -> Path:
    """``checkpoint`` with some entries replaced, saved to ``path``."""
    saved = torch.load(checkpoint, weights_only=False)
    torch.save({**saved, **changes}, path)
    return path


@pytest.fixture(scope="module")
def dem_checkpoint(checkpoint, tmp_path_factory) -> Path:
    """The same weights declared a DEM model: context-centred, scale 150 m."""
    path = tmp_path_factory.mktemp("dem") / "best.pt"
    return variant(
        checkpoint, path, dataset="tfasr", scaling={"scale": 150.0, "center_on_context": True}
    )


def field(height: int, width: int) -> np.ndarray:
    rows, cols = np.mgrid[:height, :width]
    return (np.sin(rows / 7.0) + np.cos(cols / 5.0)).astype(np.float32)


def write_tif(path: Path, band: np.ndarray, crs: str | None = CRS, nodata=NODATA) -> Path:
    profile = {
        "driver": "GTiff",
        "width": band.shape[1],
        "height": band.shape[0],
        "count": 1,
        "dtype": band.dtype,
        "crs": crs,
        "transform": TRANSFORM,
        "nodata": nodata,
    }
    with rasterio.open(path, "w", **profile) as dst:
        dst.write(band, 1)
    return path


def with_voids(height: int = 40, width: int = 50) -> np.ndarray:
    band = field(height, width)
    band[10:18, 12:25] = NODATA
    band[30:33, 40:45] = NODATA
    return band


def read_output(path: Path) -> tuple[np.ndarray, dict]:
    with rasterio.open(path) as out:
        meta = {
            "crs": out.crs,
            "transform": out.transform,
            "nodata": out.nodata,
            "dtypes": out.dtypes,
            "tags": out.tags(),
            "descriptions": out.descriptions,
        }
        return out.read(), meta


def test_fill_keeps_georeference_and_observed_pixels(checkpoint, tmp_path) -> None:
    band = with_voids()
    source = write_tif(tmp_path / "in.tif", band)
    fill_raster(source, tmp_path / "out.tif", checkpoint, window=16, progress=False)
    bands, meta = read_output(tmp_path / "out.tif")
    assert meta["crs"] == rasterio.crs.CRS.from_string(CRS)
    assert meta["transform"] == TRANSFORM
    assert meta["nodata"] == NODATA and meta["dtypes"] == ("float32", "float32")
    observed = band != NODATA
    np.testing.assert_array_equal(bands[0][observed], band[observed])
    assert (bands[1][observed] == 0).all()
    assert np.isfinite(bands[0][~observed]).all() and (bands[1][~observed] > 0).all()
    assert meta["tags"]["NPF_CHECKPOINT"] == str(checkpoint.resolve())
    assert meta["tags"]["NPF_DATASET"] == "gp"
    assert meta["tags"]["NPF_EPOCH"] == "1"
    assert meta["tags"]["NPF_VERSION"] == __version__
    assert meta["tags"]["NPF_FILLED_PIXELS"] == str((~observed).sum())
    assert all(meta["descriptions"])


@pytest.mark.parametrize("window", [7, 16, 25])
def test_windows_match_whole_raster_prediction(checkpoint, window) -> None:
    values = field(40, 50).astype(np.float64)
    values[np.random.default_rng(0).random(values.shape) < 0.8] = np.nan
    data = xr.DataArray(values, dims=("y", "x"))
    whole = fill_dataarray(data, checkpoint, window=1000)
    windowed = fill_dataarray(data, checkpoint, window=window)
    np.testing.assert_allclose(windowed["mean"], whole["mean"], atol=1e-5)
    np.testing.assert_allclose(windowed["std"], whole["std"], atol=1e-5)


def test_local_context_mean_averages_a_tile_and_widens_over_large_voids() -> None:
    values = np.full((100, 100), np.nan)
    values[:, :10] = 5.0
    values[90:, 90:] = 1.0
    values[50, 0] = 8.0  # one more observed value among the 5s
    shift = local_context_mean(values, size=8)
    assert shift[20, 3] == 5.0  # box of 5s only
    # the box about (50, 3) holds 8 x 7 observed pixels: 55 fives and the 8
    np.testing.assert_allclose(shift[50, 3], (55 * 5.0 + 8.0) / 56)
    assert shift[95, 95] == 1.0
    assert np.isfinite(shift).all()  # the void's middle takes wider boxes
    assert 1.0 <= shift[50, 50] <= 8.0
    with pytest.raises(ValueError, match="no valid pixel"):
        local_context_mean(np.full((4, 4), np.nan))


@pytest.mark.parametrize("window", [9, 30])
def test_local_centring_fills_a_mountain_range_without_window_seams(dem_checkpoint, window) -> None:
    """A 3-km ramp over 90 px: windows centred on their own mean differ by hundreds of metres
    from their neighbours; local centring gives each pixel a tile's mean, whatever the window."""
    rows, cols = np.mgrid[:90, :90]
    values = 500.0 + 35.0 * cols + 20.0 * np.sin(rows / 4.0)
    values[np.random.default_rng(1).random(values.shape) < 0.85] = np.nan
    data = xr.DataArray(values, dims=("y", "x"))
    local = Filler.load(dem_checkpoint, centring="local")
    whole = fill_dataarray(data, local, window=1000)
    windowed = fill_dataarray(data, local, window=window)
    np.testing.assert_allclose(windowed["mean"], whole["mean"], atol=1e-3)
    np.testing.assert_allclose(windowed["std"], whole["std"], atol=1e-3)
    assert whole.attrs["NPF_CENTRING"] == "local"
    by_window = fill_dataarray(data, Filler.load(dem_checkpoint, centring="window"), window=window)
    assert by_window.attrs["NPF_CENTRING"] == "window"
    assert np.abs(by_window["mean"] - whole["mean"]).max() > 1.0
    with pytest.raises(ValueError, match="unknown centring 'tile'; valid: local, filled, window"):
        Filler.load(dem_checkpoint, centring="tile")


def test_filled_trend_runs_through_a_void_on_a_slope() -> None:
    """Over a 70-px void in a plane, a tile's context mean sits on the void's rim (far off the
    plane inside); the filled trend follows the plane, and equals a box mean where all is known."""
    rows, cols = np.mgrid[:200, :200].astype(float)
    plane = 3.0 * cols + 0.5 * rows
    holed = plane.copy()
    holed[60:130, 60:130] = np.nan
    inside = np.isnan(holed)
    local_error = np.abs(local_context_mean(holed) - plane)[inside].mean()
    trend_error = np.abs(filled_trend(holed, 17) - plane)[inside].mean()
    assert local_error > 20.0 and trend_error < local_error / 2
    np.testing.assert_allclose(filled_trend(plane, 17)[20:40, 20:40], plane[20:40, 20:40])
    with pytest.raises(ValueError, match="no valid pixel"):
        filled_trend(np.full((4, 4), np.nan))


def test_filled_centring_is_recorded_and_checked(dem_checkpoint) -> None:
    """The filled centring keeps observed pixels, fills every void and names its box."""
    rows, cols = np.mgrid[:80, :80]
    values = 500.0 + 35.0 * cols + 20.0 * np.sin(rows / 4.0)
    values[20:60, 20:60] = np.nan
    filled = fill_dataarray(
        xr.DataArray(values, dims=("y", "x")), Filler.load(dem_checkpoint, centring="filled")
    )
    assert filled.attrs["NPF_CENTRING"] == "filled (17 px)"
    known = np.isfinite(values)
    np.testing.assert_array_equal(filled["mean"].values[known], values[known])
    assert np.isfinite(filled["mean"]).all() and (filled["std"].values[~known] > 0).all()
    with pytest.raises(ValueError, match="trend_px must be an odd"):
        Filler.load(dem_checkpoint, centring="filled", trend_px=16)


def test_dataarray_keeps_coordinates_and_attributes(checkpoint) -> None:
    values = field(20, 30).astype(np.float64)
    values[5:9, 5:12] = np.nan
    data = xr.DataArray(
        values[None],
        dims=("band", "y", "x"),
        coords={"band": [1], "y": 100.0 - np.arange(20), "x": np.arange(30.0), "spatial_ref": 0},
        attrs={"units": "m"},
    )
    filled = fill_dataarray(data, checkpoint, device="auto")
    assert filled["mean"].dims == ("y", "x")
    np.testing.assert_array_equal(filled["y"], data["y"])
    assert "spatial_ref" in filled.coords and filled.attrs["units"] == "m"
    assert filled.attrs["NPF_DATASET"] == "gp"
    observed = np.isfinite(values)
    np.testing.assert_array_equal(filled["mean"].values[observed], values[observed])
    assert (filled["std"].values[~observed] > 0).all()


def test_grid_averages_points_in_a_pixel(checkpoint, tmp_path) -> None:
    reference = write_tif(tmp_path / "ref.tif", field(20, 30))
    csv = tmp_path / "points.csv"
    # pixel (row 2, col 3) holds two points, pixel (10, 20) one; one point lies off the grid
    x0, y0 = TRANSFORM.c, TRANSFORM.f
    csv.write_text(
        "x,y,value\n"
        f"{x0 + 3.2 * 30},{y0 - 2.5 * 30},1.0\n"
        f"{x0 + 3.9 * 30},{y0 - 2.1 * 30},2.0\n"
        f"{x0 + 20.5 * 30},{y0 - 10.5 * 30},-1.0\n"
        f"{x0 - 100},{y0},5.0\n"
    )
    out = tmp_path / "grid.tif"
    assert main(["grid", str(csv), "-o", str(out), "--checkpoint", str(checkpoint),
                 "--like", str(reference), "--quiet"]) == 0  # fmt: skip
    bands, meta = read_output(out)
    assert bands.shape == (2, 20, 30) and meta["transform"] == TRANSFORM
    assert bands[0, 2, 3] == 1.5 and bands[0, 10, 20] == -1.0
    assert (
        bands[1, 2, 3] == 0 and (np.delete(bands[1].ravel(), [2 * 30 + 3, 10 * 30 + 20]) > 0).all()
    )
    assert meta["tags"]["NPF_POINTS_OUTSIDE"] == "1"


def test_grid_from_bounds(checkpoint, tmp_path) -> None:
    csv = tmp_path / "points.csv"
    csv.write_text("x,y,value\n5,5,1\n55,35,2\n")
    grid = Grid.from_bounds((0, 0, 60, 40), 10, "EPSG:3857")
    grid_points(csv, tmp_path / "out.tif", grid, checkpoint, progress=False)
    bands, meta = read_output(tmp_path / "out.tif")
    assert bands.shape == (2, 4, 6) and meta["crs"].to_epsg() == 3857
    assert bands[0, 3, 0] == 1 and bands[0, 0, 5] == 2
    with pytest.raises(ValueError, match="--crs"):
        Grid.from_bounds((0, 0, 60, 40), 10, None)


def test_dem_checkpoint_treats_srtm_voids_as_missing(dem_checkpoint, tmp_path) -> None:
    band = (1000 + 100 * field(30, 30)).astype(np.int16)
    band[5:10, 5:10] = -32768  # SRTM void, not tagged as nodata
    source = write_tif(tmp_path / "in.tif", band, nodata=None)
    fill_raster(source, tmp_path / "out.tif", dem_checkpoint, progress=False)
    bands, meta = read_output(tmp_path / "out.tif")
    assert np.isnan(meta["nodata"])
    assert (bands[1, 5:10, 5:10] > 0).all() and (bands[0, 5:10, 5:10] > 500).all()


def test_warns_of_what_training_never_saw(checkpoint, tmp_path) -> None:
    band = field(120, 120)
    band[10:110, 10:90] = NODATA  # a void wider than the 64-px training tiles
    source = write_tif(tmp_path / "in.tif", band)
    with pytest.warns(ExtrapolationWarning) as caught:
        fill_raster(source, tmp_path / "out.tif", checkpoint, window=64, progress=False)
    messages = [str(w.message) for w in caught]
    assert any("more than 32 px from any observed pixel" in m for m in messages)
    assert any("context density" in m for m in messages)  # windows beside the void are dense
    _, meta = read_output(tmp_path / "out.tif")
    assert "training tiles" in meta["tags"]["NPF_WARNINGS"]


def test_a_model_trained_on_void_tasks_takes_dense_context(checkpoint, tmp_path) -> None:
    values = field(40, 40).astype(np.float64)
    values[10:20, 10:20] = np.nan  # 94 % of the pixels observed
    data = xr.DataArray(values, dims=("y", "x"))
    with pytest.warns(ExtrapolationWarning, match="trained on at most 30%"):
        fill_dataarray(data, checkpoint)
    saved = torch.load(checkpoint, weights_only=False)
    voids = variant(
        checkpoint,
        tmp_path / "voids.pt",
        train_config={**saved["train_config"], "hole_tasks": 0.5},
    )
    assert Filler.load(voids).convcnp.max_context == pytest.approx(0.98)
    filled = fill_dataarray(data, voids)
    assert "context density" not in filled.attrs["NPF_WARNINGS"]


def test_far_values_warn(checkpoint) -> None:
    values = field(20, 20).astype(np.float64)
    values[0, 0] = 50.0  # the Gaussian fields have unit scale
    values[5:8, 5:8] = np.nan
    with pytest.warns(ExtrapolationWarning, match="far outside the training range"):
        fill_dataarray(xr.DataArray(values, dims=("y", "x")), checkpoint)


def test_rejects_a_checkpoint_of_another_channel_count(checkpoint, tmp_path) -> None:
    rgb = build_model(3, **SMALL)
    path = variant(
        checkpoint,
        tmp_path / "eurosat.pt",
        dataset="eurosat",
        model_config=dict(rgb.config),
        model_state=rgb.state_dict(),
    )
    source = write_tif(tmp_path / "in.tif", with_voids())
    with pytest.raises(ValueError, match="3-channel rasters .*'eurosat'"):
        fill_raster(source, tmp_path / "out.tif", path, progress=False)


def test_rejects_unusable_rasters(checkpoint, tmp_path) -> None:
    no_crs = write_tif(tmp_path / "no_crs.tif", with_voids(), crs=None)
    with pytest.raises(ValueError, match="no CRS"):
        fill_raster(no_crs, tmp_path / "out.tif", checkpoint, progress=False)
    empty = write_tif(tmp_path / "empty.tif", np.full((20, 20), NODATA, dtype=np.float32))
    with pytest.raises(ValueError, match="no valid pixel"):
        fill_raster(empty, tmp_path / "out.tif", checkpoint, progress=False)
    assert not (tmp_path / "out.tif").exists()  # no half-written output
    with pytest.raises(FileNotFoundError, match="missing.tif"):
        fill_raster(tmp_path / "missing.tif", tmp_path / "out.tif", checkpoint)
    with pytest.raises(FileNotFoundError, match="checkpoint .*nope.pt"):
        fill_raster(no_crs, tmp_path / "out.tif", tmp_path / "nope.pt")


def test_cli_reports_errors_in_one_line(checkpoint, tmp_path, capsys) -> None:
    source = write_tif(tmp_path / "in.tif", with_voids())
    out = tmp_path / "out.tif"
    assert main(["fill", str(source), "-o", str(out), "--checkpoint", str(checkpoint),
                 "--quiet"]) == 0  # fmt: skip
    assert out.exists() and "warning: context density" in capsys.readouterr().err
    assert main(["fill", str(tmp_path / "missing.tif"), "-o", str(out), "--checkpoint",
                 str(checkpoint)]) == 1  # fmt: skip
    error = capsys.readouterr().err.strip()
    assert error.startswith("error:") and "missing.tif" in error and "\n" not in error


def test_fills_a_real_srtm_window(dem_checkpoint, shared_data, tmp_path) -> None:
    scene = shared_data / "dem" / "srtm3_N46E008.tif"
    if not scene.is_file():
        pytest.skip(f"{scene} not present")
    window = Window(864, 96, 96, 96)  # 7 % SRTM voids
    with rasterio.open(scene) as src:
        band = src.read(1, window=window)
        profile = {**src.profile, "width": 96, "height": 96, "tiled": False}
        profile["transform"] = window_transform(window, src.transform)
        profile.pop("blockxsize", None), profile.pop("blockysize", None)
    crop = tmp_path / "crop.tif"
    with rasterio.open(crop, "w", **profile) as dst:
        dst.write(band, 1)
    with pytest.warns(ExtrapolationWarning, match="context density"):
        fill_raster(crop, tmp_path / "out.tif", dem_checkpoint, window=48, progress=False)
    bands, meta = read_output(tmp_path / "out.tif")
    assert meta["transform"] == profile["transform"] and meta["crs"] == profile["crs"]
    voids = band == profile["nodata"]
    assert voids.any()
    np.testing.assert_array_equal(bands[0][~voids], band[~voids])
    assert np.isfinite(bands[0][voids]).all() and (bands[1][voids] > 0).all()


def test_rejects_bad_points_and_grids(checkpoint, tmp_path) -> None:
    csv = tmp_path / "points.csv"
    csv.write_text("easting,northing,value\n1,2,3\n")
    grid = Grid.from_bounds((0, 0, 60, 40), 10, "EPSG:3857")
    with pytest.raises(ValueError, match=r"missing columns \['x', 'y'\]"):
        grid_points(csv, tmp_path / "out.tif", grid, checkpoint)
    csv.write_text("x,y,value\n1000,2000,3\n")
    with pytest.raises(ValueError, match="none of the 1 points falls inside the grid"):
        grid_points(csv, tmp_path / "out.tif", grid, checkpoint)
    with pytest.raises(ValueError, match="unknown CRS"):
        Grid.from_bounds((0, 0, 60, 40), 10, "EPSG:bogus")
    with pytest.raises(SystemExit):
        main(["grid", str(csv), "-o", "x.tif", "--checkpoint", "c.pt", "--like", "r.tif",
              "--crs", "EPSG:3857"])  # fmt: skip


def test_rejects_a_margin_below_the_receptive_field(checkpoint) -> None:
    data = xr.DataArray(field(20, 20).astype(np.float64), dims=("y", "x"))
    with pytest.raises(ValueError, match="margin 5 px is below the 32 px"):
        fill_dataarray(data, checkpoint, margin=5)


def write_gpkg(
    path: Path, geometries, fields: dict[str, list], crs: str | None, kind: str = "Point"
) -> Path:
    """A GeoPackage of ``kind`` geometries (shapely) with ``fields``, written through pyogrio."""
    pyogrio.raw.write(
        path,
        shapely.to_wkb(np.asarray(geometries, dtype=object)),
        [np.asarray(values) for values in fields.values()],
        list(fields),
        driver="GPKG",
        geometry_type=kind,
        crs=crs,
    )
    return path


def test_grids_a_geopackage_in_another_crs(checkpoint, tmp_path) -> None:
    reference = write_tif(tmp_path / "ref.tif", field(20, 30))
    # two points in WGS84 that land in pixels (2, 3) and (10, 20) of the UTM 33N grid
    utm = np.array([[TRANSFORM.c + 3.5 * 30, TRANSFORM.f - 2.5 * 30],
                    [TRANSFORM.c + 20.5 * 30, TRANSFORM.f - 10.5 * 30]])  # fmt: skip
    lon, lat = map(np.asarray, rasterio.warp.transform(CRS, "EPSG:4326", utm[:, 0], utm[:, 1]))
    gpkg = write_gpkg(
        tmp_path / "points.gpkg",
        shapely.points(lon, lat),
        {"elevation": [1.0, -1.0], "name": ["a", "b"]},
        "EPSG:4326",
    )
    points = read_points(gpkg, "elevation")
    assert points.crs.to_epsg() == 4326 and len(points) == 2
    out = tmp_path / "grid.tif"
    assert main(["grid", str(gpkg), "-o", str(out), "--checkpoint", str(checkpoint),
                 "--like", str(reference), "--column", "elevation", "--quiet"]) == 0  # fmt: skip
    bands, meta = read_output(out)
    assert bands[0, 2, 3] == 1.0 and bands[0, 10, 20] == -1.0
    assert meta["tags"]["NPF_POINTS_CRS"] == "EPSG:4326"
    # with --bounds, the grid takes the points' own CRS when --crs is not given
    grid = Grid.from_bounds((lon.min() - 0.01, lat.min() - 0.01, lon.max() + 0.01,
                             lat.max() + 0.01), 0.001, points.crs)  # fmt: skip
    grid_points(points, tmp_path / "deg.tif", grid, checkpoint, progress=False)
    assert read_output(tmp_path / "deg.tif")[1]["crs"].to_epsg() == 4326


@pytest.mark.filterwarnings("ignore:'crs' was not provided")
def test_rejects_vector_files_that_hold_no_usable_points(checkpoint, tmp_path) -> None:
    gpkg = write_gpkg(tmp_path / "p.gpkg", shapely.points([0, 1], [0, 1]), {"z": [1, 2]}, None)
    with pytest.raises(ValueError, match=r"no field 'value'; fields: \['z'\]"):
        read_points(gpkg)
    assert read_points(gpkg, "z").crs is None  # then the grid's CRS is assumed
    text = write_gpkg(tmp_path / "t.gpkg", shapely.points([0], [0]), {"z": ["high"]}, None)
    with pytest.raises(ValueError, match="'z' is not numeric"):
        read_points(text, "z")
    line = [shapely.LineString([(0, 0), (1, 1)])]
    lines = write_gpkg(tmp_path / "l.gpkg", line, {"z": [1.0]}, "EPSG:3857", "LineString")
    with pytest.raises(ValueError, match="1 features are linestrings; gridding takes point"):
        read_points(lines, "z")
    (tmp_path / "broken.gpkg").write_bytes(b"not a geopackage")
    with pytest.raises(ValueError, match="cannot read as a vector file"):
        read_points(tmp_path / "broken.gpkg")


def test_shipped_dem_checkpoints_fill_and_grid_without_a_checkpoint_argument(tmp_path) -> None:
    filler = Filler.load(FILL_CHECKPOINT)
    assert filler.is_dem and filler.convcnp.model.y_channels == 1
    band = (1500 + 200 * field(48, 48)).astype(np.float32)
    band[20:28, 20:28] = NODATA
    source = write_tif(tmp_path / "dem.tif", band)
    assert main(["fill", str(source), "-o", str(tmp_path / "out.tif"), "--quiet"]) == 0
    bands, meta = read_output(tmp_path / "out.tif")
    assert meta["tags"]["NPF_DATASET"] == "tfasr"
    assert Path(meta["tags"]["NPF_CHECKPOINT"]) == FILL_CHECKPOINT.resolve()
    # the default centring, and the std calibration shipped beside the model for it
    assert meta["tags"]["NPF_CENTRING"] == "filled (17 px)"
    assert meta["tags"]["NPF_STD_CALIBRATION"].endswith("dem-voids.std.json [filled (17 px)]")
    # --precision auto: bf16 where the CPU multiplies bf16 natively
    assert meta["tags"]["NPF_PRECISION"] == ("bf16" if native_bf16() else "fp32")
    hole = bands[:, 20:28, 20:28]
    # a DEM model fills a small hole in a smooth 1,300-1,700 m surface with nearby elevations
    assert (np.abs(hole[0] - 1500) < 500).all() and (hole[1] > 0).all()
    # gridding points takes the study's model, trained on scattered contexts, and local centring
    csv = tmp_path / "points.csv"
    csv.write_text("x,y,value\n500100,5199900,1200\n500600,5199500,1300\n")
    grid = ["grid", str(csv), "-o", str(tmp_path / "grid.tif"), "--like", str(source), "--quiet"]
    assert main(grid) == 0
    tags = read_output(tmp_path / "grid.tif")[1]["tags"]
    assert Path(tags["NPF_CHECKPOINT"]) == DEFAULT_CHECKPOINT.resolve()
    assert tags["NPF_CENTRING"] == "local" and tags["NPF_STD_CALIBRATION"] == "none"


def test_fast_settings_predict_what_the_exact_ones_do(checkpoint) -> None:
    values = field(40, 50).astype(np.float64)
    values[10:18, 12:25] = np.nan
    exact = Filler.load(checkpoint)
    fast = Filler.load(checkpoint, precision="bf16", compile=True)
    for window in (values, values[:30, :36]):  # two shapes: compiled with dynamic shapes
        mean, std = exact.predict(window)
        fast_mean, fast_std = fast.predict(window)
        # bf16 keeps ~3 significant digits: well inside the predictive spread
        assert np.abs(fast_mean - mean).max() < 0.05 * std.max()
        assert np.abs(fast_std - std).max() < 0.05 * std.max()
    with pytest.raises(ValueError, match="unknown precision 'fp16'; valid: fp32, bf16"):
        Filler.load(checkpoint, precision="fp16")
