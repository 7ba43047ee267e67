"""``eurosat``: one class of EuroSAT RGB (Helber et al. 2019), 3 x 64 x 64 Sentinel-2 patches.

Layout (that of the official ``EuroSAT.zip``)::

    <data_dir>/eurosat/2750/<Class>/<Class>_<n>.jpg   (also .jpeg, any letter case)

Values are RGB intensities in [0, 1]. The report's class is ``Industrial``;
``eurosat_class`` picks another. EuroSAT has no official split and Industrial
holds only 2,500 images, so the report's 2,500 train + 2,000 test cannot be
disjoint: here ``n_test`` images (500) drawn by a seeded permutation
(``split_seed``) form the test set and the other 2,000 the training pool.
"""

from __future__ import annotations

import re
import shutil
import tempfile
from pathlib import Path

import numpy as np
import torch
from PIL import Image

from npf.data.base import CorruptFileError, DatasetNotFoundError, GridDataset

DIRNAME = "eurosat"
ROOT = "2750"
CLASSES = (
    "AnnualCrop",
    "Forest",
    "HerbaceousVegetation",
    "Highway",
    "Industrial",
    "Pasture",
    "PermanentCrop",
    "Residential",
    "River",
    "SeaLake",
)
DEFAULT_CLASS = "Industrial"
IMAGE_SHAPE = (64, 64)
PREPARE_HINT = (
    "prepare it with: python -m npf.data prepare eurosat --source <folder holding 2750/ or the "
    "class folders> (or --download)"
)


def class_dir(data_dir: Path, eurosat_class: str) -> Path:
    return Path(data_dir) / DIRNAME / ROOT / eurosat_class


def scan_class(folder: Path, eurosat_class: str) -> tuple[list[Path], dict[str, str]]:
    """``<Class>_<n>.jpg`` (or ``.jpeg``, any case) files in ``folder`` in the order of ``n``,
    and the name of every other file with why it was skipped."""
    pattern = re.compile(rf"{re.escape(eurosat_class)}_(\d+)\.(?i:jpe?g)")
    numbered: dict[int, Path] = {}
    skipped = {}
    for path in sorted(folder.iterdir()):
        if not (match := pattern.fullmatch(path.name)) or not path.is_file():
            skipped[path.name] = f"not a file named {eurosat_class}_<n>.jpg"
        elif (n := int(match.group(1))) in numbered:
            skipped[path.name] = f"number {n} already taken by {numbered[n].name}"
        else:
            numbered[n] = path
    return [numbered[n] for n in sorted(numbered)], skipped


def describe_skipped(skipped: dict[str, str], limit: int = 5) -> str:
    """One line naming the first ``limit`` skipped files and why."""
    listed = "; ".join(f"{name} ({reason})" for name, reason in list(skipped.items())[:limit])
    more = f"; and {len(skipped) - limit} more" if len(skipped) > limit else ""
    return f"{len(skipped)} file{'s' * (len(skipped) != 1)} skipped: {listed}{more}"


def read_jpg(path: Path) -> np.ndarray:
    """One EuroSAT patch as uint8 (64, 64, 3)."""
    try:
        with Image.open(path) as image:
            image.load()
            if image.format != "JPEG" or image.mode != "RGB" or image.size != IMAGE_SHAPE:
                raise CorruptFileError(
                    f"{path}: expected a 64x64 RGB JPEG, got {image.format} {image.mode} "
                    f"{image.size[0]}x{image.size[1]}"
                )
            return np.asarray(image)
    except OSError as error:
        raise CorruptFileError(f"{path}: cannot decode JPEG ({error})") from error


def read_class(data_dir: Path, eurosat_class: str) -> tuple[np.ndarray, list[Path]]:
    """All images of a class as uint8 (N, 64, 64, 3), and their paths."""
    if eurosat_class not in CLASSES:
        raise ValueError(f"unknown EuroSAT class {eurosat_class!r}; valid: {', '.join(CLASSES)}")
    folder = class_dir(data_dir, eurosat_class)
    paths = scan_class(folder, eurosat_class)[0] if folder.is_dir() else []
    if not paths:
        raise DatasetNotFoundError(f"no {eurosat_class}_<n>.jpg in {folder}; {PREPARE_HINT}")
    try:
        return np.stack([read_jpg(path) for path in paths]), paths
    except CorruptFileError as error:
        raise CorruptFileError(f"{error}; {PREPARE_HINT}") from error


def pick_test_indices(n: int, n_test: int, split_seed: int) -> np.ndarray:
    """Sorted indices of the test images: the first ``n_test`` of a seeded permutation."""
    if not 0 < n_test < n:
        raise ValueError(f"n_test must lie in (0, {n}), got {n_test}")
    return np.sort(np.random.default_rng(split_seed).permutation(n)[:n_test])


def load(
    data_dir: Path,
    seed: int = 0,
    eurosat_class: str = DEFAULT_CLASS,
    n_test: int = 500,
    split_seed: int = 0,
) -> tuple[GridDataset, GridDataset]:
    """Training pool and test set of one class; the split depends on ``split_seed`` only."""
    del seed
    images, paths = read_class(data_dir, eurosat_class)
    values = torch.from_numpy(images).permute(0, 3, 1, 2).float().div_(255.0)
    dataset = GridDataset(
        name=DIRNAME,
        values=values.contiguous(),
        valid=torch.ones(len(values), 1, *IMAGE_SHAPE, dtype=torch.bool),
        units="intensity",
        labels={"path": np.array([p.relative_to(Path(data_dir)).as_posix() for p in paths])},
    )
    test = pick_test_indices(len(paths), n_test, split_seed)
    pool = np.setdiff1d(np.arange(len(paths)), test)
    return dataset.subset(pool), dataset.subset(test)


def find_class_folders(source: Path) -> list[Path]:
    """EuroSAT class folders in ``source`` or ``source/2750``."""
    for base in (source / ROOT, source):
        if folders := [base / name for name in CLASSES if (base / name).is_dir()]:
            return folders
    return []


def check_class(folder: Path, target: Path, force: bool) -> tuple[list[Path], str]:
    """The images of one source class folder, each decoded once, and a note on skipped files.

    Raises when the folder holds no image, or fewer than ``target`` already does
    (unless ``force``).
    """
    paths, skipped = scan_class(folder, folder.name)
    note = f"; {describe_skipped(skipped)}" if skipped else ""
    if not paths:
        raise DatasetNotFoundError(f"no {folder.name}_<n>.jpg images in {folder}{note}")
    held = len(scan_class(target, folder.name)[0]) if target.is_dir() else 0
    if len(paths) < held and not force:
        raise ValueError(
            f"{folder} holds {len(paths)} images, fewer than the {held} already prepared in "
            f"{target}{note}; pass --force (force=True) to replace them"
        )
    for path in paths:
        read_jpg(path)
    return paths, note


def prepare(
    source: Path | None, data_dir: Path, download: bool = False, force: bool = False
) -> str:
    """Copy every class folder found in ``source`` (or downloaded) to ``<data_dir>/eurosat/2750``.

    Every folder is checked before any is copied: each JPEG is decoded (a corrupt
    file stops it with its name), an empty folder is an error, and a prepared
    class is never replaced by fewer images unless ``force``. A class is copied
    to a temporary folder and renamed when complete.
    """
    data_dir = Path(data_dir)
    if download:
        from torchvision.datasets import EuroSAT

        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download-") as scratch:
            EuroSAT(scratch, download=True)
            return prepare(Path(scratch) / "eurosat", data_dir, force=force)
    if source is None:
        raise ValueError("eurosat: give --source <folder> or --download")
    folders = find_class_folders(Path(source))
    if not folders:
        raise DatasetNotFoundError(
            f"no EuroSAT class folder ({', '.join(CLASSES)}) in {source} or {Path(source) / ROOT}"
        )
    checked = [check_class(folder, class_dir(data_dir, folder.name), force) for folder in folders]
    lines = []
    for folder, (paths, note) in zip(folders, checked, strict=True):
        target = class_dir(data_dir, folder.name)
        partial = target.with_name(f".{folder.name}.partial")
        shutil.rmtree(partial, ignore_errors=True)
        partial.mkdir(parents=True)
        for path in paths:
            shutil.copyfile(path, partial / path.name)
        shutil.rmtree(target, ignore_errors=True)
        partial.rename(target)
        lines.append(f"eurosat: {len(paths)} {folder.name} images (all decoded) in {target}{note}")
    return "\n".join(lines)
