"""Filling artificial voids in real DEM scenes: ConvCNP against GDAL's fill, cubic and kriging.

Run by hand, never from the test suite::

    .venv/bin/python benchmarks/void_filling.py --checkpoint runs/tfasr/best.pt
    .venv/bin/python benchmarks/void_filling.py --checkpoint runs/tfasr/best.pt \\
        --scenes Mandakini --window 256 --seeds 0 --out /tmp/void-filling.json
    .venv/bin/python benchmarks/void_filling.py \\
        --checkpoint base=npf/checkpoints/dem.pt voids=runs/tfasr-voids/best.pt
    .venv/bin/python benchmarks/void_filling.py --fit-std-calibration --centrings filled \\
        --scenes Mega_divide bigtujunga srtm3_S36E149 srtm3_N49W123 baltoro_srtm_clip

Each scene (default: the study's test scenes, ``test_scenes`` in
``data/tfasr/tiling.json``, read from ``--dem-dir``, by default ``data/dem``) gives one
square crop of ``--window`` pixels about its centre (the whole scene when smaller), invalid
where :func:`npf.data.tiling.decode` says so (nodata, non-finite, outside -500..9,000 m);
a scene that is absent or whose crop is less than half valid is skipped and
recorded. For every void share and seed, :func:`npf.voids.make_voids` cuts blobs of
3-60 px from the valid terrain (weighted to steep slopes) and
:func:`npf.voids.compare` fills them with each method and scores them inside the
voids: RMSE and MAE (m), Gaussian NLL per pixel and 95 % coverage for the methods
with a std (ConvCNP, kriging), by blob size class, and seconds per megapixel of
crop (valid or not). The table pools all scenes and seeds of a share
(:func:`npf.voids.pool`); the JSON also holds every run.

Methods: ``convcnp`` (:func:`npf.voids.fill_convcnp`, the checkpoint loaded once,
outside the timing; several ``LABEL=PATH`` checkpoints give one ``convcnp-LABEL``
each), ``gdal`` (:func:`rasterio.fill.fillnodata`), ``cubic`` (Clough-Tocher from a
3-px band around each void) and ``kriging`` (ordinary kriging from 4 px around each
void; one spherical or exponential variogram per run, fitted to the pixel pairs
around each void). Pixels count as square, also in geographic CRSs; the JSON records
each crop's ground resolution. Every method runs on ``--threads`` threads (default 1,
as in ``prediction_cost.py``, whose ``pin_threads`` restarts the script with the
thread variables set), after one untimed warm-up run.

ConvCNP's std is scaled by the calibration stored beside its checkpoint for its centring
(:mod:`npf.std_calibration`), if any; ``--std-calibration both`` adds each ConvCNP method
once more without it (``...-uncalibrated``). ``--fit-std-calibration`` fits those
calibrations instead of comparing: on the ``--scenes`` given (training scenes only; the
test scenes are refused), every ConvCNP method fills the voids with its own std, and
the standardised errors by void width give each checkpoint and centring its
factors, written beside the checkpoint.

Writes ``benchmarks/results/void-filling-<date>.json`` unless ``--out`` says otherwise.
"""

from __future__ import annotations

import argparse
import datetime
import json
import os
import sys
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import replace
from functools import partial
from pathlib import Path
from typing import Any

import numpy as np
import rasterio
import xarray as xr
from prediction_cost import pin_threads  # sibling script: benchmarks/ is on sys.path
from rasterio.windows import Window
from rasterio.windows import transform as window_transform

from npf import REPO_ROOT, provenance
from npf.data import default_data_dir
from npf.data.dem import scenes_dir, tfasr_dir
from npf.data.tiling import decode, ground_pixel_size
from npf.raster import (
    CENTRINGS,
    DEFAULT_WINDOW,
    FILL_CENTRING,
    FILL_CHECKPOINT,
    TREND_PX,
    ExtrapolationWarning,
    Filler,
)
from npf.std_calibration import fit_std_calibration, write_calibration
from npf.study.void_filling import as_records, scores_table
from npf.training import write_json_atomic
from npf.voids import (
    Method,
    compare,
    fill_convcnp,
    fill_cubic,
    fill_gdal,
    fill_kriging,
    make_voids,
    pool,
    standardised_errors,
)

RESULTS = REPO_ROOT / "benchmarks" / "results"
TILING = tfasr_dir(default_data_dir()) / "tiling.json"
#: where ``python -m npf.data prepare tfasr`` keeps the whole scenes
DEM_DIR = scenes_dir(default_data_dir())
METHODS = ("convcnp", "gdal", "cubic", "kriging")
#: crops with a smaller share of valid pixels are skipped
MIN_VALID_SHARE = 0.5


def shown(path: Path) -> str:
    """``path`` relative to the repository, so that results carry no machine's paths."""
    return os.path.relpath(path.resolve(), REPO_ROOT)


def default_scenes() -> list[str]:
    """The study's test scenes."""
    return json.loads(TILING.read_text())["test_scenes"]


def read_crop(path: Path, side: int) -> tuple[np.ndarray, dict[str, Any]]:
    """The centred ``side`` x ``side`` crop of a scene (NaN where invalid) and its record."""
    with rasterio.open(path) as src:
        width, height = min(side, src.width), min(side, src.height)
        window = Window((src.width - width) // 2, (src.height - height) // 2, width, height)
        values, valid = decode(src.read(1, window=window, masked=True))
        affine = window_transform(window, src.transform)
        ground = ground_pixel_size(src.crs, [affine], np.array([height / 2]), np.array([width / 2]))
        record = {
            "path": shown(path),
            "crs": str(src.crs),
            "window_col_row_width_height": [window.col_off, window.row_off, width, height],
            "resolution_m": float(ground["resolution_m"][0]),
            "valid_share": float(valid.mean()),
            "elevation_range_m": [float(np.nanmin(values)), float(np.nanmax(values))]
            if valid.any()
            else None,
        }
    return values, record


def build_methods(
    names: Sequence[str],
    fillers: Mapping[str, Filler],
    window: int,
    cubic_bands: Sequence[int] = (3,),
    kriging_margins: Sequence[int] = (8,),
    centrings: Sequence[str] = ("local",),
    trend_px: Sequence[int] = (TREND_PX,),
    std_calibration: str = "on",
) -> dict[str, Method]:
    """The methods by name; several cubic bands, kriging margins, ConvCNP checkpoints,
    centrings or trend boxes of the ``filled`` centring give one method each, named
    ``cubic-<band>px`` / ``kriging-<margin>px`` (to tune them on training scenes) /
    ``convcnp[-<label>][-<centring>[<trend px>]][-uncalibrated]``, where ``fillers`` maps a
    checkpoint's label ("" when unlabelled) to its Filler; ``std_calibration`` is "on"
    (the calibration stored for the centring, if any), "off" or "both" (a method each)."""

    def variants(name: str, sizes: Sequence[int], fill: Callable) -> dict[str, Method]:
        if len(sizes) == 1:
            return {name: partial(fill, **{keyword[name]: sizes[0]})}
        return {f"{name}-{size}px": partial(fill, **{keyword[name]: size}) for size in sizes}

    def convcnp(filler: Filler, centring: str, trend: int, calibrated: bool) -> Method:
        centred = replace(filler, centring=centring, trend_px=trend, calibrate_std=calibrated)
        return lambda values, where: fill_convcnp(values, centred, where, window)

    calibrations = {"on": (True,), "off": (False,), "both": (True, False)}[std_calibration]

    keyword = {"cubic": "band", "kriging": "margin"}
    methods: dict[str, Method] = {}
    for name in names:
        if name == "convcnp":
            for tag, filler in fillers.items():
                for centring, trend in centring_variants(centrings, trend_px):
                    suffix = centring if len(centrings) > 1 else ""
                    if centring == "filled" and len(trend_px) > 1:
                        suffix = f"{suffix}{trend}"
                    for calibrated in calibrations:
                        method = convcnp_name(tag, suffix)
                        if len(calibrations) > 1 and not calibrated:
                            method = f"{method}-uncalibrated"
                        methods[method] = convcnp(filler, centring, trend, calibrated)
        elif name == "gdal":
            methods[name] = fill_gdal
        elif name == "cubic":
            methods |= variants(name, cubic_bands, fill_cubic)
        elif name == "kriging":
            methods |= variants(name, kriging_margins, fill_kriging)
    return methods


def centring_variants(centrings: Sequence[str], trend_px: Sequence[int]) -> list[tuple[str, int]]:
    """(centring, trend box) pairs: each trend box for ``filled``, one for the others."""
    return [
        (centring, trend)
        for centring in centrings
        for trend in (trend_px if centring == "filled" else trend_px[:1])
    ]


def fit_std_calibrations(
    crops: Mapping[str, np.ndarray],
    fillers: Mapping[str, Filler],
    args: argparse.Namespace,
) -> None:
    """Fit and store the std calibration of every checkpoint and centring on ``crops``
    (:mod:`npf.std_calibration`), from ConvCNP fills with the model's own std."""
    fitted_on = {
        "command": " ".join(["python", "benchmarks/void_filling.py", *sys.argv[1:]]),
        "environment": provenance.environment(args.device),
        "scenes": list(crops),
        "window": args.window,
        "shares": args.shares,
        "seeds": args.seeds,
    }
    for tag, filler in fillers.items():
        for centring, trend in centring_variants(args.centrings, args.trend_px):
            own = replace(filler, centring=centring, trend_px=trend, calibrate_std=False)
            errors, widths = [], []
            for name, values in crops.items():
                for share in args.shares:
                    for seed in args.seeds:
                        try:
                            voids = make_voids(values, share, seed)
                        except ValueError as problem:  # a small scene: too little room
                            print(f"skipping {name} share {share:g} seed {seed}: {problem}")
                            continue
                        holed = voids.apply(values)
                        fill = fill_convcnp(holed, own, voids.mask, args.convcnp_window)
                        error, width = standardised_errors(values, holed, fill, voids.mask)
                        errors.append(error)
                        widths.append(width)
            calibration = fit_std_calibration(
                np.concatenate(errors), np.concatenate(widths), fitted_on=fitted_on
            )
            path = write_calibration(own.path, own.centring_label, calibration)
            print(f"{convcnp_name(tag)} [{own.centring_label}] -> {shown(path)}")
            for width, factor, pixels in zip(
                calibration.widths_px, calibration.factors, calibration.pixels, strict=True
            ):
                print(f"  voids {width:5.1f} px wide: std x {factor:.3f} ({pixels} pixels)")


def convcnp_name(tag: str, centring: str = "") -> str:
    """``convcnp[-<tag>][-<centring>]``: a ConvCNP method's name, the empty parts left out."""
    return "-".join(part for part in ("convcnp", tag, centring) if part)


def parse_checkpoints(entries: Sequence[str]) -> dict[str, Path]:
    """``[LABEL=]PATH`` entries by label; one unlabelled entry gets the label ""."""
    checkpoints = {}
    for entry in entries:
        tag, _, path = entry.rpartition("=")
        if tag in checkpoints or (len(entries) > 1 and not tag):
            raise SystemExit(f"error: checkpoints need distinct labels, LABEL=PATH: {entry}")
        checkpoints[tag] = Path(path)
    return checkpoints


def checkpoint_record(path: Path, filler: Filler) -> dict[str, Any]:
    """What the JSON keeps of a checkpoint."""
    return {
        "path": shown(path),
        "dataset": filler.convcnp.dataset,
        "epoch": filler.convcnp.checkpoint.get("epoch"),
        "max_context": filler.convcnp.max_context,
        "hole_tasks": filler.convcnp.checkpoint.get("train_config", {}).get("hole_tasks", 0.0),
        "scaling": {
            "scale": filler.scaling.scale,
            "center_on_context": filler.scaling.center_on_context,
        },
        "std_calibrations": {
            label: calibration.to_json() for label, calibration in filler.calibrations.items()
        },
    }


def warm_up(methods: dict[str, Method]) -> None:
    """Run every method once, untimed, on a small smooth field, so that one-off costs
    (imports, oneDNN's first-call set-up: about 2 s for ConvCNP) stay out of the runs."""
    rows, cols = np.mgrid[:64, :64]
    field = 1000.0 + 50.0 * np.sin(rows / 9.0) + 40.0 * np.cos(cols / 7.0)
    compare(field, make_voids(field, 0.05, 0), methods)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--checkpoint",
        nargs="+",
        default=[str(FILL_CHECKPOINT)],
        help="single-band ConvCNP(s), [LABEL=]PATH (default: fill's, npf/checkpoints/dem-voids.pt)",
    )
    parser.add_argument("--dem-dir", type=Path, default=DEM_DIR, help="<scene>.tif GeoTIFFs")
    parser.add_argument("--scenes", nargs="+", default=None, help="default: tiling's test scenes")
    parser.add_argument("--window", type=int, default=512, help="side of the centred crop (px)")
    parser.add_argument("--shares", type=float, nargs="+", default=[0.05], help="void shares")
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--methods", nargs="+", choices=METHODS, default=list(METHODS))
    parser.add_argument("--convcnp-window", type=int, default=DEFAULT_WINDOW, help="npf.raster")
    parser.add_argument(
        "--cubic-bands", type=int, nargs="+", default=[3], help="px of data around each void"
    )
    parser.add_argument(
        "--kriging-margins", type=int, nargs="+", default=[4], help="px of data around each void"
    )
    parser.add_argument(
        "--centrings",
        nargs="+",
        choices=CENTRINGS,
        default=[FILL_CENTRING],
        help="how ConvCNP centres values (npf.raster; default: fill's, filled); several give one "
        "method each",
    )
    parser.add_argument(
        "--trend-px",
        type=int,
        nargs="+",
        default=[TREND_PX],
        help="boxes (px) smoothing the filled centring's surface; several give one method each",
    )
    parser.add_argument(
        "--std-calibration",
        choices=("on", "off", "both"),
        default="on",
        help="scale ConvCNP's std by the calibration stored beside its checkpoint (on), "
        "not (off) or both, as two methods",
    )
    parser.add_argument(
        "--fit-std-calibration",
        action="store_true",
        help="fit and store ConvCNP's std calibrations on --scenes (training scenes) "
        "instead of comparing",
    )
    parser.add_argument("--device", default="cpu", help="ConvCNP's device")
    parser.add_argument("--threads", type=int, default=1, help="threads of every method")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    args = parser.parse_args(argv)
    pin_threads(args.threads)

    checkpoints = parse_checkpoints(args.checkpoint) if "convcnp" in args.methods else {}
    try:
        fillers = {tag: Filler.load(path, args.device) for tag, path in checkpoints.items()}
    except (FileNotFoundError, ValueError) as error:
        raise SystemExit(f"error: {error}") from error
    methods = build_methods(
        args.methods,
        fillers,
        args.convcnp_window,
        args.cubic_bands,
        args.kriging_margins,
        args.centrings,
        args.trend_px,
        args.std_calibration,
    )
    if args.fit_std_calibration:
        if not fillers:
            raise SystemExit("error: --fit-std-calibration needs the convcnp method")
        if not args.scenes or set(args.scenes) & set(default_scenes()):
            raise SystemExit(
                "error: --fit-std-calibration needs --scenes, none of them a test scene "
                f"({', '.join(default_scenes())})"
            )
    scenes: dict[str, dict[str, Any]] = {}
    crops: dict[str, np.ndarray] = {}
    for name in args.scenes or default_scenes():
        path = args.dem_dir / f"{name}.tif"
        if not path.is_file():
            scenes[name] = {"path": shown(path), "skipped": "file not found"}
        else:
            crops[name], scenes[name] = read_crop(path, args.window)
            if scenes[name]["valid_share"] < MIN_VALID_SHARE:
                scenes[name]["skipped"] = f"crop less than {MIN_VALID_SHARE:.0%} valid"
                del crops[name]
        if "skipped" in scenes[name]:
            print(f"skipping {name}: {scenes[name]['skipped']} ({path})", file=sys.stderr)
    if not crops:
        raise SystemExit(f"no usable scene in {args.dem_dir}")
    warnings.simplefilter("ignore", ExtrapolationWarning)  # kept as notes, printed at the end
    if args.fit_std_calibration:
        fit_std_calibrations(crops, fillers, args)
        return

    warm_up(methods)
    load_before = os.getloadavg()
    runs, results = [], {share: [] for share in args.shares}
    for name, values in crops.items():
        for share in args.shares:
            for seed in args.seeds:
                voids = make_voids(values, share, seed)
                result = compare(values, voids, methods)
                results[share].append(result)
                runs.append(
                    {
                        "scene": name,
                        "share": share,
                        "seed": seed,
                        "void_share": voids.share,
                        "blob_diameters_px": voids.diameters.round(2).tolist(),
                        "notes": result.attrs["notes"],
                        **as_records(result),
                    }
                )
                all_rmse = result["rmse"].sel(size_class="all").to_series().round(1).to_dict()
                seconds = result["seconds"].to_series().round(2).to_dict()
                print(f"{name} share {share:g} seed {seed}: RMSE {all_rmse} m, seconds {seconds}")

    pooled = {}
    for share, stacked in results.items():
        merged = pool(xr.concat(stacked, dim="run", data_vars="all"))
        pooled[str(share)] = as_records(merged)
        print(f"\nvoid share {share:g}, {len(stacked)} runs ({', '.join(crops)}):\n")
        print(scores_table(merged))
    for note in sorted({note for run in runs for notes in run["notes"].values() for note in notes}):
        print(f"note: {note}")

    out = args.out or RESULTS / f"void-filling-{datetime.date.today().isoformat()}.json"
    out.parent.mkdir(parents=True, exist_ok=True)
    write_json_atomic(
        {
            "benchmark": "void_filling",
            "command": " ".join(["python", "benchmarks/void_filling.py", *sys.argv[1:]]),
            "environment": provenance.environment(args.device),
            "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
            "parameters": {
                "window": args.window,
                "shares": args.shares,
                "seeds": args.seeds,
                "methods": args.methods,
                "convcnp_window": args.convcnp_window,
                "cubic_bands_px": args.cubic_bands,
                "kriging_margins_px": args.kriging_margins,
                "centrings": args.centrings,
                "trend_px": args.trend_px,
                "std_calibration": args.std_calibration,
                "threads": args.threads,
                "min_valid_share": MIN_VALID_SHARE,
            },
            "checkpoints": {
                convcnp_name(tag): checkpoint_record(path, fillers[tag])
                for tag, path in checkpoints.items()
            },
            "scenes": scenes,
            "pooled_by_share": pooled,
            "runs": runs,
        },
        out,
    )
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
