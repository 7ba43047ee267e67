import numpy as np
import torch

from npf.data import dem
from npf.data.base import GridDataset


def overlapping_tiles() -> GridDataset:
    """Tiles of 64 px at stride 32 over two 512 x 512 scenes, as the tiler writes them."""
    starts = np.arange(0, 512 - 64 + 1, 32)
    rows, cols = (a.ravel() for a in np.meshgrid(starts, starts, indexing="ij"))
    n = 2 * len(rows)
    return GridDataset(
        "tfasr",
        torch.zeros(n, 1, 64, 64),
        torch.ones(n, 1, 64, 64, dtype=torch.bool),
        labels={
            "scene": np.array(["a"] * len(rows) + ["b"] * len(rows)),
            "row": np.concatenate([rows, rows]),
            "col": np.concatenate([cols, cols]),
        },
    )


def test_validation_tiles_share_no_pixel_with_training_tiles() -> None:
    pool = overlapping_tiles()
    train, val = dem.holdout(pool, 0.1, seed=0)
    assert 0.1 * len(pool) <= len(val) < 0.3 * len(pool)
    for scene, row, col in zip(
        val.labels["scene"], val.labels["row"], val.labels["col"], strict=True
    ):
        same = train.labels["scene"] == scene
        clash = same & (abs(train.labels["row"] - row) < 64) & (abs(train.labels["col"] - col) < 64)
        assert not clash.any()
    assert len(train) + len(val) < len(pool)  # the buffer dropped overlapping training tiles


def test_seeded() -> None:
    pool = overlapping_tiles()
    a = dem.holdout(pool, 0.1, seed=1)[1].labels["row"]
    b = dem.holdout(pool, 0.1, seed=1)[1].labels["row"]
    np.testing.assert_array_equal(a, b)


def test_unknown_positions_fall_back_to_random_holdout() -> None:
    pool = overlapping_tiles()
    pool.labels["row"] = np.full(len(pool), -1)
    train, val = dem.holdout(pool, 0.1, seed=0)
    assert len(train) + len(val) == len(pool) and len(val) == round(0.1 * len(pool))
