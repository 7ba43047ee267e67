"""``fashionmnist``: Fashion-MNIST (Xiao et al. 2017) read from its original IDX files.

Layout: ``<data_dir>/fashionmnist/{train,t10k}-{images-idx3,labels-idx1}-ubyte.gz``.
The 28 x 28 grey images are resized to 32 x 32 (bilinear, antialiased), as the
report and the Neural Process Family do, and scaled to [0, 1]. 60,000 training
and 10,000 test images (the official split).

The IDX parser is written here (a few lines of numpy) so that every header field
is checked and a truncated or foreign file fails with its name. A file of the
official shape is taken to be the official file: its decoded bytes must match
the official ones (MD5 in ``CONTENT``, about 0.1 s for all four), so changed
pixels or labels never load silently.
"""

from __future__ import annotations

import gzip
import hashlib
import shutil
import tempfile
import zlib
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from npf.data.base import CorruptFileError, DatasetNotFoundError, GridDataset

DIRNAME = "fashionmnist"
IMAGE_SIZE = 32

#: file of each part, and its MD5 as published by Zalando Research
FILES = {
    "train_images": ("train-images-idx3-ubyte.gz", "8d4fb7e6c68d591d4c3dfef9ec88bf0d"),
    "train_labels": ("train-labels-idx1-ubyte.gz", "25c81989df183df01b3e8a0aad5dffbe"),
    "test_images": ("t10k-images-idx3-ubyte.gz", "bef4ecab320f06d8554ea6380940ec79"),
    "test_labels": ("t10k-labels-idx1-ubyte.gz", "bb300cfdad3c16e7a12a480ee83cd310"),
}
#: official shape of each part, and the MD5 of its decoded data (the bytes after the IDX header)
CONTENT = {
    "train_images": ((60_000, 28, 28), "f209073e486d5113ebe2cc431d4df862"),
    "train_labels": ((60_000,), "3236f6424fc25388b2834cb19942cf7e"),
    "test_images": ((10_000, 28, 28), "b7656a891b218fc13e45205c48a92cae"),
    "test_labels": ((10_000,), "8dea97a4e78c1bd1b5a6e8efbb870b6e"),
}
CLASS_NAMES = (
    "T-shirt/top",
    "Trouser",
    "Pullover",
    "Dress",
    "Coat",
    "Sandal",
    "Shirt",
    "Sneaker",
    "Bag",
    "Ankle boot",
)
UBYTE = 0x08
PREPARE_COMMAND = (
    "python -m npf.data prepare fashionmnist --source <folder with the four .gz files> "
    "(or --download)"
)


def read_idx(path: Path, ndim: int) -> np.ndarray:
    """Read a gzipped IDX file of unsigned bytes with ``ndim`` dimensions."""
    try:
        with gzip.open(path, "rb") as handle:
            raw = handle.read()
    except (OSError, EOFError, zlib.error) as error:
        raise CorruptFileError(f"{path}: not a readable gzip file ({error})") from error
    header = 4 * (1 + ndim)
    if len(raw) < header:
        raise CorruptFileError(f"{path}: {len(raw)} bytes, shorter than the IDX header")
    zero, dtype_code, dims = raw[0:2], raw[2], raw[3]
    if zero != b"\0\0" or dtype_code != UBYTE or dims != ndim:
        raise CorruptFileError(
            f"{path}: magic number 0x{raw[:4].hex()} is not that of a {ndim}-d unsigned-byte "
            f"IDX file (0x0000{UBYTE:02x}{ndim:02x})"
        )
    shape = tuple(int(n) for n in np.frombuffer(raw, ">i4", count=ndim, offset=4))
    expected = int(np.prod(shape))
    if len(raw) - header != expected:
        raise CorruptFileError(
            f"{path}: header says shape {shape} ({expected} bytes of data), "
            f"file holds {len(raw) - header}"
        )
    return np.frombuffer(raw, np.uint8, offset=header).reshape(shape)


def part_path(data_dir: Path, part: str) -> Path:
    return Path(data_dir) / DIRNAME / FILES[part][0]


def read_part(data_dir: Path, part: str) -> np.ndarray:
    """One part as uint8; an array of the official shape must hold the official content."""
    path = part_path(data_dir, part)
    try:
        array = read_idx(path, ndim=1 if part.endswith("labels") else 3)
    except CorruptFileError as error:
        raise CorruptFileError(f"{error}; prepare it again: {PREPARE_COMMAND}") from error
    shape, expected = CONTENT[part]
    if array.shape == shape and (found := hashlib.md5(array).hexdigest()) != expected:
        raise CorruptFileError(
            f"{path}: has the official shape {shape} but not its content (MD5 of the data "
            f"{found}, official {expected}); prepare it again: {PREPARE_COMMAND}"
        )
    return array


def read_split(data_dir: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    """uint8 images (N, rows, cols) and labels (N,) of ``split`` ("train" or "test")."""
    images_path = part_path(data_dir, f"{split}_images")
    labels_path = part_path(data_dir, f"{split}_labels")
    for path in (images_path, labels_path):
        if not path.exists():
            raise DatasetNotFoundError(f"{path} not found; prepare it with: {PREPARE_COMMAND}")
    images = read_part(data_dir, f"{split}_images")
    labels = read_part(data_dir, f"{split}_labels")
    if len(images) != len(labels):
        raise CorruptFileError(
            f"{images_path}: {len(images)} images but {labels_path.name} has {len(labels)} labels"
        )
    if labels.size and labels.max() >= len(CLASS_NAMES):
        raise CorruptFileError(f"{labels_path}: label {labels.max()} outside 0..9")
    return images, labels


def to_dataset(images: np.ndarray, labels: np.ndarray, size: int) -> GridDataset:
    """Resize to ``size x size`` (bilinear, antialiased) with values in [0, 1]."""
    pixels = torch.from_numpy(images.copy()).unsqueeze(1).float().div_(255.0)
    values = F.interpolate(
        pixels, size=(size, size), mode="bilinear", antialias=True, align_corners=False
    ).clamp_(0.0, 1.0)
    return GridDataset(
        name=DIRNAME,
        values=values,
        valid=torch.ones(len(values), 1, size, size, dtype=torch.bool),
        units="intensity",
        labels={"label": labels.astype(np.int64)},
    )


def load(data_dir: Path, seed: int = 0, size: int = IMAGE_SIZE) -> tuple[GridDataset, GridDataset]:
    """The official 60,000 training / 10,000 test images; ``seed`` is unused (fixed split)."""
    del seed
    return (
        to_dataset(*read_split(data_dir, "train"), size),
        to_dataset(*read_split(data_dir, "test"), size),
    )


def md5(path: Path) -> str:
    digest = hashlib.md5()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def prepare(source: Path | None, data_dir: Path, download: bool = False) -> str:
    """Copy the four archives from ``source`` (or download them) into ``<data_dir>/fashionmnist``.

    Each archive must match its published MD5; files are copied through a
    temporary name, so an interrupted copy never leaves a partial archive.
    """
    data_dir = Path(data_dir)
    if download:
        from torchvision.datasets import FashionMNIST

        data_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=data_dir, prefix=".download-") as scratch:
            FashionMNIST(scratch, train=True, download=True)
            return prepare(Path(scratch) / "FashionMNIST" / "raw", data_dir)
    if source is None:
        raise ValueError("fashionmnist: give --source <folder> or --download")
    target = Path(data_dir) / DIRNAME
    target.mkdir(parents=True, exist_ok=True)
    for name, expected in FILES.values():
        origin = Path(source) / name
        if not origin.exists():
            raise DatasetNotFoundError(f"{origin} not found (need the four Fashion-MNIST .gz)")
        if (found := md5(origin)) != expected:
            raise CorruptFileError(f"{origin}: MD5 {found}, the published one is {expected}")
        partial = target / f".{name}.partial"
        shutil.copyfile(origin, partial)
        partial.replace(target / name)
    return f"fashionmnist: 4 archives (MD5 verified) in {target}"
