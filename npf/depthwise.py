"""Depthwise ("one filter per channel") 2-D convolution with zero 'same' padding.

Every large-kernel convolution of the model goes through :func:`depthwise_conv2d`,
so one place decides how it is computed. Two backends compute the same function:

* ``"fast"`` (default): the custom operator ``npf::depthwise_conv2d`` with its
  own backward. On CUDA with Triton installed it runs the kernels of
  :mod:`npf.depthwise_triton` (on CPU too when ``TRITON_INTERPRET=1`` selects
  Triton's interpreter, as the tests do); elsewhere (CPU) small C++ kernels
  (``npf/csrc/depthwise_cpu.cpp``, compiled on first use) compute the forward
  on channels-last tensors (outputs are channels-last; see :func:`_cpu_forward`)
  and the weight gradient (:func:`_cpu_weight_grad`), and the input gradient is
  the forward convolution of the output gradient with the flipped filter; oneDNN
  takes over where a kernel does not apply. Channels-last keeps the pointwise (1 x 1)
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

KERNEL_SOURCE = Path(__file__).parent / "csrc" / "depthwise_cpu.cpp"
#: the kernel sizes the C++ kernels handle (channels: in blocks of the module's CHANNEL_BLOCK,
#: one SIMD vector: 16 with AVX-512, 8 with AVX2)
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


def _kernel_applies(kernel: ModuleType, x: torch.Tensor, kernel_size: int) -> bool:
    """Whether the C++ kernels handle ``x``'s channels and dtype and this kernel size."""
    return (
        x.shape[1] % kernel.CHANNEL_BLOCK == 0
        and kernel_size in KERNEL_SIZES
        and x.dtype in (torch.float32, torch.bfloat16)
    )


def _cpu_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """The convolution on CPU, channels-last out: the C++ kernel where it applies, else oneDNN.

    The kernel (``npf/csrc/depthwise_cpu.cpp``) converts each input row once to fp32 and
    sums in fp32 with a tile of output columns and a filter row's weights in registers.
    For 32 x 128 channels with 9 x 9 filters on 2 Zen 3 cores (AVX2) it ran 1.7x (64 x 64)
    to 2.3x (32 x 32) faster than oneDNN's channels-last depthwise convolution in fp32, and
    over 100x in bf16, which oneDNN computes without native kernels on such CPUs
    (``benchmarks/depthwise_cpu.py``).
    """
    weight = weight.to(x.dtype)
    kernel = _cpu_kernel()
    if kernel is not None and _kernel_applies(kernel, x, weight.shape[-1]):
        return kernel.depthwise_forward(x, weight)
    x = x.contiguous(memory_format=torch.channels_last)
    return F.conv2d(x, weight, padding=weight.shape[-1] // 2, groups=x.shape[1])


def _cpu_weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """The weight gradient on CPU: the C++ kernel where it applies, else image by image.

    The kernel (``npf/csrc/depthwise_cpu.cpp``) sums over the batch in fp32, one SIMD
    vector of channels at a time (16 with AVX-512, 8 with AVX2), with the k accumulators
    of a filter row in registers, and reads the inputs row by row while it computes. It
    exists because no torch path came close: for 32 x 128 x 32 x 32 with 9 x 9 filters on
    one Zen 4 core its AVX-512 predecessor took 11 ms (fp32), against 24 ms for one oneDNN
    call per image (:func:`_per_image_weight_grad`) and 104 ms for oneDNN's own depthwise
    weight gradient; on one Zen 3 core (AVX2) it takes 11 ms against 44 ms per image in
    fp32, and 10 ms against 530 ms in bf16 (``benchmarks/depthwise_cpu.py`` measures them
    side by side; a ``torch.compile`` reduction was slower than the per-image calls).
    """
    kernel = _cpu_kernel()
    applies = kernel is not None and _kernel_applies(kernel, x, kernel_size)
    if applies and grad_out.dtype == x.dtype:
        return kernel.depthwise_weight_grad(x, grad_out, kernel_size)
    return _per_image_weight_grad(x, grad_out, kernel_size)


@functools.cache
def _cpu_kernel() -> ModuleType | None:
    """The compiled C++ kernels (built on first use into torch's extension cache, under
    a minute), or ``None`` with one warning when they cannot be built (no C++ compiler or
    ninja, or ``NPF_CPU_KERNEL=0``)."""
    if os.environ.get("NPF_CPU_KERNEL", "1") == "0":
        return None
    logging.getLogger("torch.utils.cpp_extension").setLevel(logging.ERROR)  # CUDA_HOME notice
    from torch.utils import cpp_extension

    # OpenMP: at::parallel_for splits the work over torch's threads (without it,
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
            f"the CPU depthwise kernels could not be built ({error}); falling back to "
            "oneDNN (the weight gradient one call per image; slower, same result)",
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
