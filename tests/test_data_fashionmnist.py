"""``fashionmnist`` loader on tiny IDX files written here."""

from __future__ import annotations

import gzip
import struct
from pathlib import Path

import numpy as np
import pytest

from npf.data import CorruptFileError, DatasetNotFoundError, load_splits
from npf.data.fashionmnist import FILES, load, prepare, read_idx


def idx_bytes(array: np.ndarray, magic: int | None = None) -> bytes:
    magic = 0x0800 | array.ndim if magic is None else magic
    return struct.pack(f">I{array.ndim}I", magic, *array.shape) + array.astype(np.uint8).tobytes()


def write_idx(path: Path, array: np.ndarray, **kwargs) -> None:
    path.write_bytes(gzip.compress(idx_bytes(array, **kwargs)))


@pytest.fixture
def data_dir(tmp_path: Path) -> Path:
    folder = tmp_path / "fashionmnist"
    folder.mkdir()
    rng = np.random.default_rng(0)
    for split, n in (("train", 12), ("test", 5)):
        images = rng.integers(0, 256, (n, 28, 28))
        images[0] = 255  # a white image stays exactly 1 after resizing
        write_idx(folder / FILES[f"{split}_images"][0], images)
        write_idx(folder / FILES[f"{split}_labels"][0], np.arange(n) % 10)
    return tmp_path


def test_load_resizes_to_32_in_unit_range(data_dir: Path) -> None:
    train, test = load(data_dir)
    assert (len(train), len(test)) == (12, 5)
    assert train.shape == (1, 32, 32) and bool(train.valid.all())
    assert 0.0 <= train.values.min() and train.values.max() <= 1.0
    assert np.allclose(train.values[0].numpy(), 1.0)
    np.testing.assert_array_equal(test.labels["label"], [0, 1, 2, 3, 4])
    splits = load_splits("fashionmnist", data_dir, val_fraction=0.25)
    assert splits.sizes() == {"train": 9, "val": 3, "test": 5}


def test_idx_header_is_checked(tmp_path: Path) -> None:
    images = np.zeros((3, 28, 28))
    path = tmp_path / "images.gz"
    write_idx(path, images, magic=0x0801)
    with pytest.raises(CorruptFileError, match="images.gz: magic number 0x00000801"):
        read_idx(path, ndim=3)
    path.write_bytes(gzip.compress(idx_bytes(images)[:-100]))
    with pytest.raises(CorruptFileError, match=r"images.gz: header says shape \(3, 28, 28\)"):
        read_idx(path, ndim=3)
    path.write_bytes(gzip.compress(idx_bytes(images))[:-20])  # truncated archive
    with pytest.raises(CorruptFileError, match="images.gz: not a readable gzip"):
        read_idx(path, ndim=3)
    path.write_bytes(idx_bytes(images))  # not compressed at all
    with pytest.raises(CorruptFileError, match="images.gz: not a readable gzip"):
        read_idx(path, ndim=3)


def test_label_count_must_match(data_dir: Path) -> None:
    write_idx(data_dir / "fashionmnist" / FILES["test_labels"][0], np.zeros(4))
    with pytest.raises(CorruptFileError, match="5 images but t10k-labels-idx1-ubyte.gz has 4"):
        load(data_dir)


def test_missing_files_name_path_and_command(tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError) as error:
        load(tmp_path)
    message = str(error.value)
    assert str(tmp_path / "fashionmnist" / "train-images-idx3-ubyte.gz") in message
    assert "python -m npf.data prepare fashionmnist" in message and "\n" not in message


def test_prepare_rejects_archives_with_wrong_md5(data_dir: Path, tmp_path: Path) -> None:
    with pytest.raises(CorruptFileError, match="train-images-idx3-ubyte.gz: MD5 .* published"):
        prepare(data_dir / "fashionmnist", tmp_path / "prepared")
    assert not list((tmp_path / "prepared").rglob("*.gz"))


def test_official_shape_with_other_content_is_refused_at_load(data_dir: Path) -> None:
    # 10,000 labels is the shape of the official test labels, but these are not them
    write_idx(data_dir / "fashionmnist" / FILES["test_labels"][0], np.arange(10_000) % 10)
    with pytest.raises(CorruptFileError, match=r"t10k-labels-idx1-ubyte.gz: has the official"):
        load(data_dir)
