"""The depthwise convolution's weight gradient on CPU: each way of computing it, side by side.

For the report's layer (128 channels, 9 x 9) at batch 32 and 32 x 32 and 64 x 64 planes,
in fp32 and bf16 (the Trainer's autocast precision), one run times:

- ``onednn``: autograd's backward of ``F.conv2d(groups=C)`` (oneDNN's own depthwise weight
  gradient; plain PyTorch, the baseline);
- ``per-image``: one oneDNN depthwise call per image with the output gradient as filter
  (``npf.depthwise._per_image_weight_grad``, the fallback);
- ``kernel``: the C++ kernel (``npf/csrc/depthwise_weight_grad.cpp``, what training uses).

Columns: milliseconds per call (best of ``--repeats`` after a warm-up), GFLOP/s
(2 B C H W k^2 per call), the speed-up over ``onednn`` in the same run and the relative
error against float64. Stores JSON under ``benchmarks/results/``.

    .venv/bin/python benchmarks/depthwise_weight_grad.py                  # 2 threads
    .venv/bin/python benchmarks/depthwise_weight_grad.py --threads 1 --sizes 64
"""

from __future__ import annotations

import argparse
import json
import os
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import torch
import torch.nn.functional as F

from npf import depthwise

RESULTS = Path(__file__).resolve().parent / "results"
BATCH, CHANNELS, KERNEL = 32, 128, 9


def onednn(x: torch.Tensor, grad_out: torch.Tensor, k: int) -> torch.Tensor:
    weight = torch.zeros(x.shape[1], 1, k, k, dtype=x.dtype, requires_grad=True)
    out = F.conv2d(x, weight, padding=k // 2, groups=x.shape[1])
    return torch.autograd.grad(out, weight, grad_out)[0].float()


def kernel(x: torch.Tensor, grad_out: torch.Tensor, k: int) -> torch.Tensor:
    return depthwise._cpu_kernel().depthwise_weight_grad(x, grad_out, k)


WAYS: dict[str, Callable[[torch.Tensor, torch.Tensor, int], torch.Tensor]] = {
    "onednn": onednn,
    "per-image": depthwise._per_image_weight_grad,
    "kernel": kernel,
}


def best_time(way: Callable, x: torch.Tensor, grad_out: torch.Tensor, repeats: int) -> float:
    way(x, grad_out, KERNEL)  # warm-up: oneDNN's primitive creation, the kernel's first load
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        way(x, grad_out, KERNEL)
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="JSON to write (default: results/...)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if depthwise._cpu_kernel() is None:
        raise SystemExit("the C++ kernel did not build: see the warning above")
    rows = []
    for size in args.sizes:
        generator = torch.Generator().manual_seed(size)
        shape = (BATCH, CHANNELS, size, size)
        x64 = torch.randn(shape, generator=generator, dtype=torch.float64)
        g64 = torch.randn(shape, generator=generator, dtype=torch.float64)
        for dtype in (torch.float32, torch.bfloat16):
            x = x64.to(dtype).contiguous(memory_format=torch.channels_last)
            grad_out = g64.to(dtype).contiguous(memory_format=torch.channels_last)
            exact = onednn(x.double(), grad_out.double(), KERNEL)
            flop = 2 * BATCH * CHANNELS * size * size * KERNEL**2
            baseline = None
            for name, way in WAYS.items():
                seconds = best_time(way, x, grad_out, args.repeats)
                baseline = baseline or seconds
                error = float((way(x, grad_out, KERNEL).double() - exact).norm() / exact.norm())
                row = {
                    "shape": f"{BATCH}x{CHANNELS}x{size}x{size} k{KERNEL}",
                    "dtype": str(dtype).removeprefix("torch."),
                    "way": name,
                    "ms": seconds * 1e3,
                    "gflop_s": flop / seconds / 1e9,
                    "speed_up": baseline / seconds,
                    "relative_error": error,
                }
                rows.append(row)
                print(
                    f"{row['shape']:>20} {row['dtype']:>8} {name:>9}: {row['ms']:7.1f} ms "
                    f"{row['gflop_s']:6.1f} GFLOP/s  x{row['speed_up']:5.2f}  err {error:.1e}",
                    flush=True,
                )
    record = {
        "date_utc": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "threads": args.threads,
        "torch": torch.__version__,
        "cpu_cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "rows": rows,
    }
    name = f"depthwise-weight-grad-cpu-{record['date_utc'][:10]}.json"
    out = args.out or RESULTS / name
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
