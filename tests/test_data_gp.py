"""Gaussian random fields: fresh training draws follow the fixed pool's definition."""

import numpy as np
import pytest
import torch

from npf.data import load_splits
from npf.data.gp import FieldSource, generate
from npf.training import TrainConfig, Trainer, build_model

#: quick and exact settings for tests
EAGER = {"compile": False, "precision": "fp32"}


def test_fresh_draws_are_seeded_and_new() -> None:
    source = FieldSource(size=8, n_length_scales=3)
    a, valid = source.draw(5, torch.Generator().manual_seed(1))
    b, _ = source.draw(5, torch.Generator().manual_seed(1))
    c, _ = source.draw(5, torch.Generator().manual_seed(2))
    assert a.shape == (5, 1, 8, 8) and valid.all()
    torch.testing.assert_close(a, b)
    assert not torch.allclose(a, c)


@pytest.mark.parametrize("kernel", ["rbf", "matern52"])
def test_fresh_fields_have_the_pools_covariance(kernel: str) -> None:
    """Empirical covariance of neighbouring pixels matches that of ``generate``'s fields."""
    options = {"size": 6, "kernel": kernel, "length_scale_range": (3.0, 3.0), "n_length_scales": 1}
    fresh, _ = FieldSource(**options).draw(4000, torch.Generator().manual_seed(0))
    pool = generate(4000, seed=0, **options).values

    def neighbour_cov(x: torch.Tensor) -> float:
        x = x.numpy().reshape(len(x), -1)
        return float(np.mean(x[:, :-1] * x[:, 1:]))

    assert fresh.var().item() == pytest.approx(pool.var().item(), rel=0.06)
    assert neighbour_cov(fresh) == pytest.approx(neighbour_cov(pool), rel=0.06)


def test_fresh_is_the_default_and_the_pool_stays_selectable() -> None:
    fresh = load_splits("gp", n_train=40, n_test=4, size=8)
    fixed = load_splits("gp", n_train=40, n_test=4, size=8, fresh=False)
    assert isinstance(fresh.train.source, FieldSource) and fixed.train.source is None
    torch.testing.assert_close(fresh.val.values, fixed.val.values)  # same fixed validation
    torch.testing.assert_close(fresh.test.values, fixed.test.values)


def test_training_on_fresh_fields_resumes_exactly(tmp_path) -> None:
    splits = load_splits("gp", n_train=80, n_test=4, size=8)
    config = TrainConfig(**EAGER, epochs=2, batch_size=24, optimizer="adam", device="cpu")
    small = {"hidden_channels": 8, "n_blocks": 1, "kernel_size": 3}
    straight = build_model(1, seed=0, **small)
    Trainer(straight, splits, config, tmp_path / "a").fit(progress=False)
    for _ in range(2 * 3):  # killed after every step: 72 fields per epoch in batches of 24
        sliced = build_model(1, seed=0, **small)
        Trainer(sliced, splits, config, tmp_path / "b").fit(progress=False, time_limit_s=0)
    for a, b in zip(straight.state_dict().values(), sliced.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)
