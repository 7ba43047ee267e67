"""Gaussian negative log-likelihood of targets, the training objective."""

from __future__ import annotations

import math

import torch

HALF_LOG_2PI = 0.5 * math.log(2 * math.pi)


def gaussian_nll(
    mean: torch.Tensor, std: torch.Tensor, y: torch.Tensor, target_mask: torch.Tensor
) -> tuple[torch.Tensor, torch.Tensor]:
    """NLL of ``y`` under N(mean, std^2) over the target pixels.

    Args:
        mean, std, y: (B, C, H, W).
        target_mask: bool (B, 1, H, W) or (B, C, H, W); pixels outside it are
            ignored (and may hold NaN in ``y``).

    Returns:
        ``(summed, per_pixel)``: the NLL summed over target pixels and channels
        and averaged over the batch (the report's "summed NLL"), and the mean
        NLL per target pixel-channel.
    """
    mask = target_mask.expand_as(y)
    # Zero the ignored pixels *before* any arithmetic: a NaN there would turn
    # the (masked-out) gradient into NaN through 0 * NaN.
    y = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
    z = (y - mean) / std
    nll = torch.where(mask, 0.5 * z**2 + std.log() + HALF_LOG_2PI, torch.zeros_like(z))
    total = nll.sum()
    summed = total / y.shape[0]
    per_pixel = total / mask.sum().clamp_min(1)
    return summed, per_pixel
