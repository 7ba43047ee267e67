"""Std calibration by void width: npf.std_calibration, its use by npf.raster.Filler and
python -m npf."""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr
from test_raster import (  # checkpoint, dem_checkpoint: fixtures
    CRS,
    NODATA,
    checkpoint,  # noqa: F401
    dem_checkpoint,  # noqa: F401
    field,
    read_output,
    write_tif,
)

from npf.__main__ import main
from npf.gridding import Grid, grid_points
from npf.raster import Filler, fill_dataarray
from npf.std_calibration import (
    StdCalibration,
    calibration_path,
    fit_std_calibration,
    read_calibrations,
    void_width,
    write_calibration,
)

pytestmark = pytest.mark.filterwarnings("ignore::npf.raster.ExtrapolationWarning")


def test_fit_recovers_an_std_that_grows_with_void_width() -> None:
    """Errors whose spread grows with the void's width give factors that follow it, and
    the calibrated 95 % intervals hold 95 % of the errors in every width class."""
    rng = np.random.default_rng(0)
    width = rng.uniform(2.0, 70.0, 200_000)
    spread = 0.8 + width / 40.0
    errors = rng.normal(size=width.size) * spread
    calibration = fit_std_calibration(errors, width, widen_only=False)
    assert sum(calibration.pixels) == width.size
    expected = 0.8 + np.array(calibration.widths_px) / 40.0
    np.testing.assert_allclose(calibration.factors, expected, rtol=0.08)
    assert calibration.factors[0] < 1 < calibration.factors[-1]  # narrows and widens
    inside = np.abs(errors / calibration.factor(width)) < 1.959964
    for low, high in ((2, 4), (18, 27), (60, 70)):
        where = (width >= low) & (width < high)
        assert inside[where].mean() == pytest.approx(0.95, abs=0.015)
    # by default a calibration only widens: the same classes, factors below 1 raised to 1
    widening = fit_std_calibration(errors, width, fitted_on={"scenes": ["toy"]})
    assert widening.widths_px == calibration.widths_px
    assert widening.factors == tuple(max(1.0, f) for f in calibration.factors)
    assert widening.fitted_on == {"scenes": ["toy"]}


def test_sparse_width_classes_are_merged() -> None:
    width = np.r_[np.full(2_000, 2.0), np.full(100, 5.0), np.full(800, 30.0), np.full(50, 65.0)]
    errors = np.random.default_rng(1).normal(size=width.size)
    calibration = fit_std_calibration(errors, width, min_pixels=500)
    assert calibration.pixels == (2_100, 850)  # each small class joins the one below
    with pytest.raises(ValueError, match="at least 500"):
        fit_std_calibration(errors[:100], width[:100], min_pixels=500)
    with pytest.raises(ValueError, match="differ"):
        fit_std_calibration(errors, width[:10])


def test_a_calibration_rejects_bad_tables() -> None:
    with pytest.raises(ValueError, match="increase"):
        StdCalibration((2.0, 1.0), (1.0, 1.0))
    with pytest.raises(ValueError, match="positive"):
        StdCalibration((1.0, 2.0), (1.0, 0.0))
    with pytest.raises(ValueError, match="one factor per width"):
        StdCalibration((1.0,), ())


def test_apply_scales_each_void_by_its_width_and_keeps_observed_pixels() -> None:
    observed = np.ones((12, 20), dtype=bool)
    observed[2:7, 2:7] = False  # 5 x 5: its centre lies 3 px from terrain, 6 px wide
    observed[8, 10] = False  # one pixel: 2 px wide
    observed[2:9, 12:19] = False  # 7 x 7: 8 px wide
    width = void_width(observed)
    assert (width[2:7, 2:7] == 6).all() and width[8, 10] == 2 and (width[2:9, 12:19] == 8).all()
    assert (width[observed] == 0).all()
    calibration = StdCalibration((2.0, 6.0), (1.0, 2.0))
    std = calibration.apply(np.where(observed, 0.0, 10.0), observed)
    assert (std[2:7, 2:7] == pytest.approx(20.0)) and std[8, 10] == pytest.approx(10.0)
    assert std[2:9, 12:19] == pytest.approx(20.0)  # constant beyond the widest class
    assert (std[observed] == 0).all()
    assert (void_width(np.ones((3, 3), dtype=bool)) == 0).all()


def test_calibrations_are_stored_beside_the_checkpoint(tmp_path) -> None:
    model = tmp_path / "best.pt"
    assert calibration_path(model) == tmp_path / "best.std.json"
    assert read_calibrations(model) == {}
    local = StdCalibration((4.0, 30.0), (0.9, 1.4), (600, 700), {"scenes": ["a"]})
    write_calibration(model, "local", local)
    write_calibration(model, "filled (17 px)", StdCalibration((2.0,), (1.2,)))
    stored = read_calibrations(model)
    assert set(stored) == {"local", "filled (17 px)"}
    assert stored["local"] == local and stored["local"].fitted_on == {"scenes": ["a"]}
    calibration_path(model).write_text('{"local": {"factors": [1.0]}}')
    with pytest.raises(ValueError, match="best.std.json: not a std calibration file"):
        read_calibrations(model)


def test_a_filler_applies_the_calibration_of_its_centring(dem_checkpoint, tmp_path) -> None:  # noqa: F811
    """The stored calibration of the filler's centring scales the std of the void pixels
    (mean unchanged) and is named in the provenance; other centrings' are not used."""
    rows, cols = np.mgrid[:72, :72]
    values = 800.0 + 12.0 * cols + 30.0 * np.sin(rows / 5.0)
    values[20:50, 24:54] = np.nan
    data = xr.DataArray(values, dims=("y", "x"))
    model = tmp_path / "best.pt"
    model.write_bytes(dem_checkpoint.read_bytes())
    write_calibration(model, "local", StdCalibration((2.0, 40.0), (2.0, 4.0)))
    own = fill_dataarray(data, Filler.load(model, centring="local", calibrate_std=False))
    calibrated = fill_dataarray(data, Filler.load(model, centring="local"))
    np.testing.assert_array_equal(calibrated["mean"].values, own["mean"].values)
    void = np.isnan(values)
    ratio = calibrated["std"].values[void] / own["std"].values[void]
    assert ratio == pytest.approx(np.full(ratio.shape, 2.0 + 2.0 * (30.0 - 2.0) / 38.0))
    assert (calibrated["std"].values[~void] == 0).all()
    assert calibrated.attrs["NPF_STD_CALIBRATION"].endswith("best.std.json [local]")
    assert own.attrs["NPF_STD_CALIBRATION"] == "none"
    filled = Filler.load(model, centring="filled")
    assert filled.std_calibration is None
    assert fill_dataarray(data, filled).attrs["NPF_STD_CALIBRATION"] == "none"


def test_fill_uses_the_calibration_and_grid_does_not(dem_checkpoint, tmp_path) -> None:  # noqa: F811
    """`python -m npf fill` scales the std (by the calibration of its default centring)
    unless told not to; gridding scattered points, for which no calibration was fitted,
    never does."""
    model = tmp_path / "best.pt"
    model.write_bytes(dem_checkpoint.read_bytes())
    write_calibration(model, "filled (17 px)", StdCalibration((2.0,), (3.0,)))
    band = (1000 + 100 * field(40, 40)).astype(np.float32)
    band[10:20, 10:20] = NODATA
    source = write_tif(tmp_path / "in.tif", band)
    stds = {}
    for name, extra in (("calibrated", []), ("own", ["--no-std-calibration"])):
        out = tmp_path / f"{name}.tif"
        args = ["fill", str(source), "-o", str(out), "--checkpoint", str(model), "--quiet"]
        assert main([*args, "--precision", "fp32", *extra]) == 0
        bands, meta = read_output(out)
        stds[name] = bands[1, 10:20, 10:20]
        assert (meta["tags"]["NPF_STD_CALIBRATION"] == "none") == (name == "own")
    np.testing.assert_allclose(stds["calibrated"], 3.0 * stds["own"], rtol=1e-5)
    csv = tmp_path / "points.csv"
    csv.write_text("x,y,value\n500100,5199900,1200\n500600,5199500,1300\n")
    grid = Grid.from_bounds((500_000, 5_199_000, 501_200, 5_200_000), 30, CRS)
    grid_points(csv, tmp_path / "grid.tif", grid, Filler.load(model), progress=False)
    assert read_output(tmp_path / "grid.tif")[1]["tags"]["NPF_STD_CALIBRATION"] == "none"
