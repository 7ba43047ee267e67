"""``tfasr``: DEM tiles in the TfaSR layout, elevation in metres.

Layout (the one of the TfaSR data on Figshare, doi 10.6084/m9.figshare.19597201,
and the one ``python -m npf.data prepare tfasr`` writes)::

    <data_dir>/tfasr/train/**/*.tif   single-band GeoTIFF tiles, all of one size
    <data_dir>/tfasr/test/**/*.tif    (64 x 64), each keeping its georeference
    <data_dir>/tfasr/tiles.npz        optional: the same tiles decoded (``export``)
    <data_dir>/tfasr/tiling.json      written by ``prepare``: rules, scenes, counts

The GeoTIFFs are read with rasterio (imported only then); when ``tiles.npz``
exists it is read instead, with numpy alone, so machines without rasterio can
train. Nodata and non-finite pixels are invalid: never context, never target.

Our own set is cut from 19 real DEM scenes: ``prepare tfasr --source <folder>``
copies them from a folder, ``--download`` fetches them from their public sources
(``npf.data.dem_sources``); either way they are kept whole in ``<data_dir>/dem``
(:func:`scenes_dir`), where the void-filling benchmarks read them.

Scaling: ``ValueScaling(scale, center_on_context=True)`` with ``scale`` the median,
over the *training* tiles, of the standard deviation of elevation within a tile;
the model sees (elevation - mean of the context values) / scale.
"""

from __future__ import annotations

import json
import os
import shutil
import tempfile
import zipfile
import zlib
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch

from npf.data.base import CorruptFileError, DatasetNotFoundError, GridDataset, holdout_split
from npf.data.dem_sources import download_scenes
from npf.scaling import ValueScaling

if TYPE_CHECKING:
    from npf.data.tiling import TileRules

DIRNAME = "tfasr"
#: folder of the whole scenes the tiles are cut from, beside ``DIRNAME``
SCENES_DIRNAME = "dem"
EXPORT_FILE = "tiles.npz"
REPORT_FILE = "tiling.json"
SPLITS = ("train", "test")
DOI = "10.6084/m9.figshare.19597201"

#: Test scenes of the DEM set built from ../shared/data/dem: unseen terrain of several
#: kinds and resolutions (Andes at 3", Grand Canyon at ~62 m, a St. Elias glacier at
#: 20 m, two Himalayan valleys at ~90 m, one masked to its basin). None lies within
#: 50 km of a training scene.
TEST_SCENES = (
    "srtm3_S33W071",
    "grandcanyon",
    "dem_SouthGlacier",
    "dem_chhota_shigri",
    "Mandakini",
)

#: per-tile metadata: ``path`` relative to ``<data_dir>/tfasr``, source window
#: ``row``/``col`` (-1 when unknown), ground pixel size and tile centre
META_KEYS = (
    "scene",
    "path",
    "row",
    "col",
    "pixel_width_m",
    "pixel_height_m",
    "resolution_m",
    "lon",
    "lat",
)

Tiles = tuple[np.ndarray, dict[str, np.ndarray]]


def tfasr_dir(data_dir: Path) -> Path:
    return Path(data_dir) / DIRNAME


def scenes_dir(data_dir: Path) -> Path:
    """Where ``prepare tfasr`` keeps the whole scenes (GeoTIFFs) it tiled."""
    return Path(data_dir) / SCENES_DIRNAME


def prepare_hint() -> str:
    return (
        "prepare it with: python -m npf.data prepare tfasr --source <folder of GeoTIFF scenes> "
        f"or --download (or put the TfaSR tiles, doi {DOI}, there)"
    )


def tile_paths(root: Path, split: str) -> list[Path]:
    """GeoTIFF tiles of ``split`` under ``root``, sorted."""
    folder = root / split
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.rglob("*") if p.suffix.lower() in (".tif", ".tiff"))


def read_tiles(root: Path, split: str) -> Tiles:
    """Decode the GeoTIFF tiles of ``split``: float32 (N, H, W) metres, NaN where invalid."""
    import rasterio
    from rasterio.errors import RasterioError
    from tqdm.auto import tqdm

    from npf.data.tiling import crs_problem, decode, ground_pixel_size, implausible_pixels

    paths = tile_paths(root, split)
    if not paths:
        raise DatasetNotFoundError(f"no GeoTIFF tiles in {root / split}; {prepare_hint()}")
    elevation, crs_of, transforms = [], [], []
    meta: dict[str, list] = {key: [] for key in ("scene", "path", "row", "col")}
    for path in tqdm(paths, desc=f"reading {split} tiles", unit="tile", leave=False):
        try:
            with rasterio.open(path) as tile:
                band = tile.read(1, masked=True)
                tags = tile.tags()
                crs_of.append(tile.crs)
                transforms.append(tile.transform)
        except (RasterioError, OSError) as error:
            raise CorruptFileError(
                f"{path}: cannot read GeoTIFF tile ({error}); {prepare_hint()}"
            ) from error
        if problem := crs_problem(crs_of[-1]):
            raise CorruptFileError(f"{path}: {problem}; {prepare_hint()}")
        if elevation and band.shape != elevation[0].shape:
            raise CorruptFileError(
                f"{path}: tile is {band.shape}, the first tile {paths[0].name} is "
                f"{elevation[0].shape}; all tiles must share one size"
            )
        elevation.append(decode(band)[0].astype(np.float32))
        meta["scene"].append(tags.get("NPF_SCENE", path.stem))
        meta["path"].append(path.relative_to(root).as_posix())
        meta["row"].append(int(tags.get("NPF_ROW", -1)))
        meta["col"].append(int(tags.get("NPF_COL", -1)))
    height, width = elevation[0].shape
    ground = {
        key: np.empty(len(paths)) for key in META_KEYS if key not in ("scene", "path", "row", "col")
    }
    for crs in {c.to_wkt() for c in crs_of}:
        rows = np.flatnonzero([c.to_wkt() == crs for c in crs_of])
        sizes = ground_pixel_size(
            crs_of[rows[0]],
            [transforms[i] for i in rows],
            np.full(len(rows), height // 2),
            np.full(len(rows), width // 2),
        )
        if (bad := implausible_pixels(sizes)).any():
            first = rows[np.argmax(bad)]
            raise CorruptFileError(
                f"{paths[first]}: pixels of {sizes['pixel_width_m'][bad][0]:.3g} x "
                f"{sizes['pixel_height_m'][bad][0]:.3g} m on the ground: its CRS contradicts its "
                f"transform; {prepare_hint()}"
            )
        for key, value in sizes.items():
            ground[key][rows] = value
    arrays = {
        "scene": np.array(meta["scene"]),
        "path": np.array(meta["path"]),
        "row": np.array(meta["row"], dtype=np.int64),
        "col": np.array(meta["col"], dtype=np.int64),
        **ground,
    }
    return np.stack(elevation), arrays


def export_tiles(root: Path) -> Path:
    """Write ``root/tiles.npz``: both splits decoded, elevation rounded to int16 metres.

    int16 is exact for the integer SRTM scenes and within 0.5 m for float scenes
    (valid elevations lie in ``tiling.ELEVATION_RANGE_M``); invalid pixels hold 0
    and are false in ``<split>_valid``. Written through a temporary file, so an
    interrupted export leaves no broken file.
    """
    arrays: dict[str, np.ndarray] = {}
    rounding = 0.0
    for split in SPLITS:
        elevation, meta = read_tiles(root, split)
        valid = np.isfinite(elevation)
        values = np.where(valid, elevation, 0.0)
        rounded = np.rint(values)
        rounding = max(rounding, float(np.abs(rounded - values).max(initial=0)))
        arrays[f"{split}_elevation"] = rounded.astype(np.int16)
        arrays[f"{split}_valid"] = valid
        arrays.update({f"{split}_{key}": value for key, value in meta.items()})
    arrays["max_rounding_error_m"] = np.array(rounding)
    target = root / EXPORT_FILE
    partial = root / f".{EXPORT_FILE}.partial"
    with open(partial, "wb") as handle:
        np.savez_compressed(handle, **arrays)
    os.replace(partial, target)
    return target


def read_export(path: Path) -> dict[str, Tiles]:
    """The splits stored by :func:`export_tiles` (numpy only)."""
    try:
        with np.load(path, allow_pickle=False) as stored:
            arrays = {key: stored[key] for key in stored.files}
    except (OSError, ValueError, EOFError, zipfile.BadZipFile, zlib.error) as error:
        raise CorruptFileError(
            f"{path}: cannot read exported tiles ({error}); rewrite it with: python -m npf.data "
            "export tfasr (or prepare tfasr again)"
        ) from error
    splits = {}
    for split in SPLITS:
        needed = [f"{split}_elevation", f"{split}_valid"] + [f"{split}_{k}" for k in META_KEYS]
        if missing := [key for key in needed if key not in arrays]:
            raise CorruptFileError(
                f"{path}: missing arrays {', '.join(missing)}; rewrite it with: "
                "python -m npf.data export tfasr"
            )
        valid = arrays[f"{split}_valid"]
        elevation = np.where(valid, arrays[f"{split}_elevation"].astype(np.float32), np.nan)
        splits[split] = (elevation, {key: arrays[f"{split}_{key}"] for key in META_KEYS})
    return splits


def read_splits(root: Path) -> tuple[dict[str, Tiles], str]:
    """Tiles of both splits, from ``tiles.npz`` when present, else from the GeoTIFFs."""
    export = root / EXPORT_FILE
    if export.exists():
        splits = read_export(export)
        on_disk = {p.relative_to(root).as_posix() for s in SPLITS for p in tile_paths(root, s)}
        exported = {str(p) for s in SPLITS for p in splits[s][1]["path"]}
        if on_disk and on_disk != exported:
            raise CorruptFileError(
                f"{export} does not match the GeoTIFF tiles beside it; rewrite it with: "
                "python -m npf.data export tfasr"
            )
        return splits, str(export)
    if not tile_paths(root, "train"):
        raise DatasetNotFoundError(f"no TfaSR tiles in {root / 'train'}; {prepare_hint()}")
    return {split: read_tiles(root, split) for split in SPLITS}, f"GeoTIFF tiles in {root}"


def within_tile_scale(elevation: np.ndarray) -> float:
    """Median over tiles of the standard deviation of elevation within a tile (m)."""
    return float(np.median(np.nanstd(elevation, axis=(1, 2))))


def to_dataset(tiles: Tiles, scaling: ValueScaling) -> GridDataset:
    """Tiles as a data set in metres, each with its scene, position and ground pixel size."""
    elevation, labels = tiles
    values = torch.from_numpy(np.ascontiguousarray(elevation[:, None], dtype=np.float32))
    return GridDataset(
        name=DIRNAME,
        values=values,
        valid=torch.isfinite(values),
        scaling=scaling,
        units="m",
        labels={key: value for key, value in labels.items() if key != "resolution_m"},
        pixel_size_m=labels["resolution_m"],
    )


#: side (in scene pixels) of the blocks that the validation hold-out draws whole
HOLDOUT_BLOCK = 256


def holdout(pool: GridDataset, fraction: float, seed: int) -> tuple[GridDataset, GridDataset]:
    """Hold out validation tiles by spatial block, with a buffer.

    Training tiles overlap (stride 32 < 64), so a random hold-out would validate
    on pixels the model trained on. Instead whole ``HOLDOUT_BLOCK``-pixel blocks
    of each scene are drawn (seeded) until ``fraction`` of the tiles is held
    out, and every training tile that overlaps a validation tile is dropped.
    Tiles of unknown position (``row`` = -1, e.g. the original TfaSR tiles) fall
    back to a seeded random hold-out.
    """
    rows, cols = pool.labels["row"], pool.labels["col"]
    if (rows < 0).any():
        return holdout_split(pool, fraction, seed)
    scenes = pool.labels["scene"]
    blocks = np.char.add(
        np.char.add(scenes.astype(str), ":"),
        np.char.add((rows // HOLDOUT_BLOCK).astype(str), (cols // HOLDOUT_BLOCK).astype(str)),
    )
    unique = np.unique(blocks)
    order = np.random.default_rng(seed).permutation(len(unique))
    counts = np.array([np.sum(blocks == unique[i]) for i in order])
    n_blocks = int(np.searchsorted(np.cumsum(counts), fraction * len(pool)) + 1)
    is_val = np.isin(blocks, unique[order[:n_blocks]])
    height, width = pool.values.shape[-2:]
    overlaps = np.zeros(len(pool), dtype=bool)
    for v in np.flatnonzero(is_val):
        overlaps |= (
            (scenes == scenes[v])
            & (np.abs(rows - rows[v]) < height)
            & (np.abs(cols - cols[v]) < width)
        )
    train = np.flatnonzero(~overlaps)
    return pool.subset(train), pool.subset(np.flatnonzero(is_val))


def load(data_dir: Path, seed: int = 0) -> tuple[GridDataset, GridDataset]:
    """Training pool (``train/``) and test set (``test/``); ``seed`` is unused (fixed split)."""
    del seed
    splits, _ = read_splits(tfasr_dir(data_dir))
    scaling = ValueScaling(within_tile_scale(splits["train"][0]), center_on_context=True)
    return tuple(to_dataset(splits[split], scaling) for split in SPLITS)  # type: ignore[return-value]


def prepare(
    source: Path | None,
    data_dir: Path,
    download: bool = False,
    test_scenes: Sequence[str] = TEST_SCENES,
    train_stride: int = 32,
    rules: TileRules | None = None,
    margin_km: float = 50.0,
) -> str:
    """Lay the scenes out in ``<data_dir>/dem``, tile them into ``<data_dir>/tfasr`` and
    export the tiles.

    The scenes are the GeoTIFFs directly in ``source``, copied, or with ``download``
    the 19 of ``dem_sources.SCENES``, fetched and SHA256-checked. Either way they are
    gathered in a temporary folder inside ``data_dir`` and replace ``<data_dir>/dem``
    only when complete; the tiles likewise replace ``<data_dir>/tfasr`` only when
    complete. A ``tfasr`` folder that ``prepare`` did not make (e.g. the real TfaSR
    tiles) is never replaced.
    """
    from npf.data.tiling import find_scenes

    if download == (source is not None):
        raise ValueError("tfasr: give either --source <folder of GeoTIFF scenes> or --download")
    data_dir = Path(data_dir)
    check_replaceable(tfasr_dir(data_dir))
    scenes = scenes_dir(data_dir)
    if source is not None and Path(source).resolve() == scenes.resolve():
        raise ValueError(f"{source} is where prepare keeps the scenes: give another folder")
    if source is not None and (not Path(source).is_dir() or not find_scenes(Path(source))):
        raise DatasetNotFoundError(f"no GeoTIFF scenes (*.tif) in {source}")
    data_dir.mkdir(parents=True, exist_ok=True)
    notes: list[str] = []
    with tempfile.TemporaryDirectory(dir=data_dir, prefix=".scenes-") as scratch:
        gathered = Path(scratch) / SCENES_DIRNAME
        gathered.mkdir()
        if source is None:
            notes = download_scenes(gathered)
        else:
            for scene in find_scenes(Path(source)):
                shutil.copy2(scene, gathered / scene.name)
        text = tile_source(gathered, scenes, data_dir, test_scenes, train_stride, rules, margin_km)
    return "\n".join([*notes, text])


def check_replaceable(root: Path) -> None:
    """Refuse to replace a ``tfasr`` folder that ``prepare`` did not make."""
    if root.exists() and not (root / REPORT_FILE).exists():
        raise FileExistsError(
            f"{root} holds tiles that prepare did not make; move it away first "
            "(or keep it and run: python -m npf.data export tfasr)"
        )


def tile_source(
    gathered: Path,
    scenes: Path,
    data_dir: Path,
    test_scenes: Sequence[str],
    train_stride: int,
    rules: TileRules | None,
    margin_km: float,
) -> str:
    """Tile the scenes ``gathered`` in a temporary folder; when that succeeds, move them
    to ``scenes`` and the tiles to ``<data_dir>/tfasr``, each replacing the old."""
    from npf.data.tiling import TileRules, find_scenes, tile_scenes

    rules = rules or TileRules()
    root = tfasr_dir(data_dir)
    staging = data_dir / f"{DIRNAME}.partial"
    shutil.rmtree(staging, ignore_errors=True)
    reports = tile_scenes(
        find_scenes(gathered), staging, test_scenes, train_stride, rules, margin_km
    )
    counts = {split: len(tile_paths(staging, split)) for split in SPLITS}
    if not all(counts.values()):
        shutil.rmtree(staging, ignore_errors=True)
        raise ValueError(f"tiling gave {counts}: need tiles in both train and test")
    record = {
        "source": f"{SCENES_DIRNAME}/ (in the data directory)",
        "rules": rules.__dict__,
        "train_stride": train_stride,
        "test_stride": rules.size,
        "margin_km": margin_km,
        "test_scenes": list(test_scenes),
        "tiles": counts,
        "scenes": [report.as_dict() for report in reports],
    }
    (staging / REPORT_FILE).write_text(json.dumps(record, indent=1))
    export_tiles(staging)
    swap_in(gathered, scenes)
    swap_in(staging, root)
    return summary(record, root)


def swap_in(new: Path, old: Path) -> None:
    """Move folder ``new`` to ``old``'s place, removing ``old`` only once ``new`` is there."""
    if old.exists():
        retired = old.with_name(f"{old.name}.old")
        shutil.rmtree(retired, ignore_errors=True)
        old.rename(retired)
        new.rename(old)
        shutil.rmtree(retired)
    else:
        new.rename(old)


def summary(record: dict, root: Path) -> str:
    """Per-scene table of what tiling kept and skipped."""
    lines = [f"{'scene':24} {'split':5} {'stride':>6} {'windows':>7} {'kept':>5}  skipped / error"]
    for scene in record["scenes"]:
        skipped = ", ".join(f"{n} {reason}" for reason, n in scene["skipped"].items())
        lines.append(
            f"{scene['scene']:24} {scene['split']:5} {scene['stride']:>6} "
            f"{scene['windows']:>7} {scene['kept']:>5}  {scene['error'] or skipped}"
        )
    lines.append(f"tiles: {record['tiles']} in {root} (and {EXPORT_FILE})")
    return "\n".join(lines)
