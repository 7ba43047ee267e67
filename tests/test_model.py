import pytest
import torch

from npf.model import MIN_STD, GridConvCNP


def small_model(channels: int = 1, raw_context: bool = False) -> GridConvCNP:
    torch.manual_seed(0)
    return GridConvCNP(
        channels, hidden_channels=8, n_blocks=2, kernel_size=5, raw_context=raw_context
    ).eval()


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


@pytest.mark.parametrize("raw_context", [False, True])
def test_reads_only_context_values(raw_context: bool) -> None:
    model = small_model(raw_context=raw_context)
    y = torch.randn(1, 1, 16, 16)
    context = torch.rand(1, 1, 16, 16) < 0.2
    changed = torch.where(context, y, torch.full_like(y, float("nan")))
    for a, b in zip(model(y, context), model(changed, context), strict=True):
        torch.testing.assert_close(a, b)


@pytest.mark.parametrize("raw_context", [False, True])
def test_translation_equivariance(raw_context: bool) -> None:
    model = small_model(raw_context=raw_context)
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


def test_raw_context_reaches_the_features_unsmoothed() -> None:
    # one context pixel: the raw inputs differ from zero at that pixel only
    encoder = GridConvCNP(1, hidden_channels=8, raw_context=True).encoder
    assert encoder.to_features.in_channels == 4
    with torch.no_grad():
        encoder.to_features.weight.zero_()
        encoder.to_features.weight[0, 2] = 1.0  # feature 0 = the raw masked value
        encoder.to_features.bias.zero_()
    y = torch.full((1, 1, 9, 9), 3.0)
    context = torch.zeros(1, 1, 9, 9, dtype=torch.bool)
    context[..., 4, 4] = True
    feature = encoder(y, context)[0, 0]
    assert feature[4, 4] == 3.0 and feature.count_nonzero() == 1


def test_old_configs_complete_with_defaults() -> None:
    config = GridConvCNP(1, hidden_channels=8).config
    del config["raw_context"]  # a checkpoint saved before the option existed
    assert GridConvCNP.complete_config(config) == GridConvCNP(1, hidden_channels=8).config
