import pytest
import torch

from npf.data import DATASETS, load_splits
from npf.data.base import GridDataset, holdout_split


def test_unknown_dataset_lists_valid_names() -> None:
    with pytest.raises(ValueError, match="valid datasets: gp"):
        load_splits("tfsar")
    assert {"gp", "tfasr", "fashionmnist", "eurosat"} <= set(DATASETS)


def test_gp_splits_are_seeded_and_disjoint() -> None:
    a = load_splits("gp", n_train=50, n_test=10, size=8, seed=3)
    b = load_splits("gp", n_train=50, n_test=10, size=8, seed=3)
    assert torch.equal(a.train.values, b.train.values) and torch.equal(a.val.values, b.val.values)
    assert a.sizes() == {"train": 45, "val": 5, "test": 10}
    rows = {tuple(v.flatten().tolist()) for v in torch.cat([a.train.values, a.val.values])}
    assert len(rows) == 50  # the validation fields are not training fields
    assert a.train.truth.length_scale.shape == (45,)


def test_nan_pixels_become_invalid() -> None:
    values = torch.zeros(2, 1, 4, 4)
    values[0, 0, 1, 2] = float("nan")
    dataset = GridDataset("toy", values, torch.ones(2, 1, 4, 4, dtype=torch.bool))
    assert not dataset.valid[0, 0, 1, 2] and dataset.valid.sum() == 31


def test_holdout_rejects_bad_fraction() -> None:
    dataset = GridDataset("toy", torch.zeros(3, 1, 2, 2), torch.ones(3, 1, 2, 2, dtype=torch.bool))
    with pytest.raises(ValueError):
        holdout_split(dataset, 1.0, seed=0)


def test_max_train_keeps_a_seeded_subset() -> None:
    full = load_splits("gp", n_train=50, n_test=10, size=8)
    small = load_splits("gp", n_train=50, n_test=10, size=8, max_train=12)
    assert small.sizes() == {"train": 12, "val": 5, "test": 10}
    assert "seeded subset of 45" in small.description
    assert torch.equal(small.val.values, full.val.values)
    rows = {tuple(v.flatten().tolist()) for v in full.train.values}
    assert all(tuple(v.flatten().tolist()) in rows for v in small.train.values)
