"""Triton kernels for the depthwise convolution on CUDA (forward and weight gradient).

Imported by :mod:`npf.depthwise` only when Triton is installed. Written by hand
because cuDNN's and PyTorch's depthwise kernels reach only a few TFLOP/s at
9 x 9; here every program owns one tile of one (image, channel) plane:

* forward (and input gradient, which is the forward with the flipped filter):
  a ``BLOCK_H x BLOCK_W`` output tile accumulates ``k * k`` shifted, masked
  loads of the input plane (zero padding) times scalar weights, in fp32;
* weight gradient: one program per plane walks its pixels in blocks of
  ``BLOCK_P`` and accumulates, for all ``k * k`` taps at once (a tensor axis
  padded to a power of two), shifted input times output gradient; the
  per-plane sums are reduced over the batch afterwards, so the result is
  deterministic (no atomics).

Inputs may be fp32, fp16 or bf16; arithmetic is fp32. Block shapes are picked by
``triton.autotune`` on the card at first use (one config under the CPU
interpreter, ``TRITON_INTERPRET=1``, which the tests use).
"""

from __future__ import annotations

import os

import torch
import triton
import triton.language as tl

INTERPRETED = os.environ.get("TRITON_INTERPRET") == "1"


def _configs(options: list[dict[str, int]], warps: list[int]) -> list[triton.Config]:
    configs = [triton.Config(o, num_warps=w) for o in options for w in warps]
    return configs[:1] if INTERPRETED else configs


@triton.autotune(
    configs=_configs(
        [
            {"BLOCK_H": 16, "BLOCK_W": 32},
            {"BLOCK_H": 32, "BLOCK_W": 32},
            {"BLOCK_H": 8, "BLOCK_W": 64},
            {"BLOCK_H": 16, "BLOCK_W": 64},
            {"BLOCK_H": 32, "BLOCK_W": 64},
        ],
        [4, 8],
    ),
    key=["H", "W", "K"],
)
@triton.jit
def _forward_kernel(
    x_ptr,
    weight_ptr,
    out_ptr,
    C,
    H,
    W,
    K: tl.constexpr,
    BLOCK_H: tl.constexpr,
    BLOCK_W: tl.constexpr,
):
    plane = tl.program_id(0)  # image * C + channel
    tile = tl.program_id(1)
    tiles_w = tl.cdiv(W, BLOCK_W)
    rows = (tile // tiles_w) * BLOCK_H + tl.arange(0, BLOCK_H)
    cols = (tile % tiles_w) * BLOCK_W + tl.arange(0, BLOCK_W)
    offset = plane.to(tl.int64) * H * W
    filter_ptr = weight_ptr + (plane % C) * K * K
    acc = tl.zeros([BLOCK_H, BLOCK_W], dtype=tl.float32)
    for di in tl.static_range(K):
        src_rows = rows + (di - K // 2)
        rows_ok = (src_rows >= 0) & (src_rows < H)
        for dj in tl.static_range(K):
            src_cols = cols + (dj - K // 2)
            ok = rows_ok[:, None] & ((src_cols >= 0) & (src_cols < W))[None, :]
            values = tl.load(
                x_ptr + offset + src_rows[:, None] * W + src_cols[None, :], mask=ok, other=0.0
            )
            tap = tl.load(filter_ptr + di * K + dj).to(tl.float32)
            acc += values.to(tl.float32) * tap
    inside = (rows < H)[:, None] & (cols < W)[None, :]
    tl.store(
        out_ptr + offset + rows[:, None] * W + cols[None, :],
        acc.to(out_ptr.dtype.element_ty),
        mask=inside,
    )


@triton.autotune(
    configs=_configs([{"BLOCK_P": 32}, {"BLOCK_P": 64}, {"BLOCK_P": 128}], [4, 8]),
    key=["H", "W", "K"],
)
@triton.jit
def _weight_grad_kernel(
    x_ptr,
    grad_ptr,
    partial_ptr,
    H,
    W,
    K: tl.constexpr,
    TAPS: tl.constexpr,
    BLOCK_P: tl.constexpr,
):
    plane = tl.program_id(0)  # image * C + channel
    offset = plane.to(tl.int64) * H * W
    taps = tl.arange(0, TAPS)
    tap_ok = taps < K * K
    shift_rows = taps // K - K // 2
    shift_cols = taps % K - K // 2
    acc = tl.zeros([TAPS, BLOCK_P], dtype=tl.float32)
    for start in range(0, H * W, BLOCK_P):
        pixels = start + tl.arange(0, BLOCK_P)
        pixel_ok = pixels < H * W
        grad = tl.load(grad_ptr + offset + pixels, mask=pixel_ok, other=0.0).to(tl.float32)
        src_rows = (pixels // W)[None, :] + shift_rows[:, None]
        src_cols = (pixels % W)[None, :] + shift_cols[:, None]
        ok = (
            tap_ok[:, None]
            & pixel_ok[None, :]
            & (src_rows >= 0)
            & (src_rows < H)
            & (src_cols >= 0)
            & (src_cols < W)
        )
        values = tl.load(x_ptr + offset + src_rows * W + src_cols, mask=ok, other=0.0)
        acc += values.to(tl.float32) * grad[None, :]
    tl.store(partial_ptr + plane * TAPS + taps, tl.sum(acc, axis=1))


def forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Depthwise 'same' convolution of ``x`` (B, C, H, W) by ``weight`` (C, 1, k, k).

    The output has ``x``'s dtype.
    """
    x = x.contiguous()
    weight = weight.contiguous()
    batch, channels, height, width = x.shape
    out = torch.empty_like(x, memory_format=torch.contiguous_format)

    def grid(meta: dict[str, int]) -> tuple[int, int]:
        tiles = triton.cdiv(height, meta["BLOCK_H"]) * triton.cdiv(width, meta["BLOCK_W"])
        return batch * channels, tiles

    _forward_kernel[grid](x, weight, out, channels, height, width, K=weight.shape[-1])
    return out


def weight_grad(x: torch.Tensor, grad_out: torch.Tensor, kernel_size: int) -> torch.Tensor:
    """Gradient of the loss w.r.t. the (C, 1, k, k) filter, in fp32."""
    x = x.contiguous()
    grad_out = grad_out.contiguous()
    batch, channels, height, width = x.shape
    taps = triton.next_power_of_2(kernel_size * kernel_size)
    partial = torch.empty(batch, channels, taps, dtype=torch.float32, device=x.device)
    _weight_grad_kernel[(batch * channels,)](
        x, grad_out, partial, height, width, K=kernel_size, TAPS=taps
    )
    taps_used = partial.sum(0)[:, : kernel_size * kernel_size]
    return taps_used.reshape(channels, 1, kernel_size, kernel_size)
