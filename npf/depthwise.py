"""Depthwise ("one filter per channel") 2-D convolution with zero 'same' padding.

Every large-kernel convolution of the model goes through :func:`depthwise_conv2d`,
so one place decides how it is computed. PyTorch's own backward for grouped
convolutions is slow for large kernels (on CPU it took 83 % of a training step),
so the backward here is written with two plain forward convolutions:

* the input gradient is the output gradient convolved with the flipped filter;
* the weight gradient is a convolution of the padded input with the output
  gradient used as a (H x W) filter, batch and channel folded into groups.

Both are exact; ``tests/test_depthwise.py`` checks them against autograd.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


class _DepthwiseConv2d(torch.autograd.Function):
    @staticmethod
    def forward(ctx, x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        ctx.save_for_backward(x, weight)
        return F.conv2d(x, weight, padding=weight.shape[-1] // 2, groups=x.shape[1])

    @staticmethod
    def backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
        x, weight = ctx.saved_tensors
        batch, channels, height, width = x.shape
        k = weight.shape[-1]
        grad_x = grad_w = None
        if ctx.needs_input_grad[0]:
            grad_x = F.conv2d(grad_out, weight.flip(-1, -2), padding=k // 2, groups=channels)
        if ctx.needs_input_grad[1]:
            padded = F.pad(x, (k // 2,) * 4).transpose(0, 1)
            padded = padded.reshape(1, channels * batch, height + k - 1, width + k - 1)
            filters = grad_out.transpose(0, 1).reshape(channels * batch, 1, height, width)
            per_image = F.conv2d(padded, filters, groups=channels * batch)
            grad_w = per_image.reshape(channels, batch, k, k).sum(1, keepdim=True)
        return grad_x, grad_w


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of ``x`` (B, C, H, W) with its own odd ``k x k`` filter.

    ``weight`` has shape (C, 1, k, k); the output has the shape of ``x``.
    """
    if weight.shape[0] != x.shape[1] or weight.shape[-1] % 2 == 0:
        raise ValueError(
            f"weight {tuple(weight.shape)} does not fit input {tuple(x.shape)} (odd k needed)"
        )
    return _DepthwiseConv2d.apply(x, weight)
