import torch

from npf.scaling import ValueScaling


def test_centering_uses_only_context_values() -> None:
    y = torch.tensor([[[[100.0, 200.0], [300.0, 1e6]]]])
    context = torch.tensor([[[[True, True], [True, False]]]])
    scaling = ValueScaling(scale=10.0, center_on_context=True)
    scaled, shift = scaling.to_model(y, context)
    assert shift.item() == 200.0  # the 1e6 target is not seen
    mean, std = scaling.from_model(scaled, torch.ones_like(scaled), shift)
    torch.testing.assert_close(mean, y)
    assert (std == 10.0).all()


def test_plain_scaling_has_no_shift() -> None:
    y = torch.randn(2, 3, 4, 4)
    scaled, shift = ValueScaling().to_model(y, torch.ones(2, 1, 4, 4, dtype=torch.bool))
    torch.testing.assert_close(scaled, y)
    assert shift.shape == (2, 3, 1, 1) and (shift == 0).all()
