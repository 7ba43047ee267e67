"""Artificial DEM voids and the methods that fill them: npf.voids."""

from __future__ import annotations

import math
from contextlib import nullcontext
from pathlib import Path

import numpy as np
import pytest
import rasterio
import torch
import xarray as xr
from rasterio.windows import Window
from scipy.ndimage import binary_dilation, label

from npf.data.tiling import decode
from npf.raster import ExtrapolationWarning, Filler
from npf.training import build_model, model_kwargs
from npf.voids import (
    KRIGING_MODELS,
    SIZE_EDGES,
    Fill,
    Method,
    Voids,
    compare,
    fill_convcnp,
    fill_cubic,
    fill_gdal,
    fill_kriging,
    make_voids,
    pool,
    score,
    void_variogram,
)

SMALL = {"hidden_channels": 16, "n_blocks": 2, "kernel_size": 5}
EIGHT = np.ones((3, 3), dtype=bool)
SMALLEST_BLOB = math.ceil(math.pi * SIZE_EDGES[0] ** 2 / 4)


def surface(height: int = 96, width: int = 96) -> np.ndarray:
    """A smooth terrain-like field (m)."""
    rows, cols = np.mgrid[:height, :width]
    return 1000.0 + 40.0 * np.sin(rows / 12.0) + 30.0 * np.cos(cols / 9.0) + 0.5 * rows


def with_nodata() -> np.ndarray:
    """:func:`surface` with a block of nodata, as at a DEM's edge."""
    values = surface()
    values[:20, 70:] = np.nan
    return values


def write_checkpoint(path: Path, y_channels: int = 1) -> Path:
    """An untrained tiny model saved as a DEM checkpoint (the keys ``load_model`` reads)."""
    model = build_model(y_channels, **SMALL)
    checkpoint = {
        "model_config": model_kwargs(model),
        "model_state": model.state_dict(),
        "scaling": {"scale": 50.0, "center_on_context": True},
        "dataset": "tfasr",
        "epoch": 0,
    }
    torch.save(checkpoint, path)
    return path


@pytest.fixture(scope="module")
def filler(tmp_path_factory) -> Filler:
    return Filler.load(write_checkpoint(tmp_path_factory.mktemp("model") / "best.pt"))


def methods(filler: Filler) -> dict[str, Method]:
    return {
        "convcnp": lambda values, where: fill_convcnp(values, filler, where),
        "gdal": fill_gdal,
        "cubic": fill_cubic,
        "kriging": fill_kriging,
    }


def constant(values: np.ndarray, where: np.ndarray) -> Fill:
    """The mean of the observed pixels everywhere in the voids."""
    return Fill(np.where(where, np.nanmean(values), values), None)


@pytest.mark.parametrize(("share", "seed"), [(0.01, 0), (0.05, 1), (0.2, 2)])
def test_voids_cover_the_share_in_separate_blobs_on_valid_pixels(share, seed) -> None:
    values = with_nodata()
    valid = np.isfinite(values)
    voids = make_voids(values, share, seed)
    assert abs(voids.mask.sum() - share * valid.sum()) <= SMALLEST_BLOB
    assert voids.share == pytest.approx(voids.mask.sum() / valid.sum())
    # every blob is a void of its own, with known terrain all around it
    assert not (binary_dilation(voids.mask, EIGHT) & ~valid).any()
    assert not voids.mask[[0, -1]].any() and not voids.mask[:, [0, -1]].any()
    parts, count = label(voids.mask, structure=EIGHT)
    assert count == len(voids.diameters) == voids.blob.max()
    for number, diameter in enumerate(voids.diameters, start=1):
        area = (voids.blob == number).sum()
        assert diameter == pytest.approx(math.sqrt(4 * area / math.pi))
        assert len(np.unique(parts[voids.blob == number])) == 1
    assert ((voids.diameters >= 3) & (voids.diameters <= 60)).all()
    classes = np.searchsorted(SIZE_EDGES, voids.diameters, side="right") - 1
    np.testing.assert_array_equal(voids.size_class[voids.mask], classes[voids.blob[voids.mask] - 1])
    assert (voids.size_class[~voids.mask] == -1).all()


def test_voids_are_reproducible_for_a_seed() -> None:
    first, again, other = (make_voids(surface(), 0.1, seed) for seed in (3, 3, 4))
    np.testing.assert_array_equal(first.blob, again.blob)
    np.testing.assert_array_equal(first.diameters, again.diameters)
    assert not np.array_equal(first.blob, other.blob)


def test_diameters_and_classes_follow_the_request() -> None:
    voids = make_voids(surface(), 0.2, 0, diameters=(10.0, 20.0), edges=(10.0, 15.0, 20.0))
    assert voids.classes == ("10-15", "15-20")
    # the last blob may be shrunk to the remaining area, but never below the minimum
    assert ((voids.diameters >= 10) & (voids.diameters <= 20)).all()
    assert set(np.unique(voids.size_class[voids.mask])) <= {0, 1}


def test_steep_terrain_draws_the_voids() -> None:
    values = surface()
    values[:, :48] = 1000.0  # flat left half: slope 0, no blob centred there
    voids = make_voids(values, 0.05, 0, diameters=(3.0, 6.0))
    assert not voids.mask[:, :38].any()  # a blob box of d <= 6 px reaches 9 px from its centre
    assert make_voids(values, 0.05, 0, diameters=(3.0, 6.0), steep=False).mask[:, :38].any()


@pytest.mark.parametrize("name", ["convcnp", "gdal", "cubic", "kriging"])
def test_methods_fill_every_void_and_keep_observed_pixels(filler, name) -> None:
    values = with_nodata()
    voids = make_voids(values, 0.1, 0)
    holed = voids.apply(values)
    with pytest.warns(ExtrapolationWarning) if name == "convcnp" else nullcontext():
        filled = methods(filler)[name](holed, voids.mask)
    assert np.isfinite(filled.mean[voids.mask]).all()
    observed = np.isfinite(holed)
    np.testing.assert_array_equal(filled.mean[observed], values[observed])
    assert np.isnan(filled.mean[~observed & ~voids.mask]).all()  # nodata not asked for
    if name in ("convcnp", "kriging"):
        assert (filled.std[voids.mask] > 0).all() and (filled.std[observed] == 0).all()
    else:
        assert filled.std is None
    if name == "convcnp":  # 90 % context: denser than the model's training
        assert any("context density" in note for note in filled.notes)


@pytest.mark.parametrize("fill", [fill_gdal, fill_cubic, fill_kriging])
def test_nothing_to_fill_changes_nothing(fill) -> None:
    values = with_nodata()
    filled = fill(values, np.zeros(values.shape, dtype=bool))
    np.testing.assert_array_equal(filled.mean, values)


def test_kriging_fits_one_short_lag_variogram_for_all_voids() -> None:
    values = surface()
    voids = make_voids(values, 0.1, 0)
    holed = voids.apply(values)
    variogram = void_variogram(holed, voids.mask, 8)
    assert variogram.model in KRIGING_MODELS
    given = fill_kriging(holed, voids.mask, margin=8, variogram=variogram)
    default = fill_kriging(holed, voids.mask, margin=8)
    np.testing.assert_array_equal(given.mean, default.mean)
    np.testing.assert_array_equal(given.std, default.std)
    assert void_variogram(holed, voids.mask, 8, ("gaussian",)).model == "gaussian"


def test_cubic_and_kriging_beat_a_constant_on_a_smooth_surface() -> None:
    values = surface()
    voids = make_voids(values, 0.1, 1)
    result = compare(
        values, voids, {"constant": constant, "cubic": fill_cubic, "kriging": fill_kriging}
    )
    rmse = result["rmse"].sel(size_class="all")
    assert rmse.sel(fill_method="cubic") < 0.1 * rmse.sel(fill_method="constant")
    assert rmse.sel(fill_method="kriging") < 0.1 * rmse.sel(fill_method="constant")
    assert 0.8 <= float(result["coverage95"].sel(fill_method="kriging", size_class="all")) <= 1.0
    assert np.isnan(result["nll"].sel(fill_method="cubic")).all()
    assert (result["seconds"] > 0).all()
    assert result["megapixels"] == pytest.approx(96 * 96 / 1e6)
    assert set(result.attrs["notes"]) == {"constant", "cubic", "kriging"}


def test_score_matches_a_hand_computation() -> None:
    truth = surface(32, 32)
    blob = np.zeros(truth.shape, dtype=np.int32)
    blob[5:7, 5:8] = 1  # 6 px: class 0
    blob[15:25, 15:25] = 2  # 100 px: class 2
    voids = Voids(
        blob,
        np.select([blob == 1, blob == 2], [0, 2], -1).astype(np.int8),
        np.array([math.sqrt(24 / math.pi), math.sqrt(400 / math.pi)]),
        SIZE_EDGES,
        truth.size,
    )
    error = np.random.default_rng(0).normal(0.0, 3.0, truth.shape)
    std = np.full(truth.shape, 2.0)
    result = score(truth, voids, truth + error, std)
    small, large = error[blob == 1], error[blob == 2]
    assert result["rmse"].sel(size_class="3-5") == pytest.approx(np.sqrt(np.mean(small**2)))
    assert result["rmse"].sel(size_class="10-20") == pytest.approx(np.sqrt(np.mean(large**2)))
    everything = np.concatenate([small, large])
    assert result["rmse"].sel(size_class="all") == pytest.approx(np.sqrt(np.mean(everything**2)))
    assert result["mae"].sel(size_class="all") == pytest.approx(np.mean(np.abs(everything)))
    hand_nll = np.mean(0.5 * (everything / 2.0) ** 2 + np.log(2.0) + 0.5 * np.log(2 * np.pi))
    assert result["nll"].sel(size_class="all") == pytest.approx(hand_nll)
    hand_coverage = np.mean(np.abs(everything) <= 1.959964 * 2.0)
    assert result["coverage95"].sel(size_class="all") == pytest.approx(hand_coverage)
    assert list(result["pixels"].values) == [6, 0, 100, 0, 0, 106]
    assert list(result["blobs"].values) == [1, 0, 1, 0, 0, 2]
    assert np.isnan(result["rmse"].sel(size_class="5-10"))


def test_pool_equals_scoring_all_runs_at_once() -> None:
    values = surface()
    runs = [
        compare(values, make_voids(values, 0.05, seed), {"cubic": fill_cubic}) for seed in (0, 1)
    ]
    pooled = pool(xr.concat(runs, dim="run", data_vars="all"))
    errors = []
    for seed in (0, 1):
        voids = make_voids(values, 0.05, seed)
        errors.append((fill_cubic(voids.apply(values), voids.mask).mean - values)[voids.mask])
    errors = np.concatenate(errors)
    rmse = pooled["rmse"].sel(fill_method="cubic", size_class="all")
    assert rmse == pytest.approx(np.sqrt(np.mean(errors**2)))
    assert pooled["pixels"].sel(size_class="all") == errors.size
    assert pooled["seconds"].sel(fill_method="cubic") == pytest.approx(
        sum(float(r["seconds"].sel(fill_method="cubic")) for r in runs)
    )
    assert pooled["megapixels"] == pytest.approx(2 * 96 * 96 / 1e6)


def test_methods_take_dataarrays() -> None:
    values = with_nodata()
    data = xr.DataArray(values[None], dims=("band", "y", "x"))
    voids = make_voids(data, 0.05, 0)
    np.testing.assert_array_equal(voids.blob, make_voids(values, 0.05, 0).blob)
    filled = fill_gdal(xr.DataArray(voids.apply(values), dims=("y", "x")), voids.mask)
    assert np.isfinite(filled.mean[voids.mask]).all()


@pytest.mark.parametrize(
    ("call", "message"),
    [
        (lambda: make_voids(surface(), 0.0), "void share"),
        (lambda: make_voids(surface(), 0.6), "void share"),
        (lambda: make_voids(surface(), -0.1), "void share"),
        (lambda: make_voids(np.full((20, 20), np.nan), 0.1), "no valid"),
        (lambda: make_voids(np.zeros((2, 20, 20)), 0.1), "2-D raster"),
        (lambda: make_voids(surface(), 0.1, diameters=(0.5, 5.0)), "diameters"),
        (lambda: make_voids(surface(), 0.1, diameters=(10.0, 5.0)), "diameters"),
        (lambda: make_voids(surface(), 0.1, diameters=(3.0, 80.0)), "edges"),
        (lambda: make_voids(surface(10, 10), 0.5, diameters=(3.0, 5.0)), "could place"),
        (lambda: make_voids(surface(), 0.0003), "under half the smallest blob"),
        (lambda: fill_gdal(surface(), np.ones((96, 96), dtype=bool)), "observed pixels"),
        (lambda: fill_cubic(surface(), np.ones((5, 5), dtype=bool)), "bool mask"),
        (lambda: fill_cubic(with_nodata(), band=0), "margin"),
    ],
)
def test_bad_input_raises(call, message) -> None:
    with pytest.raises(ValueError, match=message):
        call()


def test_score_rejects_unfilled_voids() -> None:
    values = surface()
    voids = make_voids(values, 0.05, 0)
    with pytest.raises(ValueError, match="not finite on"):
        score(values, voids, voids.apply(values))
    with pytest.raises(ValueError, match="std must be positive"):
        score(values, voids, values, np.zeros_like(values))
    with pytest.raises(ValueError, match="shapes differ"):
        score(values, voids, values[:10])


def test_a_multiband_checkpoint_is_refused(tmp_path) -> None:
    path = write_checkpoint(tmp_path / "rgb.pt", y_channels=3)
    with pytest.raises(ValueError, match="3-channel"):
        fill_convcnp(with_nodata(), path)


def test_real_dem_scene(shared_data) -> None:
    scene = shared_data / "dem" / "Mandakini.tif"
    if not scene.is_file():
        pytest.skip(f"{scene} absent: the DEM test scenes are only on the project's machines")
    with rasterio.open(scene) as src:
        top, left = (src.height - 64) // 2, (src.width - 64) // 2
        values, _ = decode(src.read(1, window=Window(left, top, 64, 64), masked=True))
    voids = make_voids(values, 0.05, 0)
    result = compare(values, voids, {"constant": constant, "gdal": fill_gdal, "cubic": fill_cubic})
    rmse = result["rmse"].sel(size_class="all")
    assert rmse.sel(fill_method="cubic") < rmse.sel(fill_method="constant")
    assert rmse.sel(fill_method="gdal") < rmse.sel(fill_method="constant")
