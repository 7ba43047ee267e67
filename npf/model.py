"""On-the-grid Convolutional Conditional Neural Process (Gordon et al. 2020).

The architecture follows the Neural Process Family's ``GridConvCNP`` and the
study's report: a set-convolution encoder turns the partially observed raster
into a dense representation, a residual CNN of depthwise-separable large-kernel
convolutions processes it, and a per-pixel MLP decodes a Gaussian (mean, std)
for every pixel and channel.
"""

from __future__ import annotations

import inspect
from collections.abc import Mapping
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from npf.depthwise import depthwise_conv2d

MIN_STD = 0.01


class PositiveDepthwiseConv2d(nn.Module):
    """Depthwise convolution whose weights are kept positive through ``exp``.

    Positivity makes the convolution of the context mask a proper *density*:
    it never cancels, so dividing the convolved signal by it is well defined.
    """

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.log_weight = nn.Parameter(torch.zeros(channels, 1, kernel_size, kernel_size))
        nn.init.normal_(self.log_weight, mean=-2.0, std=0.1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return depthwise_conv2d(x, self.log_weight.exp())


class SetConvEncoder(nn.Module):
    """Set convolution for gridded data: (masked signal, mask) -> representation.

    ``signal = conv(mask * y) / conv(mask)`` interpolates the context values, and
    ``density = conv(mask)`` tells how much context lies near each pixel; both are
    mapped per pixel to ``out_channels`` features by a linear layer.

    With ``raw_context``, the linear layer also sees the context itself (the masked
    values and the mask, unsmoothed): where the context is dense, as around the voids of
    an elevation model, the smoothed signal blurs the exact values next to a void.
    """

    def __init__(
        self, y_channels: int, out_channels: int, kernel_size: int, raw_context: bool = False
    ) -> None:
        super().__init__()
        self.raw_context = raw_context
        self.conv = PositiveDepthwiseConv2d(y_channels, kernel_size)
        inputs = (4 if raw_context else 2) * y_channels
        self.to_features = nn.Conv2d(inputs, out_channels, kernel_size=1)

    def forward(self, y: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        mask = context_mask.to(y.dtype).expand_as(y)
        masked = y * mask
        density = self.conv(mask)
        signal = self.conv(masked) / density.clamp_min(1e-5)
        features = [signal, density, masked, mask] if self.raw_context else [signal, density]
        return self.to_features(torch.cat(features, dim=1))


class DepthwiseSeparableConv2d(nn.Module):
    """A ``k x k`` depthwise convolution followed by a ``1 x 1`` pointwise one."""

    def __init__(self, channels: int, kernel_size: int) -> None:
        super().__init__()
        self.depthwise_weight = nn.Parameter(torch.empty(channels, 1, kernel_size, kernel_size))
        self.depthwise_bias = nn.Parameter(torch.zeros(channels))
        nn.init.kaiming_uniform_(self.depthwise_weight, a=5**0.5)
        self.pointwise = nn.Conv2d(channels, channels, kernel_size=1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = depthwise_conv2d(x, self.depthwise_weight) + self.depthwise_bias[:, None, None]
        return self.pointwise(x)


class ResidualBlock(nn.Module):
    """Pre-activation residual block: ``x + (BN -> ReLU -> conv) x n_convs``."""

    def __init__(self, channels: int, kernel_size: int, n_convs: int = 2) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for _ in range(n_convs):
            layers += [
                nn.BatchNorm2d(channels),
                nn.ReLU(),
                DepthwiseSeparableConv2d(channels, kernel_size),
            ]
        self.body = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + self.body(x)


class GridConvCNP(nn.Module):
    """ConvCNP for rasters: predicts a Gaussian at every pixel from a context mask.

    Args:
        y_channels: channels of the raster (1 for a DEM or grey image, 3 for RGB).
        hidden_channels: width of the CNN and of the decoder MLP.
        n_blocks: residual blocks (each holds two convolutions).
        kernel_size: kernel of the CNN's depthwise convolutions.
        setconv_kernel_size: kernel of the set-convolution encoder.
        decoder_layers: hidden layers of the per-pixel MLP decoder.
        raw_context: let the encoder's linear layer see the unsmoothed context too
            (:class:`SetConvEncoder`).
    """

    def __init__(
        self,
        y_channels: int = 1,
        hidden_channels: int = 128,
        n_blocks: int = 5,
        kernel_size: int = 9,
        setconv_kernel_size: int = 11,
        decoder_layers: int = 4,
        raw_context: bool = False,
    ) -> None:
        super().__init__()
        if kernel_size % 2 == 0 or setconv_kernel_size % 2 == 0:
            raise ValueError("kernel sizes must be odd so that outputs stay centred")
        self.y_channels = y_channels
        self.config = {
            "y_channels": y_channels,
            "hidden_channels": hidden_channels,
            "n_blocks": n_blocks,
            "kernel_size": kernel_size,
            "setconv_kernel_size": setconv_kernel_size,
            "decoder_layers": decoder_layers,
            "raw_context": raw_context,
        }
        self.encoder = SetConvEncoder(
            y_channels, hidden_channels, setconv_kernel_size, raw_context=raw_context
        )
        self.cnn = nn.Sequential(
            *(ResidualBlock(hidden_channels, kernel_size) for _ in range(n_blocks))
        )
        decoder: list[nn.Module] = []
        for _ in range(decoder_layers):
            decoder += [nn.Conv2d(hidden_channels, hidden_channels, kernel_size=1), nn.ReLU()]
        decoder.append(nn.Conv2d(hidden_channels, 2 * y_channels, kernel_size=1))
        self.decoder = nn.Sequential(*decoder)

    def forward(
        self, y: torch.Tensor, context_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Predict per-pixel Gaussians.

        Args:
            y: values, shape (B, C, H, W); only pixels where ``context_mask`` is
                true are read (others may hold anything finite or not).
            context_mask: boolean, shape (B, 1, H, W) or (B, C, H, W).

        Returns:
            mean and std, each of shape (B, C, H, W); std >= 0.01.
        """
        if y.ndim != 4 or y.shape[1] != self.y_channels:
            raise ValueError(
                f"expected y of shape (B, {self.y_channels}, H, W), got {tuple(y.shape)}"
            )
        y = torch.where(context_mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
        r = self.encoder(y, context_mask)
        if r.device.type == "cpu":
            # oneDNN runs the depthwise and 1x1 convolutions, batch norms and residual adds
            # fastest on channels-last tensors; keeping the residual stream in that layout
            # saves a layout copy per depthwise convolution, forward and backward
            r = r.contiguous(memory_format=torch.channels_last)
        r = self.cnn(r)
        mean, raw_std = self.decoder(r).chunk(2, dim=1)
        std = MIN_STD + (1 - MIN_STD) * F.softplus(raw_std)
        return mean, std

    def n_parameters(self) -> int:
        """Number of trainable parameters."""
        return sum(p.numel() for p in self.parameters() if p.requires_grad)

    @staticmethod
    def complete_config(config: Mapping[str, Any]) -> dict[str, Any]:
        """``config`` with each constructor argument it lacks at its default: a checkpoint
        saved before an argument existed was built with the argument's default."""
        defaults = {
            name: parameter.default
            for name, parameter in inspect.signature(GridConvCNP.__init__).parameters.items()
            if parameter.default is not inspect.Parameter.empty
        }
        return {**defaults, **config}


def add_raw_context_weights(state: Mapping[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """The weights of a model without ``raw_context``, for the same model with it: the
    new inputs' weights are zero, so the widened model predicts exactly what the original
    did and fine-tuning starts from there."""
    state = dict(state)
    weight = state["encoder.to_features.weight"]
    state["encoder.to_features.weight"] = torch.cat([weight, torch.zeros_like(weight)], dim=1)
    return state
