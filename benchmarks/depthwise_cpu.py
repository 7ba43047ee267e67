"""The depthwise convolution on CPU, forward and weight gradient: each way of computing them.

For the report's layer (128 channels, 9 x 9) at batch 32 and 32 x 32 and 64 x 64 planes,
in fp32 and bf16 (the Trainer's autocast precision), on channels-last tensors, one run times

- the forward pass (also the input gradient: the same convolution with the flipped filter):
  - ``onednn``: ``F.conv2d(groups=C)`` (oneDNN's depthwise convolution; the baseline),
  - ``kernel``: the C++ kernel (``npf/csrc/depthwise_cpu.cpp``, what training uses);
- the weight gradient:
  - ``onednn``: autograd's backward of ``F.conv2d(groups=C)`` (oneDNN's own; the baseline),
  - ``per-image``: one oneDNN depthwise call per image with the output gradient as filter
    (``npf.depthwise._per_image_weight_grad``, the fallback),
  - ``kernel``: the C++ kernel (what training uses).

Columns: milliseconds per call (best of ``--repeats`` after a warm-up), GFLOP/s
(2 B C H W k^2 per call), the speed-up over the first way timed (``onednn`` unless
``--ways`` says otherwise) in the same run and the relative error against float64.
Stores JSON under ``benchmarks/results/``.

    .venv/bin/python benchmarks/depthwise_cpu.py                  # 2 threads
    .venv/bin/python benchmarks/depthwise_cpu.py --threads 1 --sizes 64 --passes forward
    .venv/bin/python benchmarks/depthwise_cpu.py --passes weight-grad --ways per-image kernel
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
#: a way computes a pass from the input and the weight (forward) or output gradient
Way = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def onednn_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return F.conv2d(x, weight, padding=KERNEL // 2, groups=x.shape[1])


def kernel_forward(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    return depthwise._cpu_kernel().depthwise_forward(x, weight)


def onednn_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    weight = torch.zeros(x.shape[1], 1, KERNEL, KERNEL, dtype=x.dtype, requires_grad=True)
    return torch.autograd.grad(onednn_forward(x, weight), weight, grad_out)[0].float()


def per_image_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    return depthwise._per_image_weight_grad(x, grad_out, KERNEL)


def kernel_weight_grad(x: torch.Tensor, grad_out: torch.Tensor) -> torch.Tensor:
    return depthwise._cpu_kernel().depthwise_weight_grad(x, grad_out, KERNEL)


PASSES: dict[str, dict[str, Way]] = {
    "forward": {"onednn": onednn_forward, "kernel": kernel_forward},
    "weight-grad": {
        "onednn": onednn_weight_grad,
        "per-image": per_image_weight_grad,
        "kernel": kernel_weight_grad,
    },
}


def best_time(
    way: Way, x: torch.Tensor, other: torch.Tensor, repeats: int
) -> tuple[float, torch.Tensor]:
    """The best time of ``repeats`` calls after a warm-up (oneDNN's primitive creation, the
    kernel's first load), and the last call's result."""
    way(x, other)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        result = way(x, other)
        times.append(time.perf_counter() - start)
    return min(times), result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[32, 64])
    parser.add_argument("--passes", nargs="+", choices=list(PASSES), default=list(PASSES))
    ways_all = sorted({way for ways in PASSES.values() for way in ways})
    parser.add_argument(
        "--ways", nargs="+", choices=ways_all, help="ways to time, in the passes' order"
    )
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, help="JSON to write (default: results/...)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if depthwise._cpu_kernel() is None:
        raise SystemExit("the C++ kernels did not build: see the warning above")
    rows = []
    for size in args.sizes:
        generator = torch.Generator().manual_seed(size)
        shape = (BATCH, CHANNELS, size, size)
        x64 = torch.randn(shape, generator=generator, dtype=torch.float64)
        g64 = torch.randn(shape, generator=generator, dtype=torch.float64)
        w64 = torch.randn(CHANNELS, 1, KERNEL, KERNEL, generator=generator, dtype=torch.float64)
        flop = 2 * BATCH * CHANNELS * size * size * KERNEL**2
        for dtype in (torch.float32, torch.bfloat16):
            x = x64.to(dtype).contiguous(memory_format=torch.channels_last)
            for name in args.passes:
                ways = PASSES[name]
                if name == "forward":
                    other = w64.to(dtype)
                else:
                    other = g64.to(dtype).contiguous(memory_format=torch.channels_last)
                exact = ways["onednn"](x.double(), other.double())
                baseline = None
                for way_name, way in ways.items():
                    if args.ways and way_name not in args.ways:
                        continue
                    seconds, result = best_time(way, x, other, args.repeats)
                    baseline = baseline or seconds
                    error = float((result.double() - exact).norm() / exact.norm())
                    row = {
                        "shape": f"{BATCH}x{CHANNELS}x{size}x{size} k{KERNEL}",
                        "dtype": str(dtype).removeprefix("torch."),
                        "pass": name,
                        "way": way_name,
                        "ms": seconds * 1e3,
                        "gflop_s": flop / seconds / 1e9,
                        "speed_up": baseline / seconds,
                        "relative_error": error,
                    }
                    rows.append(row)
                    print(
                        f"{row['shape']:>20} {row['dtype']:>8} {name:>11} {way_name:>9}: "
                        f"{row['ms']:7.1f} ms {row['gflop_s']:6.1f} GFLOP/s  "
                        f"x{row['speed_up']:5.2f}  err {error:.1e}",
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
    name = f"depthwise-cpu-{record['date_utc'][:10]}.json"
    out = args.out or RESULTS / name
    out.write_text(json.dumps(record, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
