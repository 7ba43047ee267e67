"""Tiler and ``tfasr`` loader on small GeoTIFF scenes written here."""

from __future__ import annotations

import json
import re
import sys
import urllib.error
from pathlib import Path

import numpy as np
import pytest
import rasterio
from rasterio.transform import from_origin

from npf.data import CorruptFileError, DatasetNotFoundError, dem_sources, load_splits
from npf.data.__main__ import main
from npf.data.dem import (
    export_tiles,
    holdout,
    load,
    prepare,
    read_tiles,
    scenes_dir,
    tfasr_dir,
)
from npf.data.tiling import (
    TileRules,
    check_split,
    decode,
    ground_pixel_size,
    metres_per_degree,
    scene_footprint,
    tile_scene,
    tile_scenes,
)

NODATA = -32768
SMALL = TileRules(size=16)


def write_scene(
    path: Path,
    elevation: np.ndarray,
    crs: str = "EPSG:32632",
    origin: tuple[float, float] = (500_000.0, 5_200_000.0),
    res: float = 30.0,
    nodata: float | None = NODATA,
) -> Path:
    height, width = elevation.shape
    with rasterio.open(
        path,
        "w",
        driver="GTiff",
        height=height,
        width=width,
        count=1,
        dtype=elevation.dtype,
        crs=crs,
        transform=from_origin(*origin, res, res),
        nodata=nodata,
    ) as dataset:
        dataset.write(elevation, 1)
    return path


def terrain(height: int, width: int, seed: int, base: float = 1000.0) -> np.ndarray:
    rng = np.random.default_rng(seed)
    rows, cols = np.mgrid[0:height, 0:width]
    relief = 300 * np.sin(rows / 7.0) * np.cos(cols / 5.0) + rng.normal(0, 20, (height, width))
    return (base + relief).astype(np.int16)


@pytest.fixture
def scenes(tmp_path: Path) -> Path:
    """Four scenes far apart (one with a nodata block, one mostly sea) and a corrupt file."""
    source = tmp_path / "scenes"
    source.mkdir()
    with_holes = terrain(48, 64, seed=1)
    with_holes[0:16, 0:16] = NODATA  # one whole window of nodata
    with_holes[20, 20] = NODATA  # a single pixel: 1/256 < 5 %, kept but masked
    write_scene(source / "alps.tif", with_holes)
    write_scene(source / "andes.tif", terrain(32, 32, seed=2), origin=(900_000.0, 5_900_000.0))
    island = terrain(32, 32, seed=3)
    island[:, :28] = 0  # at least 75 % sea in every window
    write_scene(source / "island.tif", island, origin=(100_000.0, 4_000_000.0))
    write_scene(
        source / "geo.tif",
        terrain(32, 32, seed=4),
        crs="EPSG:4326",
        origin=(120.0, -30.0),
        res=1 / 1200,
    )
    (source / "broken.tif").write_bytes(b"II*\x00" + b"\x17" * 300)
    return source


def test_tile_scene_keeps_georeference_and_values(scenes: Path, tmp_path: Path) -> None:
    report = tile_scene(scenes / "alps.tif", tmp_path / "out", stride=16, rules=SMALL)
    assert report.windows == 3 * 4
    assert report.kept == 11
    assert report.skipped == {"nodata > 5%": 1}
    with rasterio.open(scenes / "alps.tif") as source:
        scene = source.read(1)
        origin_x, origin_y = source.transform.c, source.transform.f
    with rasterio.open(tmp_path / "out" / "alps_r00016_c00032.tif") as tile:
        assert tile.shape == (16, 16)
        assert tile.crs.to_epsg() == 32632
        assert (tile.transform.c, tile.transform.f) == (origin_x + 32 * 30, origin_y - 16 * 30)
        np.testing.assert_array_equal(tile.read(1), scene[16:32, 32:48])
        assert tile.nodata == NODATA
        assert tile.tags()["NPF_SCENE"] == "alps"
    assert not list((tmp_path / "out").glob(".*"))  # no partial files left


def test_tile_scene_overlapping_stride_and_sea_rule(scenes: Path, tmp_path: Path) -> None:
    overlapping = tile_scene(scenes / "andes.tif", tmp_path / "a", stride=8, rules=SMALL)
    assert overlapping.windows == overlapping.kept == 3 * 3
    sea = tile_scene(scenes / "island.tif", tmp_path / "b", stride=16, rules=SMALL)
    assert sea.kept == 0 and sum(sea.skipped.values()) == 4
    lenient = TileRules(size=16, max_sea_fraction=1.0)
    assert tile_scene(scenes / "island.tif", tmp_path / "c", stride=16, rules=lenient).kept == 4


def test_corrupt_scene_is_reported_not_raised(scenes: Path, tmp_path: Path) -> None:
    report = tile_scene(scenes / "broken.tif", tmp_path / "out", stride=16, rules=SMALL)
    assert report.kept == 0
    assert "broken.tif" in report.error
    assert not list((tmp_path / "out").glob("*"))


def test_split_check_keeps_neighbours_together(tmp_path: Path) -> None:
    arc3 = 1 / 1200
    left, right = (
        write_scene(path, terrain(32, 32, 0), crs="EPSG:4326", origin=(lon, 47), res=arc3)
        for path, lon in ((tmp_path / "left.tif", 8), (tmp_path / "right.tif", 8 + 32 * arc3))
    )
    boxes = {"left": scene_footprint(left), "right": scene_footprint(right)}
    with pytest.raises(ValueError, match="left / right"):
        check_split(boxes, {"right"}, margin_km=50)
    check_split(boxes, {"left", "right"}, margin_km=50)
    with pytest.raises(ValueError, match="left / right"):
        tile_scenes([left, right], tmp_path / "out", ["right"], train_stride=16, rules=SMALL)


def test_ground_pixel_size_in_metres() -> None:
    per_lon, per_lat = metres_per_degree(np.array([0.0, 90.0]))
    np.testing.assert_allclose(per_lon[0], 111_319.49, atol=0.01)
    np.testing.assert_allclose(per_lat, [110_574.27, 111_693.98], atol=0.01)
    arc3 = 1 / 1200
    geographic = ground_pixel_size(
        rasterio.crs.CRS.from_epsg(4326), [from_origin(8.0, 60.0, arc3, arc3)], [600], [600]
    )
    np.testing.assert_allclose(geographic["lat"], 60.0 - 600.5 * arc3)
    np.testing.assert_allclose(geographic["pixel_width_m"], 47.2, atol=0.1)
    np.testing.assert_allclose(geographic["pixel_height_m"], 92.8, atol=0.1)
    utm = ground_pixel_size(
        rasterio.crs.CRS.from_epsg(32632), [from_origin(500_000, 5_200_000, 30, 30)], [0], [0]
    )
    np.testing.assert_allclose(utm["resolution_m"], 30.0, rtol=1e-3)


def prepare_small(scenes: Path, data_dir: Path) -> str:
    return prepare(scenes, data_dir, test_scenes=["andes"], train_stride=8, rules=SMALL)


def test_prepare_then_load_masks_nodata_and_scales_from_train(scenes: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    text = prepare_small(scenes, data_dir)
    assert "broken.tif: cannot read" in text
    root = tfasr_dir(data_dir)
    record = json.loads((root / "tiling.json").read_text())
    assert record["tiles"] == {"train": 40, "test": 4}  # alps 5x7-4, geo 3x3, island 0
    pool, test = load(data_dir)
    assert len(pool) == 40 and len(test) == 4
    assert pool.shape == (1, 16, 16) and pool.units == "m"
    assert set(pool.labels["scene"]) == {"alps", "geo"} and set(test.labels["scene"]) == {"andes"}
    # the single nodata pixel of alps is invalid (NaN), never a value
    hole = (
        (pool.labels["scene"] == "alps") & (pool.labels["row"] == 16) & (pool.labels["col"] == 16)
    )
    (index,) = np.flatnonzero(hole)
    assert not pool.valid[index, 0, 4, 4] and pool.values[index, 0, 4, 4].isnan()
    assert pool.valid.sum() == 40 * 256 - 3  # the pixel lies in 3 kept windows
    geo = pool.labels["scene"] == "geo"
    np.testing.assert_allclose(pool.labels["pixel_width_m"][geo], 80.4, atol=0.2)  # 3" at 30 S
    np.testing.assert_allclose(pool.labels["pixel_height_m"][geo], 92.4, atol=0.2)
    np.testing.assert_allclose(pool.pixel_size_m[~geo], 30.0, rtol=1e-3)
    # the scale is the median within-tile std of the *training* tiles only
    stds = np.nanstd(pool.values[:, 0].numpy(), axis=(1, 2))
    assert pool.scaling.scale == pytest.approx(np.median(stds), rel=1e-4)
    assert pool.scaling.center_on_context and test.scaling == pool.scaling


def test_exported_tiles_load_without_rasterio(
    scenes: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    data_dir = tmp_path / "data"
    prepare_small(scenes, data_dir)
    from_tiffs = read_tiles(tfasr_dir(data_dir), "train")
    for split in ("train", "test"):
        for tile in (tfasr_dir(data_dir) / split).glob("*.tif"):
            tile.unlink()
    monkeypatch.setitem(sys.modules, "rasterio", None)  # any import of rasterio now fails
    splits = load_splits("tfasr", data_dir, val_fraction=0.25)
    pool, _ = load(data_dir)
    # the validation set is drawn by spatial block, with overlapping training tiles left out
    train, val = holdout(pool, 0.25, seed=0)
    assert splits.sizes() == {"train": len(train), "val": len(val), "test": 4}
    assert len(val) >= 10 and len(train) + len(val) <= len(pool) == 40
    np.testing.assert_array_equal(np.isnan(pool.values[:, 0].numpy()), np.isnan(from_tiffs[0]))
    np.testing.assert_allclose(pool.values[:, 0].numpy(), from_tiffs[0], atol=0.5)


def test_stale_export_is_refused(scenes: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prepare_small(scenes, data_dir)
    next((tfasr_dir(data_dir) / "train").glob("*.tif")).unlink()
    with pytest.raises(CorruptFileError, match="export tfasr"):
        load(data_dir)
    export_tiles(tfasr_dir(data_dir))
    assert len(load(data_dir)[0]) == 39


def test_missing_and_corrupt_tiles(scenes: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="prepare tfasr") as missing:
        load(tmp_path / "nothing")
    assert str(tmp_path / "nothing" / "tfasr" / "train") in str(missing.value)
    data_dir = tmp_path / "data"
    prepare_small(scenes, data_dir)
    (tfasr_dir(data_dir) / "tiles.npz").unlink()
    bad = tfasr_dir(data_dir) / "test" / "zz_bad.tif"
    bad.write_bytes(b"not a tiff")
    with pytest.raises(CorruptFileError, match="zz_bad.tif"):
        load(data_dir)


def test_prepare_replaces_own_output_but_never_foreign_tiles(scenes: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prepare_small(scenes, data_dir)
    prepare(scenes, data_dir, test_scenes=["geo"], train_stride=16, rules=SMALL)
    pool, test = load(data_dir)
    assert set(test.labels["scene"]) == {"geo"} and len(pool) == 11 + 4
    assert not (data_dir / "tfasr.partial").exists() and not (data_dir / "tfasr.old").exists()
    # the scenes are kept whole beside the tiles, copied from the source
    kept = sorted(path.name for path in scenes_dir(data_dir).iterdir())
    assert kept == sorted(path.name for path in scenes.glob("*.tif"))
    assert sorted(path.name for path in data_dir.iterdir()) == ["dem", "tfasr"]
    with pytest.raises(ValueError, match="where prepare keeps the scenes"):
        prepare(scenes_dir(data_dir), data_dir)
    foreign = tmp_path / "real"
    (foreign / "tfasr" / "train").mkdir(parents=True)
    with pytest.raises(FileExistsError, match="did not make"):
        prepare_small(scenes, foreign)


def test_cli_prepare_and_errors(
    scenes: Path,
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    data_dir = tmp_path / "data"
    argv = ["prepare", "tfasr", "--source", str(scenes), "--data-dir", str(data_dir)]
    options = ["--test-scenes", "andes", "--tile-size", "16", "--train-stride", "16"]
    assert main(argv + options) == 0
    assert "tiles: {'train': 15, 'test': 4}" in capsys.readouterr().out
    assert main(argv + ["--test-scenes", "atlantis"]) == 1
    assert "atlantis" in capsys.readouterr().err

    def offline(url: str) -> bytes:
        raise urllib.error.URLError("no network in tests")

    monkeypatch.setattr(dem_sources, "fetch", offline)
    assert main(["prepare", "tfasr", "--download", "--data-dir", str(data_dir)]) == 1
    error = capsys.readouterr().err.splitlines()[-1]  # after tqdm's progress bar
    assert error.startswith("error: tfasr scene bigtujunga: cannot fetch bigtujunga.tif: https://")
    assert "raw.githubusercontent.com/TopoToolbox/DEMs/" in error
    assert (tfasr_dir(data_dir) / "tiling.json").exists()  # the prepared set is kept


def test_decode_treats_out_of_range_elevations_as_invalid() -> None:
    band = np.ma.masked_array([-32768, -32767, -501, -500, 0, 8_848, 9_000, 9_001, 7], dtype=float)
    band[-1] = np.ma.masked
    elevation, valid = decode(band)
    np.testing.assert_array_equal(valid, [0, 0, 0, 1, 1, 1, 1, 0, 0])
    assert np.isnan(elevation[~valid]).all()


@pytest.mark.parametrize("void", [-32768, -32767])
def test_srtm_voids_without_nodata_tag_are_invalid(tmp_path: Path, void: int) -> None:
    source = tmp_path / "scenes"
    source.mkdir()
    with_voids = terrain(32, 48, seed=5)
    with_voids[0:16, 0:16] = void  # one whole window of voids
    with_voids[20, 20] = void  # one void pixel in a kept window
    write_scene(source / "voids.tif", with_voids, nodata=None)
    write_scene(source / "far.tif", terrain(32, 32, seed=6), origin=(900_000.0, 5_900_000.0))
    prepare(source, tmp_path / "data", test_scenes=["far"], train_stride=16, rules=SMALL)
    pool, _ = load(tmp_path / "data")
    assert len(pool) == 2 * 3 - 1 and int(pool.valid.sum()) == 5 * 256 - 1
    assert float(np.nanmin(pool.values)) > 0
    clean = np.nanstd(terrain(32, 48, seed=5).astype(float)[16:, :16])
    assert pool.scaling.scale < 2 * clean  # voids would make it thousands of metres


def test_scenes_without_usable_georeference_are_skipped_and_listed(
    scenes: Path, tmp_path: Path
) -> None:
    write_scene(scenes / "no_crs.tif", terrain(32, 32, seed=7), crs=None)
    local = 'LOCAL_CS["site grid",UNIT["metre",1],AXIS["x",EAST],AXIS["y",NORTH]]'
    write_scene(scenes / "site_grid.tif", terrain(32, 32, seed=7), crs=local)
    degrees = {"crs": "EPSG:32632", "origin": (8.0, 47.0), "res": 1 / 1200}
    write_scene(scenes / "degrees_as_utm.tif", terrain(32, 32, seed=8), **degrees)
    text = prepare_small(scenes, tmp_path / "data")
    assert "no_crs.tif: no CRS" in text
    assert "site_grid.tif: CRS " in text and "neither geographic nor projected" in text
    assert re.search(r"degrees_as_utm.tif: pixels of 0.00083\d x 0.00083\d m.* contradicts", text)
    record = json.loads((tfasr_dir(tmp_path / "data") / "tiling.json").read_text())
    assert record["tiles"] == {"train": 40, "test": 4}  # as without the two scenes
    root = tfasr_dir(tmp_path / "data")
    (root / "tiles.npz").unlink()
    write_scene(root / "train" / "zz_degrees.tif", terrain(16, 16, seed=9), **degrees)
    with pytest.raises(
        CorruptFileError, match=r"zz_degrees.tif: pixels of 0.00083\d x 0.00083\d m"
    ):
        load(tmp_path / "data")


def test_truncated_export_names_file_and_remedy(scenes: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    prepare_small(scenes, data_dir)
    export = tfasr_dir(data_dir) / "tiles.npz"
    export.write_bytes(export.read_bytes()[: export.stat().st_size // 2])
    with pytest.raises(CorruptFileError, match=r"tiles.npz: cannot read .* export tfasr"):
        load(data_dir)
