"""Command line: lay data sets out in the data directory.

    python -m npf.data prepare fashionmnist --source ../shared/data/fashionmnist
    python -m npf.data prepare eurosat --source ../shared/data/eurosat
    python -m npf.data prepare tfasr --source ../shared/data/dem
    python -m npf.data prepare fashionmnist --download      # needs internet
    python -m npf.data prepare tfasr --download             # 19 DEM scenes, ~30 MB
    python -m npf.data export tfasr                         # GeoTIFF tiles -> tiles.npz

``--data-dir`` defaults to ``$NPF_DATA_DIR`` or the repository's ``data/``.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from pathlib import Path

from npf.data import DATASETS, check_name, default_data_dir


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m npf.data", description=__doc__.split("\n")[0])
    commands = parser.add_subparsers(dest="command", required=True)
    prepare = commands.add_parser("prepare", help="lay a data set out from a local copy")
    prepare.add_argument("name", help=f"one of: {', '.join(DATASETS)}")
    prepare.add_argument("--source", type=Path, help="folder holding the original files")
    prepare.add_argument(
        "--download",
        action="store_true",
        help="fetch from the public sources (fashionmnist, eurosat: torchvision; tfasr)",
    )
    prepare.add_argument("--data-dir", type=Path, help="default: $NPF_DATA_DIR or repo data/")
    prepare.add_argument(
        "--force", action="store_true", help="eurosat: replace a class with fewer images"
    )
    tiling = prepare.add_argument_group("tfasr tiling")
    tiling.add_argument("--test-scenes", help="comma-separated scene names (file stems)")
    tiling.add_argument("--train-stride", type=int, default=32)
    tiling.add_argument("--tile-size", type=int, default=64)
    tiling.add_argument("--max-nodata", type=float, default=0.05, help="largest nodata share")
    tiling.add_argument("--max-sea", type=float, default=0.5, help="largest share at <= 0 m")
    tiling.add_argument(
        "--margin-km", type=float, default=50.0, help="scenes this close share a split"
    )
    export = commands.add_parser("export", help="tfasr tiles -> tiles.npz")
    export.add_argument("name", choices=["tfasr"])
    export.add_argument("--data-dir", type=Path)
    return parser.parse_args(argv)


def prepare(args: argparse.Namespace, data_dir: Path) -> str:
    check_name(args.name)
    module = importlib.import_module(DATASETS[args.name])
    if not hasattr(module, "prepare"):
        return f"{args.name}: nothing to prepare (generated on the fly)"
    if args.name == "eurosat":
        return module.prepare(args.source, data_dir, download=args.download, force=args.force)
    if args.name != "tfasr":
        return module.prepare(args.source, data_dir, download=args.download)
    from npf.data.tiling import TileRules

    options = {}
    if args.test_scenes:
        options["test_scenes"] = [name.strip() for name in args.test_scenes.split(",")]
    rules = TileRules(args.tile_size, args.max_nodata, args.max_sea)
    return module.prepare(
        args.source,
        data_dir,
        download=args.download,
        train_stride=args.train_stride,
        rules=rules,
        margin_km=args.margin_km,
        **options,
    )


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = args.data_dir or default_data_dir()
    try:
        if args.command == "prepare":
            print(prepare(args, data_dir))
        else:
            from npf.data.dem import export_tiles, tfasr_dir

            print(f"wrote {export_tiles(tfasr_dir(data_dir))}")
    except (OSError, ValueError) as error:
        print(f"error: {error}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
