"""Scaling between a raster's physical units and the model's working units.

The model sees ``(y - shift) / scale`` where ``scale`` is a constant of the data
set and ``shift`` is either 0 or, per image and channel, the mean of the
*context* values. Both use only what a user holds at prediction time, so no
target value leaks into the input.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class ValueScaling:
    """``scale`` divides values; ``center_on_context`` subtracts the context mean."""

    scale: float = 1.0
    center_on_context: bool = False

    def __post_init__(self) -> None:
        if not self.scale > 0:
            raise ValueError(f"scale must be positive, got {self.scale}")

    def shift(self, y: torch.Tensor, context_mask: torch.Tensor) -> torch.Tensor:
        """Per image and channel offset, shape (B, C, 1, 1)."""
        if not self.center_on_context:
            return torch.zeros(y.shape[0], y.shape[1], 1, 1, dtype=y.dtype, device=y.device)
        mask = context_mask.expand_as(y)
        total = torch.where(mask, y, torch.zeros((), dtype=y.dtype, device=y.device))
        count = mask.sum(dim=(2, 3), keepdim=True).clamp_min(1)
        return total.sum(dim=(2, 3), keepdim=True) / count

    def to_model(
        self, y: torch.Tensor, context_mask: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Return ``(scaled values, shift)``."""
        shift = self.shift(y, context_mask)
        return (y - shift) / self.scale, shift

    def from_model(
        self, mean: torch.Tensor, std: torch.Tensor, shift: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Map a predicted Gaussian back to physical units."""
        return mean * self.scale + shift, std * self.scale
