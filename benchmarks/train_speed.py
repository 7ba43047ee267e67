"""Training speed of the report's GridConvCNP: images/s, ms/step, peak memory, s/epoch.

Run by hand, never from the test suite (see benchmarks/README.md)::

    .venv/bin/python benchmarks/train_speed.py                    # CPU, short
    PYTHONPATH=. python benchmarks/train_speed.py --device cuda --out $OUT/x.json

Every variant trains a freshly seeded model (the report's: 128 channels, 5
residual blocks of 9 x 9 depthwise-separable convolutions, 4-layer decoder) with
Adam (lr 1e-3, the Trainer's default; until 2026-12-04 plain SGD, whose steps on the
summed NLL diverge within 5 steps at 64 x 64) on the same pre-sampled batches of
synthetic smooth fields, so the rows of
one shape and batch are measured side by side and their loss curves compare:
``loss_dev`` is the largest deviation of a variant's per-step loss from the
``reference`` variant's (plain PyTorch: fp32, eager, ``F.conv2d`` depthwise with
autograd's own backward), relative to the largest reference loss of the run (the
summed NLL of these fields passes near zero within a few steps, where per-step
ratios, kept as ``loss_dev_per_step``, blow up); the JSON keeps every step's loss.
Seconds per epoch are derived from ms/step at the data sets' training sizes. Results
are printed as a table and merged into one JSON file per card and date under
``benchmarks/results/`` (``train-speed-<card>-<date>.json``).
"""

from __future__ import annotations

import argparse
import ctypes
import datetime
import inspect
import json
import math
import os
import platform
import subprocess
import sys
import tempfile
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from npf.acceleration import CudaGraphModel, serve_cpu_tensors_from_heap
from npf.data import gp
from npf.depthwise import TRITON_AVAILABLE, use_backend
from npf.loss import gaussian_nll
from npf.model import GridConvCNP
from npf.provenance import git_commit
from npf.scaling import ValueScaling
from npf.tasks import ContextSampler

RESULTS = Path(__file__).resolve().parent / "results"
VAL_FRACTION = 0.1  # load_splits' default hold-out


@dataclass(frozen=True)
class Variant:
    """How a training step is run."""

    backend: str  # npf.depthwise backend: "reference" or "fast"
    precision: str = "fp32"  # "bf16": autocast of the model's forward
    cuda_graph: bool = False  # npf.acceleration.CudaGraphModel
    compile_mode: str | None = None  # model.compile(mode=...); "default" for mode=None
    cpu_heap: bool = False  # npf.acceleration.serve_cpu_tensors_from_heap (CPU only)
    cpu_kernel: bool = True  # False: the per-image weight gradient (NPF_CPU_KERNEL=0)

    def runs_on(self, kind: str) -> bool:
        if kind == "cuda":
            return not self.cpu_heap
        return not (self.cuda_graph or self.compile_mode == "reduce-overhead")


VARIANTS = {
    "reference": Variant("reference"),
    "fast": Variant("fast"),
    "fast-heap": Variant("fast", cpu_heap=True),
    "fast-bf16": Variant("fast", "bf16"),
    "fast-bf16-heap": Variant("fast", "bf16", cpu_heap=True),
    "fast-graph": Variant("fast", cuda_graph=True),
    "fast-bf16-graph": Variant("fast", "bf16", cuda_graph=True),
    "fast-compile": Variant("fast", compile_mode="default"),
    "fast-compile-heap": Variant("fast", compile_mode="default", cpu_heap=True),
    "fast-compile-heap-per-image": Variant(
        "fast", compile_mode="default", cpu_heap=True, cpu_kernel=False
    ),
    "fast-bf16-compile": Variant("fast", "bf16", compile_mode="default"),
    "fast-bf16-compile-heap": Variant("fast", "bf16", compile_mode="default", cpu_heap=True),
    "fast-bf16-compile-heap-per-image": Variant(
        "fast", "bf16", compile_mode="default", cpu_heap=True, cpu_kernel=False
    ),
    "fast-bf16-compile-graph": Variant("fast", "bf16", compile_mode="reduce-overhead"),
}
DEFAULT_VARIANTS = {
    "cpu": ["reference", "fast", "fast-bf16", "fast-bf16-heap", "fast-bf16-compile"],
    "cuda": ["reference", "fast", "fast-bf16", "fast-graph", "fast-bf16-graph"],
}
DEFAULT_BATCHES = {"cpu": [32], "cuda": [32, 128]}
DEFAULT_STEPS = {"cpu": (1, 2), "cuda": (10, 50)}  # (warm-up, timed)


def gp_train_size() -> int:
    """Training images of ``gp`` with the loader's default pool and the 10 % hold-out."""
    pool = inspect.signature(gp.load).parameters["n_train"].default
    return pool - max(1, round(VAL_FRACTION * pool))


#: data set -> (C, H, W) and training images: gp per its loader's default; the
#: others are the sizes of the study (FashionMNIST 60,000 less 10 %; TfaSR as in
#: the report; EuroSAT Industrial 2,500 of which 1,800 train after the test split).
DATASETS = {
    "gp": ((1, 32, 32), gp_train_size()),
    "fashionmnist": ((1, 32, 32), 54_000),
    "tfasr": ((1, 64, 64), 25_000),
    "eurosat": ((3, 64, 64), 1_800),
}


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    model = platform.processor() or "cpu"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        for line in cpuinfo.read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    return f"{model}, {torch.get_num_threads()} threads"


def default_out(device: torch.device) -> Path:
    if device.type == "cuda":
        slug = "-".join(torch.cuda.get_device_name(device).lower().split())
    else:
        slug = f"cpu-{os.cpu_count()}core"
    return RESULTS / f"train-speed-{slug}-{datetime.date.today().isoformat()}.json"


def reset_peak_memory(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
        return
    malloc_trim = getattr(ctypes.CDLL(None), "malloc_trim", None)  # glibc: free memory to OS
    if malloc_trim is not None:
        malloc_trim(0)
    try:  # Linux: "5" resets the peak resident set size (VmHWM) to the current one
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def peak_memory_mib(device: torch.device) -> float | None:
    """Peak GPU memory allocated by tensors, or on CPU the process's peak RSS."""
    if device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    status = Path("/proc/self/status")
    if not status.exists():
        return None
    for line in status.read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return None


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def make_batches(
    shape: tuple[int, int, int], batch: int, count: int, device: torch.device, seed: int
) -> list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]:
    """``count`` batches of smooth random fields with all pixels valid, and their contexts."""
    generator = torch.Generator(device).manual_seed(seed)
    sampler = ContextSampler()
    batches = []
    for _ in range(count):
        noise = torch.randn(batch, *shape, generator=generator, device=device)
        values = 3 * F.avg_pool2d(noise, 5, stride=1, padding=2)
        valid = torch.ones(batch, 1, *shape[1:], dtype=torch.bool, device=device)
        batches.append((values, valid, sampler(valid, generator)))
    return batches


def context_sampling_ms(shape: tuple[int, int, int], batch: int, repeats: int = 5) -> float:
    """Time of the trainer's per-step context sampling on the CPU, for one batch."""
    valid = torch.ones(batch, 1, *shape[1:], dtype=torch.bool)
    generator = torch.Generator().manual_seed(0)
    sampler = ContextSampler()
    start = time.perf_counter()
    for _ in range(repeats):
        sampler(valid, generator)
    return (time.perf_counter() - start) / repeats * 1e3


def run_variant(
    name: str,
    variant: Variant,
    shape: tuple[int, int, int],
    batch: int,
    warmup: int,
    steps: int,
    device: torch.device,
    seed: int,
) -> tuple[dict, list[float]]:
    """Train ``warmup + steps`` steps; return the row and the per-step losses."""
    batches = make_batches(shape, batch, warmup + steps, device, seed)
    torch.manual_seed(seed)
    model = GridConvCNP(y_channels=shape[0]).to(device)
    from npf.training import TrainConfig  # as in trainer_epoch: imported where used

    optimizer = torch.optim.Adam(model.parameters(), lr=TrainConfig.lr)
    scaling = ValueScaling()
    forward = CudaGraphModel(model) if variant.cuda_graph else model
    if variant.compile_mode is not None:
        torch._dynamo.reset()  # a fresh model per row: keep the recompile limit out of the way
        mode = None if variant.compile_mode == "default" else variant.compile_mode
        model.compile(mode=mode)
    autocast_dtype = torch.bfloat16 if variant.precision == "bf16" else None
    mark_step = variant.compile_mode == "reduce-overhead"

    def step(values: torch.Tensor, valid: torch.Tensor, context: torch.Tensor) -> torch.Tensor:
        if mark_step:
            torch.compiler.cudagraph_mark_step_begin()
        y, _ = scaling.to_model(values, context)
        with torch.autocast(
            device.type,
            dtype=autocast_dtype or torch.float32,
            enabled=autocast_dtype is not None,
            cache_enabled=False,
        ):
            mean, std = forward(y, context)
        loss, _ = gaussian_nll(mean.float(), std.float(), y, valid)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        return loss.detach()

    reset_peak_memory(device)
    with use_backend(variant.backend):
        started = time.perf_counter()
        losses = [step(*b) for b in batches[:warmup]]
        synchronize(device)
        warmup_s = time.perf_counter() - started
        started = time.perf_counter()
        losses += [step(*b) for b in batches[warmup:]]
        synchronize(device)
        elapsed = time.perf_counter() - started
    ms = elapsed / steps * 1e3
    row = {
        "shape": "x".join(map(str, shape)),
        "batch": batch,
        "variant": name,
        **asdict(variant),
        "ms_per_step": ms,
        "images_per_s": batch / (elapsed / steps),
        "peak_mib": peak_memory_mib(device),
        "warmup_s": warmup_s,
        "steps": steps,
        "epoch_s": {
            data: math.ceil(n / batch) * ms / 1e3
            for data, (data_shape, n) in DATASETS.items()
            if data_shape == shape
        },
    }
    return row, torch.stack(losses).tolist()


def trainer_epoch(dataset: str, device: torch.device, max_train: int) -> dict:
    """A real ``Trainer`` epoch (its default settings) on ``max_train`` rasters of ``dataset``.

    Images per second count the training steps only (``train_images_per_s`` of the
    history), so they compare with the rows above; ``epoch_s`` extrapolates to
    the data set's full training split.
    """
    from npf.data import load_splits
    from npf.training import TrainConfig, Trainer, build_model

    splits = load_splits(dataset)
    n_full = len(splits.train)
    splits.train = splits.train.subset(list(range(min(max_train, n_full))))
    splits.val = splits.val.subset(list(range(min(64, len(splits.val)))))
    config = TrainConfig(epochs=2, device=str(device), optimizer="adam")
    with tempfile.TemporaryDirectory() as out_dir:
        trainer = Trainer(build_model(splits.train.channels), splits, config, out_dir)
        epoch = trainer.fit(resume=False, progress=False).epochs[-1]  # the first warms up
    return {
        "dataset": dataset,
        "shape": "x".join(map(str, splits.train.shape)),
        "settings": trainer.settings,
        "train_images": len(splits.train),
        "full_train_images": n_full,
        "train_images_per_s": epoch["train_images_per_s"],
        "epoch_s": n_full / epoch["train_images_per_s"],
    }


HEADER = (
    f"{'shape':>8} {'batch':>5} {'variant':<24} {'ms/step':>9} {'img/s':>8} "
    f"{'x ref':>6} {'peak MiB':>9} {'loss dev':>9}  s/epoch"
)


def format_row(row: dict, reference_ms: dict) -> str:
    """One line of the table; ``x ref`` is the speed-up over the reference of its shape/batch."""
    start = f"{row['shape']:>8} {row['batch']:>5} {row['variant']:<24}"
    if "error" in row:
        return f"{start} {row['error']}"
    ref = reference_ms.get((row["shape"], row["batch"]))
    speedup = f"{ref / row['ms_per_step']:.2f}" if ref else "-"
    dev = row.get("loss_dev")
    peak = row["peak_mib"]
    epochs = ", ".join(f"{k} {v:.0f}" for k, v in row["epoch_s"].items())
    return (
        f"{start} {row['ms_per_step']:>9.1f} {row['images_per_s']:>8.1f} {speedup:>6} "
        f"{'-' if peak is None else f'{peak:.0f}':>9} "
        f"{'-' if dev is None else f'{dev:.1e}':>9}  {epochs}"
    )


def row_key(row: dict) -> tuple:
    """What a row measured: shape, batch, variant and CPU threads."""
    return row["shape"], row["batch"], row["variant"], row["run"]["threads"]


def parse_shape(text: str) -> tuple[int, int, int]:
    parts = tuple(int(p) for p in text.lower().split("x"))
    if len(parts) != 3:
        raise argparse.ArgumentTypeError(f"shape must look like 1x32x32, got {text!r}")
    return parts  # type: ignore[return-value]


def measure_in_child(args: argparse.Namespace, task: list[str]) -> dict:
    """Run one measurement in a fresh Python process and return its JSON result.

    A process per row keeps rows independent: the heap setting changes a process
    for good, and ``torch.compile`` and earlier variants leave caches, threads and
    a fragmented heap behind that would slow (or speed) the rows after them.
    """
    command = [sys.executable, __file__, "--device", args.device, "--seed", str(args.seed)]
    command += ["--warmup", str(args.warmup), "--steps", str(args.steps)]
    if args.threads:
        command += ["--threads", str(args.threads)]
    done = subprocess.run(command + ["--child", *task], capture_output=True, text=True)
    lines = done.stdout.strip().splitlines()
    if done.returncode != 0 or not lines:
        return {"error": (done.stderr.strip().splitlines() or ["no output"])[-1][:300]}
    return json.loads(lines[-1])


def child(args: argparse.Namespace, device: torch.device) -> None:
    """The child's side of :func:`measure_in_child`: one row or one trainer epoch."""
    kind, *task = args.child
    if kind == "trainer":
        dataset, max_train = task
        result = trainer_epoch(dataset, device, int(max_train))
    else:
        shape, batch, name = parse_shape(task[0]), int(task[1]), task[2]
        variant = VARIANTS[name]
        if not variant.cpu_kernel:
            os.environ["NPF_CPU_KERNEL"] = "0"  # read at the weight gradient's first call
        heap = variant.cpu_heap and serve_cpu_tensors_from_heap()
        row, losses = run_variant(
            name, variant, shape, batch, args.warmup, args.steps, device, args.seed
        )
        result = {"row": row | {"cpu_heap_applied": heap}, "losses": losses}
    print(json.dumps(result))


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--device", default="auto", help="cpu, cuda or auto (default)")
    parser.add_argument(
        "--shapes", nargs="*", type=parse_shape, default=[(1, 32, 32), (1, 64, 64), (3, 64, 64)]
    )
    parser.add_argument("--batch-sizes", nargs="+", type=int, help="default: cpu 32; cuda 32 128")
    parser.add_argument(
        "--variants", nargs="+", choices=list(VARIANTS), help="default depends on the device"
    )
    parser.add_argument("--warmup", type=int, help="warm-up steps (default: cpu 1, cuda 10)")
    parser.add_argument("--steps", type=int, help="timed steps (default: cpu 2, cuda 50)")
    parser.add_argument("--threads", type=int, help="CPU threads (default: torch's)")
    parser.add_argument(
        "--trainer-epochs",
        nargs="*",
        metavar="DATASET",
        help="also time a real Trainer epoch of --trainer-images rasters on these data sets "
        "(default when given without names: every data set that loads)",
    )
    parser.add_argument("--trainer-images", type=int, default=640)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--out", type=Path, help="JSON file (default: results/train-speed-<card>-<date>.json)"
    )
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    args = parser.parse_args(argv)

    device = torch.device(
        ("cuda" if torch.cuda.is_available() else "cpu") if args.device == "auto" else args.device
    )
    if args.threads:
        torch.set_num_threads(args.threads)
    kind = device.type
    variants = args.variants or DEFAULT_VARIANTS.get(kind, DEFAULT_VARIANTS["cpu"])
    variants = [v for v in variants if VARIANTS[v].runs_on(kind)]
    batch_sizes = args.batch_sizes or DEFAULT_BATCHES.get(kind, DEFAULT_BATCHES["cpu"])
    warmup, steps = DEFAULT_STEPS.get(kind, DEFAULT_STEPS["cpu"])
    args.warmup = warmup if args.warmup is None else args.warmup
    args.steps = steps if args.steps is None else args.steps
    if args.steps < 1 or args.warmup < 0:
        parser.error("need --steps >= 1 and --warmup >= 0")
    if args.child:
        child(args, device)
        return

    print(f"device: {device_name(device)}; torch {torch.__version__}; triton: {TRITON_AVAILABLE}")
    run = {
        "date": datetime.date.today().isoformat(),
        "commit": git_commit(),
        "command": " ".join(["train_speed.py", *(sys.argv[1:] if argv is None else argv)]),
        "threads": torch.get_num_threads(),
        "warmup": args.warmup,
        "process_per_row": True,
        # PyTorch's defaults: cuDNN convolutions (the 1 x 1 ones too) may use TF32 in "fp32"
        "cudnn_allow_tf32": torch.backends.cudnn.allow_tf32,
        "matmul_allow_tf32": torch.backends.cuda.matmul.allow_tf32,
    }
    # the reference first: the other rows of its shape and batch compare with it
    names = sorted(variants, key=lambda name: name != "reference")
    plan = [(shape, b, name) for shape in args.shapes for b in batch_sizes for name in names]
    print(HEADER)
    rows: list[dict] = []
    reference_ms: dict[tuple[str, int], float] = {}
    reference_losses: dict[tuple[str, int], list[float]] = {}
    sampling_ms: dict[tuple[str, int], float] = {}
    for shape, batch, name in plan:
        key = ("x".join(map(str, shape)), batch)
        if key not in sampling_ms:
            sampling_ms[key] = context_sampling_ms(shape, batch)
        measured = measure_in_child(args, ["row", key[0], str(batch), name])
        if "error" in measured:
            row = {"shape": key[0], "batch": batch, "variant": name, "error": measured["error"]}
            losses = None
        else:
            row, losses = measured["row"], measured["losses"]
        row["cpu_context_sampling_ms"] = sampling_ms[key]
        row["load_average_1min"] = os.getloadavg()[0]  # others' work on a shared machine
        row["run"] = run
        if losses is not None and name == "reference":
            reference_losses[key] = losses
            reference_ms[key] = row["ms_per_step"]
        if losses is not None:
            row["losses"] = losses
        if losses is not None and key in reference_losses:
            pairs = list(zip(losses, reference_losses[key], strict=True))
            finite = [math.isfinite(b) for _, b in pairs]
            if not all(finite):
                row["reference_diverged"] = True  # compare the steps before it did
                pairs = pairs[: finite.index(False)]
            scale = max(abs(b) for _, b in pairs)
            row["loss_dev"] = max(abs(a - b) for a, b in pairs) / scale
            row["loss_dev_per_step"] = max(abs(a - b) / abs(b) for a, b in pairs)
        rows.append(row)
        print(format_row(row, reference_ms), flush=True)

    print(f"\n{HEADER}\n{'-' * len(HEADER)}")
    print("\n".join(format_row(row, reference_ms) for row in rows))
    result = {
        "device": device_name(device),
        "device_type": kind,
        "date": run["date"],
        "torch": torch.__version__,
        "triton": TRITON_AVAILABLE,
        "datasets": {k: {"shape": list(s), "train_images": n} for k, (s, n) in DATASETS.items()},
        "rows": rows,
        "trainer_epochs": [],
    }
    if args.trainer_epochs is not None:
        print("\nreal Trainer epochs (default settings, Adam, batch 32):")
        for dataset in args.trainer_epochs or list(DATASETS):
            epoch = measure_in_child(args, ["trainer", dataset, str(args.trainer_images)])
            epoch |= {"dataset": dataset, "run": run, "load_average_1min": os.getloadavg()[0]}
            result["trainer_epochs"].append(epoch)
            if "error" in epoch:
                print(f"  {dataset:<13} {epoch['error']}")
            else:
                print(
                    f"  {dataset:<13} {epoch['shape']:>8} {epoch['train_images_per_s']:6.1f} img/s"
                    f"  -> {epoch['epoch_s']:,.0f} s per epoch of {epoch['full_train_images']:,}"
                )

    out = args.out or default_out(device)
    out.parent.mkdir(parents=True, exist_ok=True)
    if out.exists():  # merge: rows of this run replace rows of the same configuration
        old = json.loads(out.read_text())
        keys = {row_key(r) for r in rows}
        result["rows"] = [r for r in old.get("rows", []) if row_key(r) not in keys] + rows
        done = {(e["dataset"], e["run"]["threads"]) for e in result["trainer_epochs"]}
        result["trainer_epochs"] = [
            e
            for e in old.get("trainer_epochs", [])
            if (e["dataset"], e["run"]["threads"]) not in done
        ] + result["trainer_epochs"]
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
