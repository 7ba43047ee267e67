"""Depthwise ("one filter per channel") 2-D convolution with zero 'same' padding.

Every large-kernel convolution of the model goes through :func:`depthwise_conv2d`,
so one place decides how it is computed. Two backends compute the same function:

* ``"fast"`` (default): the custom operator ``npf::depthwise_conv2d`` with its
  own backward. On CUDA with Triton installed it runs the kernels of
  :mod:`npf.depthwise_triton` (on CPU too when ``TRITON_INTERPRET=1`` selects
  Triton's interpreter, as the tests do); elsewhere (CPU) the forward is one
  oneDNN call on channels-last tensors (outputs are channels-last), the input
  gradient is the same convolution of the output gradient with the flipped
  filter, and the weight gradient comes from a small C++ kernel
  (``npf/csrc/depthwise_weight_grad.cpp``, compiled on first use; see
  :func:`_cpu_weight_grad`). Channels-last keeps the pointwise (1 x 1)
  convolutions and batch norms that follow in the same layout, where oneDNN
  runs them about 3x (1 x 1) and 5x (batch norm) faster than on NCHW tensors at
  32 x 32. ``benchmarks/train_speed.py`` measures the variants.
* ``"reference"``: plain ``F.conv2d(..., groups=C)`` with autograd's own
  backward, the baseline that benchmarks and tests compare against.

The operator is registered through ``torch.library``, so ``torch.compile``
treats it as one opaque node (no graph break) and CUDA graphs can capture it.
Outputs have the input's dtype (bf16 under autocast); accumulation is fp32 on
the Triton path, and the weight gradient is accumulated in fp32 everywhere.
"""

from __future__ import annotations

import functools
import importlib.util
import logging
import os
import platform
import subprocess
import warnings
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from types import ModuleType

import torch
import torch.nn.functional as F

BACKENDS = ("fast", "reference")
TRITON_AVAILABLE = importlib.util.find_spec("triton") is not None
#: Triton's CPU interpreter is on: CPU tensors go to the Triton kernels too (for tests).
TRITON_INTERPRETED = TRITON_AVAILABLE and os.environ.get("TRITON_INTERPRET") == "1"

_backend = "fast"

KERNEL_SOURCE = Path(__file__).parent / "csrc" / "depthwise_weight_grad.cpp"
#: what the C++ kernel handles: channels in blocks of 16, these odd kernel sizes
KERNEL_LANES = 16
KERNEL_SIZES = (3, 5, 7, 9, 11)


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


def _cpu_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """One oneDNN call on channels-last tensors (the 128 channels are the vector lanes)."""
    x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight.to(x.dtype), padding=weight.shape[-1] // 2, groups=x.shape[1])


def _cpu_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The weight gradient on CPU: the C++ kernel where it applies, else image by image.

    The kernel (``npf/csrc/depthwise_weight_grad.cpp``) sums over the batch in fp32 with
    16 channels per AVX-512 vector and the k accumulators of a filter row in registers.
    It exists because no torch path came close: for 32 x 128 x 32 x 32 with 9 x 9 filters
    on one Zen 4 core it took 11 ms (fp32), against 24 ms for one oneDNN call per image
    (:func:`_per_image_weight_grad`) and 104 ms for oneDNN's own depthwise weight
    gradient (``benchmarks/depthwise_weight_grad.py`` measures them side by side; a
    ``torch.compile`` reduction was slower than the per-image calls).
    """
    kernel = _cpu_kernel()
    if (
        kernel is not None
        and x.shape[1] % KERNEL_LANES == 0
        and kernel_size in KERNEL_SIZES
        and x.dtype in (torch.float32, torch.bfloat16)
        and grad_out.dtype == x.dtype
    ):
        return kernel.depthwise_weight_grad(x, grad_out, kernel_size)
    return _per_image_weight_grad(x, grad_out, kernel_size)


@functools.cache
def _cpu_kernel() -> ModuleType | None:
    """The compiled C++ kernel (built on first use into torch's extension cache, about
    30 s), or ``None`` with one warning when it cannot be built (no C++ compiler or
    ninja, or ``NPF_CPU_KERNEL=0``)."""
    if os.environ.get("NPF_CPU_KERNEL", "1") == "0":
        return None
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # CUDA_HOME notice
    from torch.utils import cpp_extension

    # OpenMP: at::parallel_for splits the channel blocks over torch's threads (without it,
    # one thread); the library resolves to the libgomp.so.1 that torch has already loaded
    flags = ["-O3", "-fopenmp"]
    if platform.machine() in ("x86_64", "AMD64"):
        flags.append("-march=native")
    try:
        return cpp_extension.load(
            "npf_depthwise_cpu",
            [str(KERNEL_SOURCE)],
            extra_cflags=flags,
            extra_ldflags=["-fopenmp"],
        )
    except (OSError, RuntimeError, ImportError, subprocess.CalledProcessError) as error:
        warnings.warn(
            f"the CPU depthwise weight-gradient kernel could not be built ({error}); "
            "falling back to one oneDNN call per image (slower, same result)",
            stacklevel=2,
        )
        return None


def _per_image_weight_grad(
    x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int
) -> torch.Tensor:
    """Image by image, the padded input convolved with the output gradient as filter.

    Per image, one oneDNN depthwise call with an (H x W) filter gives all k x k
    offsets at once (14 ms at 32 x 32 x 128 channels on 2 cores, against 49 ms for
    oneDNN's own depthwise weight gradient).
    """
    channels, height, width = x.shape[1:]
    pad = kernel_size // 2
    grad_w = torch.zeros(channels, 1, kernel_size, kernel_size, device=x.device)
    for image, grad_image in zip(x, grad_out, strict=True):
        padded = F.pad(image.contiguous(), (pad,) * 4).unsqueeze(0)
        filters = grad_image.to(image.dtype).contiguous().reshape(channels, 1, height, width)
        grad_w += F.conv2d(padded, filters, groups=channels).reshape(grad_w.shape).float()
    return grad_w


def _output_like(x: torch.Tensor) -> torch.Tensor:
    if _use_triton(x):
        return torch.empty_like(x, memory_format=torch.contiguous_format)
    return torch.empty_like(x, memory_format=torch.channels_last)


@torch.library.custom_op("npf::depthwise_conv2d", mutates_args=())
def _conv_op(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    if _use_triton(x):
        from npf import depthwise_triton

        return depthwise_triton.forward(x, weight)
    return _cpu_forward(x, weight)


@_conv_op.register_fake
def _conv_shape(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return _output_like(x)


@torch.library.custom_op("npf::depthwise_conv2d_weight_grad", mutates_args=())
def _weight_grad_op(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    if _use_triton(x):
        from npf import depthwise_triton

        return depthwise_triton.weight_grad(x, grad_out, kernel_size)
    return _cpu_weight_grad(x, grad_out, kernel_size)


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
