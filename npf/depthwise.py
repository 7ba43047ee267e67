"""Depthwise ("one filter per channel") 2-D convolution with zero 'same' padding.

Every large-kernel convolution of the model goes through :func:`depthwise_conv2d`,
so one place decides how it is computed. Two backends compute the same function:

* ``"fast"`` (default): the custom operator ``npf::depthwise_conv2d`` with its
  own backward. On CUDA with Triton installed it runs the kernels of
  :mod:`npf.depthwise_triton` (on CPU too when ``TRITON_INTERPRET=1`` selects
  Triton's interpreter, as the tests do); elsewhere (CPU) it uses oneDNN forward
  convolutions only: the input gradient is the output gradient convolved with
  the flipped filter, and the weight gradient is a convolution of the padded
  input with the output gradient as an (H x W) filter. PyTorch's own backward
  for grouped convolutions is slow for large kernels on CPU. Each convolution
  runs image by image: on a 2-core EPYC (one thread, batch 32 x 128 channels)
  that made the forward about 2x and the weight gradient about 2.5x faster
  than one call for the whole batch, at 32 x 32 and at 64 x 64.
* ``"reference"``: plain ``F.conv2d(..., groups=C)`` with autograd's own
  backward, the baseline that benchmarks and tests compare against.

The operator is registered through ``torch.library``, so ``torch.compile``
treats it as one opaque node (no graph break) and CUDA graphs can capture it.
Outputs have the input's dtype (bf16 under autocast); accumulation is fp32 on
the Triton path, and the weight gradient is accumulated in fp32 everywhere.
"""

from __future__ import annotations

import importlib.util
import os
from collections.abc import Iterator
from contextlib import contextmanager

import torch
import torch.nn.functional as F

BACKENDS = ("fast", "reference")
TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None
#: Triton's CPU interpreter is on: CPU tensors go to the Triton kernels too (for tests).
TRITON_INTERPRETED = TRITON_AVAILABLE and os.environ.get("TRITON_INTERPRET") == "1"

_backend = "fast"


@contextmanager
def use_backend(name: str) -> Iterator[None]:
    """Compute :func:`depthwise_conv2d` with backend ``name`` inside the block."""
    global _backend
    if name not in BACKENDS:
        raise ValueError(f"unknown depthwise backend {name!r}; valid: {', '.join(BACKENDS)}")
    previous, _backend = _backend, name
    try:
        yield
    finally:
        _backend = previous


def current_backend() -> str:
    """The backend :func:`depthwise_conv2d` uses now."""
    return _backend


def _use_triton(x: torch.Tensor) -> bool:
    return TRITON_AVAILABLE and (x.is_cuda or TRITON_INTERPRETED)


@torch.library.custom_op("npf::depthwise_conv2d", mutates_args=())
def _conv_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if _use_triton(x):
        from npf import depthwise_triton

        return depthwise_triton.forward(x, weight)
    weight = weight.to(x.dtype)
    padding = weight.shape[-1] // 2
    out = torch.empty_like(x, memory_format=torch.contiguous_format)
    for image, out_image in zip(x, out, strict=True):
        out_image.copy_(F.conv2d(image[None], weight, padding=padding, groups=x.shape[1])[0])
    return out


@_conv_op.register_fake
def _conv_shape(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return torch.empty_like(x, memory_format=torch.contiguous_format)


@torch.library.custom_op("npf::depthwise_conv2d_weight_grad", mutates_args=())
def _weight_grad_op(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    if _use_triton(x):
        from npf import depthwise_triton

        return depthwise_triton.weight_grad(x, grad_out, kernel_size)
    channels, height, width = x.shape[1:]
    grad_w = torch.zeros(channels, 1, kernel_size, kernel_size, device=x.device)
    for image, grad_image in zip(x, grad_out, strict=True):
        padded = F.pad(image.float(), (kernel_size // 2,) * 4).unsqueeze(0)
        filters = grad_image.float().reshape(channels, 1, height, width)
        grad_w += F.conv2d(padded, filters, groups=channels).reshape(grad_w.shape)
    return grad_w


@_weight_grad_op.register_fake
def _weight_grad_shape(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    return x.new_empty(x.shape[1], 1, kernel_size, kernel_size, dtype=torch.float32)


def _save_inputs(ctx, inputs: tuple[torch.Tensor, torch.Tensor], output: torch.Tensor) -> None:
    ctx.save_for_backward(*inputs)


def _backward(ctx, grad_out: torch.Tensor) -> tuple[torch.Tensor | None, torch.Tensor | None]:
    x, weight = ctx.saved_tensors
    grad_x = grad_w = None
    if ctx.needs_input_grad[0]:
        grad_x = _conv_op(grad_out, weight.flip(-1, -2))
    if ctx.needs_input_grad[1]:
        grad_w = _weight_grad_op(x, grad_out, weight.shape[-1]).to(weight.dtype)
    return grad_x, grad_w


_conv_op.register_autograd(_backward, setup_context=_save_inputs)


def depthwise_conv2d(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Convolve each channel of ``x`` (B, C, H, W) with its own odd ``k x k`` filter.

    ``weight`` has shape (C, 1, k, k); the output has the shape of ``x``. The
    backend is chosen by :func:`use_backend` (default ``"fast"``).
    """
    if (
        x.ndim != 4
        or weight.shape[0] != x.shape[1]
        or weight.shape[1] != 1
        or weight.shape[-1] != weight.shape[-2]
        or weight.shape[-1] % 2 == 0
    ):
        raise ValueError(
            f"weight {tuple(weight.shape)} does not fit input {tuple(x.shape)} "
            "(need x (B, C, H, W) and weight (C, 1, k, k) with odd k)"
        )
    if _backend == "reference":
        return F.conv2d(x, weight, padding=weight.shape[-1] // 2, groups=x.shape[1])
    return _conv_op(x, weight)
