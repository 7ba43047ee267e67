"""The real data sets in ``../shared/data`` (fixture ``shared_data``; skipped when absent)."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import rasterio

from npf.data import eurosat, fashionmnist, load_splits
from npf.data.dem import TEST_SCENES, prepare
from npf.data.tiling import check_split, decode, find_scenes, scene_footprint, scene_name


def test_fashionmnist_official_archives_and_counts(shared_data: Path, tmp_path: Path) -> None:
    fashionmnist.prepare(shared_data / "fashionmnist", tmp_path)  # checks the published MD5s
    splits = load_splits("fashionmnist", tmp_path)
    assert splits.sizes() == {"train": 54_000, "val": 6_000, "test": 10_000}
    assert splits.train.shape == (1, 32, 32)
    pool_labels = np.concatenate([splits.train.labels["label"], splits.val.labels["label"]])
    assert np.bincount(pool_labels).tolist() == [6_000] * 10
    assert splits.test.labels["label"][:5].tolist() == [9, 2, 1, 1, 6]


def test_eurosat_industrial_disjoint_split(shared_data: Path, tmp_path: Path) -> None:
    eurosat.prepare(shared_data / "eurosat", tmp_path)
    splits = load_splits("eurosat", tmp_path)
    assert splits.sizes() == {"train": 1_800, "val": 200, "test": 500}
    assert splits.test.shape == (3, 64, 64)
    paths = [set(part.labels["path"]) for part in (splits.train, splits.val, splits.test)]
    assert len(set.union(*paths)) == 2_500


def test_dem_split_keeps_overlapping_and_adjacent_scenes_together(shared_data: Path) -> None:
    boxes = {scene_name(p): scene_footprint(p) for p in find_scenes(shared_data / "dem")}
    check_split(boxes, set(TEST_SCENES), margin_km=50)
    for scene, neighbour in (
        ("dem_RGI50-11.01270", "srtm3_N46E008"),
        ("srtm3_N49W123", "srtm3_N49W124"),
        ("dem_Columbia", "dem_RGI50-01.10299"),
    ):
        with pytest.raises(ValueError, match=neighbour):
            check_split(boxes, {scene}, margin_km=50)


def test_dem_tiles_of_two_real_scenes(shared_data: Path, tmp_path: Path) -> None:
    """A masked UTM scene as test, a geographic scene as training (the full set takes ~1 min)."""
    source = tmp_path / "scenes"
    source.mkdir()
    for name in ("Mandakini.tif", "srtm_oetztal.tif"):
        (source / name).symlink_to(shared_data / "dem" / name)
    prepare(source, tmp_path / "data", test_scenes=["Mandakini"], train_stride=32)
    splits = load_splits("tfasr", tmp_path / "data")
    test = splits.test
    with rasterio.open(shared_data / "dem" / "Mandakini.tif") as scene:
        elevation, valid = decode(scene.read(1, masked=True))
    windows = [
        (row, col)
        for row in range(0, elevation.shape[0] - 63, 64)
        for col in range(0, elevation.shape[1] - 63, 64)
        if valid[row : row + 64, col : col + 64].mean() >= 0.95
    ]
    assert list(zip(test.labels["row"], test.labels["col"], strict=True)) == windows
    for k, (row, col) in enumerate(windows):
        np.testing.assert_array_equal(
            test.values[k, 0].numpy(), elevation[row : row + 64, col : col + 64]
        )
    np.testing.assert_allclose(test.pixel_size_m, 88.81, atol=0.1)
    train = splits.train
    assert set(train.labels["scene"]) == {"srtm_oetztal"} and train.shape == (1, 64, 64)
    np.testing.assert_allclose(train.labels["pixel_height_m"], 92.6, atol=0.1)  # 3" at ~47 N
    width = train.labels["pixel_width_m"]  # 3" of longitude shrinks towards the north
    assert np.all((63.3 < width) & (width < 63.8))
    assert np.corrcoef(train.labels["lat"], width)[0, 1] < -0.99
    assert train.scaling.center_on_context and train.units == "m"
