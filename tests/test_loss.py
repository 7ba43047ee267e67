import math

import torch

from npf.loss import gaussian_nll


def test_matches_hand_computed_gaussian_nll() -> None:
    y = torch.tensor([[[[1.0, 2.0], [0.0, 5.0]]]])
    mean = torch.tensor([[[[0.0, 2.0], [1.0, 0.0]]]])
    std = torch.tensor([[[[1.0, 0.5], [2.0, 1.0]]]])
    mask = torch.tensor([[[[True, True], [True, False]]]])
    expected = [
        0.5 * 1.0 + math.log(1.0) + 0.5 * math.log(2 * math.pi),
        0.0 + math.log(0.5) + 0.5 * math.log(2 * math.pi),
        0.5 * 0.25 + math.log(2.0) + 0.5 * math.log(2 * math.pi),
    ]
    summed, per_pixel = gaussian_nll(mean, std, y, mask)
    assert math.isclose(summed.item(), sum(expected), rel_tol=1e-6)
    assert math.isclose(per_pixel.item(), sum(expected) / 3, rel_tol=1e-6)


def test_summed_loss_is_averaged_over_batch() -> None:
    y = torch.randn(1, 1, 4, 4)
    mask = torch.ones(1, 1, 4, 4, dtype=torch.bool)
    mean, std = torch.zeros_like(y), torch.ones_like(y)
    one, _ = gaussian_nll(mean, std, y, mask)
    two, _ = gaussian_nll(
        mean.repeat(2, 1, 1, 1),
        std.repeat(2, 1, 1, 1),
        y.repeat(2, 1, 1, 1),
        mask.repeat(2, 1, 1, 1),
    )
    assert torch.isclose(one, two)


def test_nan_outside_targets_gives_finite_gradients() -> None:
    y = torch.randn(2, 1, 4, 4)
    mask = torch.rand(2, 1, 4, 4) < 0.5
    mask[0, 0, 0, 0] = True
    y = torch.where(mask, y, torch.tensor(float("nan")))
    mean = torch.zeros_like(y, requires_grad=True)
    std = torch.ones_like(y, requires_grad=True)
    loss, _ = gaussian_nll(mean, std, y, mask)
    loss.backward()
    assert torch.isfinite(loss)
    assert torch.isfinite(mean.grad).all() and torch.isfinite(std.grad).all()
    assert (mean.grad[~mask] == 0).all()
