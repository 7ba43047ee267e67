import pytest
import torch

from npf.model import MIN_STD, GridConvCNP


def small_model(channels: int = 1) -> GridConvCNP:
    torch.manual_seed(0)
    return GridConvCNP(channels, hidden_channels=8, n_blocks=2, kernel_size=5).eval()


@pytest.mark.parametrize(("channels", "height", "width"), [(1, 16, 16), (3, 12, 20), (1, 9, 7)])
def test_output_shapes_and_positive_std(channels: int, height: int, width: int) -> None:
    model = small_model(channels)
    y = torch.randn(2, channels, height, width)
    context = torch.rand(2, 1, height, width) < 0.3
    mean, std = model(y, context)
    assert mean.shape == std.shape == y.shape
    assert (std >= MIN_STD).all()


def test_report_architecture_size() -> None:
    # 5 residual blocks of 2 depthwise-separable 9x9 convolutions, 128 channels, 4x128 MLP.
    model = GridConvCNP(1)
    assert model.n_parameters() == 339_451
    assert sum(isinstance(m, torch.nn.BatchNorm2d) for m in model.modules()) == 10


def test_reads_only_context_values() -> None:
    model = small_model()
    y = torch.randn(1, 1, 16, 16)
    context = torch.rand(1, 1, 16, 16) < 0.2
    changed = torch.where(context, y, torch.full_like(y, float("nan")))
    for a, b in zip(model(y, context), model(changed, context), strict=True):
        torch.testing.assert_close(a, b)


def test_translation_equivariance() -> None:
    model = small_model()
    y = torch.randn(1, 1, 48, 48)
    context = torch.rand(1, 1, 48, 48) < 0.3
    shift = 5
    mean, std = model(y, context)
    mean_s, std_s = model(y.roll(shift, dims=-1), context.roll(shift, dims=-1))
    # Away from the borders (receptive field ~ 2 * 2 * (5 // 2) + 11 // 2 = 13 pixels)
    inner = slice(16, 32)
    torch.testing.assert_close(mean_s[..., inner, inner], mean.roll(shift, -1)[..., inner, inner])
    torch.testing.assert_close(std_s[..., inner, inner], std.roll(shift, -1)[..., inner, inner])


def test_rejects_wrong_channel_count() -> None:
    with pytest.raises(ValueError, match="expected y of shape"):
        small_model(3)(torch.randn(1, 1, 8, 8), torch.ones(1, 1, 8, 8, dtype=torch.bool))


def test_even_kernel_rejected() -> None:
    with pytest.raises(ValueError, match="odd"):
        GridConvCNP(1, kernel_size=8)
