"""``eurosat`` loader and prepare step on small JPEGs written here."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from npf.data import CorruptFileError, DatasetNotFoundError, load_splits
from npf.data.__main__ import main
from npf.data.eurosat import load, prepare


def write_class(folder: Path, name: str, n: int, seed: int = 0) -> None:
    folder.mkdir(parents=True)
    rng = np.random.default_rng(seed)
    for k in range(1, n + 1):
        pixels = rng.integers(0, 256, (64, 64, 3), dtype=np.uint8)
        Image.fromarray(pixels).save(folder / f"{name}_{k}.jpg", quality=95)


@pytest.fixture
def source(tmp_path: Path) -> Path:
    """Class folders as in ``../shared/data/eurosat`` (no ``2750/`` level)."""
    root = tmp_path / "source"
    write_class(root / "Industrial", "Industrial", 12)
    write_class(root / "River", "River", 4, seed=1)
    return root


def test_prepare_lays_out_2750_and_load_splits_disjointly(source: Path, tmp_path: Path) -> None:
    data_dir = tmp_path / "data"
    assert main(["prepare", "eurosat", "--source", str(source), "--data-dir", str(data_dir)]) == 0
    assert len(list((data_dir / "eurosat" / "2750" / "Industrial").glob("*.jpg"))) == 12
    pool, test = load(data_dir, n_test=3)
    assert (len(pool), len(test)) == (9, 3)
    assert pool.shape == (3, 64, 64) and 0.0 <= pool.values.min() and pool.values.max() <= 1.0
    assert not set(pool.labels["path"]) & set(test.labels["path"])
    again = load(data_dir, seed=5, n_test=3)[1]
    assert list(again.labels["path"]) == list(test.labels["path"])  # fixed by split_seed only
    other = load(data_dir, n_test=3, split_seed=1)[1]
    assert list(other.labels["path"]) != list(test.labels["path"])
    river = load_splits("eurosat", data_dir, val_fraction=1 / 3, eurosat_class="River", n_test=1)
    assert river.sizes() == {"train": 2, "val": 1, "test": 1}


def test_pixels_match_the_jpeg(source: Path, tmp_path: Path) -> None:
    prepare(source, tmp_path)
    pool, test = load(tmp_path, n_test=3)
    images = np.concatenate([pool.values.numpy(), test.values.numpy()])
    paths = [*pool.labels["path"], *test.labels["path"]]
    image = images[paths.index("eurosat/2750/Industrial/Industrial_7.jpg")]
    expected = np.asarray(Image.open(source / "Industrial" / "Industrial_7.jpg")) / 255.0
    np.testing.assert_allclose(image.transpose(1, 2, 0), expected, atol=1e-6)


def test_corrupt_or_wrong_jpeg_is_named(source: Path, tmp_path: Path) -> None:
    bad = source / "Industrial" / "Industrial_7.jpg"
    bad.write_bytes(bad.read_bytes()[:300])
    with pytest.raises(CorruptFileError, match="Industrial_7.jpg: cannot decode JPEG"):
        prepare(source, tmp_path / "data")
    assert not (tmp_path / "data" / "eurosat" / "2750" / "Industrial").exists()
    Image.new("L", (32, 32)).save(bad)
    with pytest.raises(CorruptFileError, match="Industrial_7.jpg: expected a 64x64 RGB JPEG"):
        prepare(source, tmp_path / "data")


def test_missing_and_unknown_class(source: Path, tmp_path: Path) -> None:
    with pytest.raises(DatasetNotFoundError, match="prepare eurosat") as error:
        load(tmp_path)
    assert str(tmp_path / "eurosat" / "2750" / "Industrial") in str(error.value)
    with pytest.raises(ValueError, match="valid: AnnualCrop, Forest"):
        load(tmp_path, eurosat_class="Airport")


def test_prepared_class_is_never_replaced_by_fewer_images(
    source: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    data_dir = tmp_path / "data"
    argv = ["prepare", "eurosat", "--data-dir", str(data_dir), "--source"]
    assert main([*argv, str(source)]) == 0
    prepared = data_dir / "eurosat" / "2750" / "Industrial"
    empty, misnamed = tmp_path / "empty" / "Industrial", tmp_path / "misnamed" / "Industrial"
    empty.mkdir(parents=True)
    misnamed.mkdir(parents=True)
    (misnamed / "img_1.jpg").write_bytes(b"")
    assert main([*argv, str(empty.parent)]) == 1
    assert f"no Industrial_<n>.jpg images in {empty}" in capsys.readouterr().err
    assert main([*argv, str(misnamed.parent)]) == 1
    assert "img_1.jpg (not a file named Industrial_<n>.jpg)" in capsys.readouterr().err
    fewer = tmp_path / "fewer"
    write_class(fewer / "Industrial", "Industrial", 5)
    assert main([*argv, str(fewer)]) == 1
    assert "5 images, fewer than the 12 already prepared" in capsys.readouterr().err
    assert len(list(prepared.glob("*.jpg"))) == 12
    assert main([*argv, str(fewer), "--force"]) == 0
    assert len(list(prepared.glob("*.jpg"))) == 5


def test_jpeg_suffixes_in_any_case_and_skipped_files_are_named(tmp_path: Path) -> None:
    folder = tmp_path / "source" / "Industrial"
    write_class(folder, "Industrial", 4)
    (folder / "Industrial_1.jpg").rename(folder / "Industrial_1.JPG")
    (folder / "Industrial_2.jpg").rename(folder / "Industrial_2.jpeg")
    (folder / "Industrial_3.JPEG").write_bytes((folder / "Industrial_3.jpg").read_bytes())
    (folder / "notes.txt").write_text("not an image")
    text = prepare(folder.parent, tmp_path / "data")
    assert "4 Industrial images" in text and "2 files skipped" in text
    assert "number 3 already taken" in text and "notes.txt (not a file named" in text
    pool, test = load(tmp_path / "data", n_test=1)
    assert len(pool) + len(test) == 4
