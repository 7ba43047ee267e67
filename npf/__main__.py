"""Command line: fill raster voids or grid scattered points with a trained ConvCNP.

    python -m npf fill IN.tif -o OUT.tif
    python -m npf grid POINTS.gpkg -o OUT.tif --like REF.tif --column elevation
    python -m npf grid POINTS.csv -o OUT.tif \\
        --bounds XMIN YMIN XMAX YMAX --resolution R --crs EPSG:32633

Both write a 2-band float32 GeoTIFF: the prediction (observed pixels unchanged)
and its standard deviation (0 where observed); see :mod:`npf.raster` and
:mod:`npf.gridding`. Without ``--checkpoint`` they use the study's DEM model
shipped with the package (``npf/checkpoints/dem-voids.pt`` for ``fill``, tuned on
voids; ``npf/checkpoints/dem.pt`` for ``grid``).
"""

from __future__ import annotations

import argparse
import sys
import warnings
from pathlib import Path

from rasterio.errors import RasterioError

from npf.acceleration import (
    back_cpu_tensors_with_huge_pages,
    native_bf16,
    serve_cpu_tensors_from_heap,
)
from npf.gridding import Grid, grid_points, read_points
from npf.raster import (
    CENTRINGS,
    DEFAULT_CHECKPOINT,
    DEFAULT_WINDOW,
    FILL_CENTRING,
    FILL_CHECKPOINT,
    TREND_PX,
    ExtrapolationWarning,
    Filler,
    fill_raster,
)
from npf.training import PRECISIONS

#: ``--cpu-memory`` choices (see :mod:`npf.acceleration`)
CPU_MEMORY = ("huge-pages", "heap", "plain")


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m npf", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    fill = commands.add_parser("fill", help="predict every nodata pixel of a single-band GeoTIFF")
    fill.add_argument("input", type=Path, help="single-band GeoTIFF with voids")
    fill.add_argument(
        "--no-std-calibration",
        action="store_true",
        help="leave the model's std as it is (default: scaled by the calibration stored "
        "beside the checkpoint for its centring, <checkpoint>.std.json, if any)",
    )
    grid = commands.add_parser("grid", help="grid scattered points (CSV or vector file)")
    grid.add_argument(
        "points", type=Path, help="CSV with columns x, y, value, or a vector file of points (.gpkg)"
    )
    grid.add_argument("--column", default="value", help="the points' value column or field")
    grid.add_argument("--layer", help="layer of a multi-layer vector file (default: the first)")
    target = grid.add_mutually_exclusive_group(required=True)
    target.add_argument("--like", type=Path, help="take the grid of this raster")
    target.add_argument("--bounds", type=float, nargs=4, metavar=("XMIN", "YMIN", "XMAX", "YMAX"))
    grid.add_argument("--resolution", type=float, help="pixel size, with --bounds")
    grid.add_argument(
        "--crs", help="CRS of the grid, with --bounds (default: the points' own, if they have one)"
    )
    for command in (fill, grid):
        command.add_argument("-o", "--output", type=Path, required=True, help="GeoTIFF to write")
        command.add_argument(
            "--checkpoint",
            type=Path,
            default=FILL_CHECKPOINT if command is fill else DEFAULT_CHECKPOINT,
            help="best.pt of a run (default: the DEM model shipped with npf for the command: "
            "void-tuned for fill, npf/checkpoints/dem-voids.pt; the study's for grid, "
            "npf/checkpoints/dem.pt)",
        )
        command.add_argument(
            "--window", type=int, default=DEFAULT_WINDOW, help="px per window (default %(default)s)"
        )
        command.add_argument("--margin", type=int, help="px read around a window (default: auto)")
        command.add_argument("--device", default="cpu", help="cpu, cuda or auto")
        command.add_argument(
            "--precision",
            choices=("auto", *PRECISIONS),
            default="auto",
            help="auto: bf16 on CPUs that multiply bf16 natively (1.4x faster, fills within "
            "about 1 m of fp32's), else fp32",
        )
        command.add_argument(
            "--centring",
            choices=CENTRINGS,
            default=FILL_CENTRING if command is fill else "local",
            help="DEM models: centre each pixel on a smooth surface through the voids (filled: "
            "GDAL's fill averaged over --trend-px; the default of fill), on the context mean of "
            "a training tile about it (local; the default of grid) or each window on its own "
            "(window)",
        )
        command.add_argument(
            "--trend-px",
            type=int,
            default=TREND_PX,
            help="box (px) that smooths the filled centring's surface (default %(default)s)",
        )
        command.add_argument(
            "--compile", action="store_true", help="torch.compile the model (pays on large rasters)"
        )
        command.add_argument(
            "--cpu-memory",
            choices=CPU_MEMORY,
            default="huge-pages",
            help="how large CPU tensors get their memory: transparent huge pages (default; "
            "1.7x faster than plain 4 KiB pages at 512-px windows), glibc's heap (about 10 %% "
            "faster again, but over 1 GiB more peak memory) or plain",
        )
        command.add_argument("--quiet", action="store_true", help="no progress bar")
    args = parser.parse_args(argv)
    if args.command == "grid" and args.bounds is not None and args.resolution is None:
        parser.error("--bounds needs --resolution")
    if args.command == "grid" and args.like is not None and (args.resolution or args.crs):
        parser.error("--resolution and --crs go with --bounds; --like takes the reference's grid")
    return args


def run(args: argparse.Namespace) -> list[str]:
    precision = args.precision
    if precision == "auto":
        precision = "bf16" if args.device == "cpu" and native_bf16() else "fp32"
    if args.device == "cpu":  # this process is ours: process-wide memory settings are fine
        if args.cpu_memory == "huge-pages":
            back_cpu_tensors_with_huge_pages()
        elif args.cpu_memory == "heap":
            serve_cpu_tensors_from_heap()
    filler = Filler.load(
        args.checkpoint,
        args.device,
        precision,
        args.compile,
        args.centring,
        args.trend_px,
        calibrate_std=args.command == "fill" and not args.no_std_calibration,
    )
    options = {"window": args.window, "margin": args.margin, "progress": not args.quiet}
    if args.command == "fill":
        return fill_raster(args.input, args.output, filler, **options)
    points = read_points(args.points, args.column, args.layer)
    grid = (
        Grid.like(args.like)
        if args.like is not None
        else Grid.from_bounds(tuple(args.bounds), args.resolution, args.crs or points.crs)
    )
    return grid_points(points, args.output, grid, filler, **options)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ExtrapolationWarning)
            found = run(args)
    except (OSError, ValueError, RasterioError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    for message in found:
        print(f"warning: {message}", file=sys.stderr)
    print(f"wrote {args.output}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
