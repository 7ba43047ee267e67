"""Cost of predicting one field from n observations: ConvCNP, kriging and griddata.

Run by hand, never from the test suite::

    .venv/bin/python benchmarks/prediction_cost.py                 # CPU (and CUDA if present)
    .venv/bin/python benchmarks/prediction_cost.py --budget-s 600 --total-budget-s 3600

The density of observations is fixed at the report's 1/8 of the pixels and
the grid grows: square sides from 32 to 1024 pixels in steps of sqrt(2), so
n = side^2 / 8 doubles from 128 to 131,072 and every cost law shows as a
straight line of its own slope against n. The field is smooth random noise
(white noise under a Gaussian filter of 4 px, unit variance) and the n observed
pixels are drawn at random (seeded). Every method predicts every pixel:

Every method is a :class:`npf.predictors.Predictor` called on one raster:

* ``convcnp-cpu`` / ``convcnp-cuda``: :class:`~npf.predictors.ConvCNP`, one
  forward pass of the report's GridConvCNP (128 channels, 5 blocks, kernel 9)
  in eval mode; its cost does not depend on the weights, so the model is untrained;
* ``griddata-nearest`` / ``-linear`` / ``-cubic``: :class:`~npf.predictors.Interpolation`;
* ``kriging-exact``: :class:`~npf.predictors.OrdinaryKriging` on the global
  system, the variogram fitted to the field's observations (fit included);
* ``kriging-local32``: the same with the 32 nearest observations per pixel
  (PyKrige's moving window), fit included.

Every method runs on ``--threads`` threads (default 1: torch, OpenMP and
OpenBLAS are pinned, the script restarting itself with the environment set),
which measures the algorithms rather than the scheduling on a shared machine:
with two busy cores, multi-threaded OpenBLAS made even the tiny LAPACK calls of
a Delaunay triangulation take from milliseconds to seconds at random. Each
(method, n) runs once, or up to 3 times while under 1 s in all (the median is
kept), after one untimed warm-up per method. Runs that would pass a
time budget are not started, and nothing is extrapolated: a method is skipped
at larger n once a run took longer than ``--budget-s``, or when its last time
scaled by its cost model (below) exceeds the budget, or when the estimated
memory exceeds ``--memory-gb``; the script stops starting runs after
``--total-budget-s``. Every skip is recorded with its reason. Slopes are least
squares fits of log(seconds) on log(n), over all measured points and over the
larger half of them (where the dominant term shows).

Writes ``benchmarks/results/prediction-cost-<cpu|cuda>-<date>.json``, a log-log
figure and a Markdown table (default: under ``book/beyond/``).
"""

from __future__ import annotations

import argparse
import datetime
import json
import math
import os
import statistics
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import matplotlib.pyplot as plt
import numpy as np
import torch
from scipy.ndimage import gaussian_filter

from npf import REPO_ROOT, provenance
from npf.baselines import BASELINES
from npf.model import GridConvCNP
from npf.predictors import ConvCNP, Interpolation, OrdinaryKriging, Prediction, Predictor, Tasks
from npf.scaling import ValueScaling

RESULTS = REPO_ROOT / "benchmarks" / "results"
BOOK = REPO_ROOT / "book" / "beyond"
SIDES = (32, 45, 64, 90, 128, 181, 256, 362, 512, 724, 1024)
CONTEXT_FRACTION = 1 / 8
NEIGHBOURS = 32
REPEAT_SECONDS = 1.0
MAX_REPEATS = 3


@dataclass(frozen=True)
class Method:
    """A predictor, named for the benchmark, with the models the skip rules use.

    ``cost(n, pixels)`` is relative work (only ratios matter);
    ``memory(n, pixels)`` the estimated peak bytes.
    """

    name: str
    predictor: Predictor
    cost: Callable[[int, int], float]
    memory: Callable[[int, int], float]
    cost_model: str

    def run(self, field: np.ndarray, context: np.ndarray) -> Prediction:
        """Predict every pixel of ``field`` from its ``context`` pixels."""
        return self.predictor.predict(Tasks.of_raster(field, context))


def smooth_field(side: int, rng: np.random.Generator) -> np.ndarray:
    """Unit-variance white noise smoothed by a 4-pixel Gaussian filter."""
    field = gaussian_filter(rng.standard_normal((side, side)), 4.0, mode="wrap")
    return field / field.std()


def convcnp_method(device: str) -> Method:
    torch.manual_seed(0)
    model = GridConvCNP(1).to(device).eval()
    return Method(
        f"convcnp-{device}",
        ConvCNP(model, ValueScaling(), device=device),  # returns to the CPU: synchronised
        cost=lambda n, pixels: pixels,
        memory=lambda n, pixels: 4e3 * pixels,  # measured: about 4 GB at 1024 x 1024 on CPU
        cost_model="pixels",
    )


def griddata_method(kind: str) -> Method:
    return Method(
        f"griddata-{kind}",
        Interpolation(kind),
        cost=lambda n, pixels: pixels + n * math.log2(n),
        memory=lambda n, pixels: 200.0 * pixels + 1e3 * n,
        cost_model="pixels + n log n",
    )


def kriging_methods() -> list[Method]:
    return [
        Method(
            "kriging-exact",
            OrdinaryKriging(),
            cost=lambda n, pixels: n**3 / 3 + pixels * n**2,
            # the (n, n) covariance and its factor, plus a chunk of 4096 targets
            memory=lambda n, pixels: 8.0 * (2 * n**2 + 3 * 4096 * n),
            cost_model="n^3 / 3 + pixels n^2",
        ),
        Method(
            f"kriging-local{NEIGHBOURS}",
            OrdinaryKriging(NEIGHBOURS),
            cost=lambda n, pixels: n**2 + pixels * NEIGHBOURS**3,
            # PyKrige builds every pairwise distance and the full (n+1)^2 matrix
            memory=lambda n, pixels: 33.0 * n**2 + 500.0 * pixels,
            cost_model=f"n^2 + pixels {NEIGHBOURS}^3",
        ),
    ]


def time_call(method: Method, field: np.ndarray, context: np.ndarray) -> list[float]:
    """Seconds of up to ``MAX_REPEATS`` calls, stopping once ``REPEAT_SECONDS`` are spent."""
    seconds: list[float] = []
    while len(seconds) < MAX_REPEATS and sum(seconds) < REPEAT_SECONDS:
        start = time.perf_counter()
        method.run(field, context)
        seconds.append(time.perf_counter() - start)
    return seconds


def fitted_slope(ns: Sequence[int], seconds: Sequence[float]) -> float | None:
    """Slope of log(seconds) against log(n); ``None`` with fewer than two points."""
    if len(ns) < 2:
        return None
    return float(np.polyfit(np.log(ns), np.log(seconds), 1)[0])


def run_benchmark(
    methods: Sequence[Method],
    sides: Sequence[int],
    budget_s: float,
    total_budget_s: float,
    memory_gb: float,
    seed: int,
) -> list[dict[str, Any]]:
    """Time every method on every grid side, in increasing size, under the skip rules."""
    rng = np.random.default_rng(seed)
    warm_field = smooth_field(min(sides), rng)
    warm_context = rng.random(warm_field.shape) < 0.05
    for method in methods:
        method.run(warm_field, warm_context)
    started = time.perf_counter()
    last: dict[str, tuple[int, float, float]] = {}  # name -> (n, cost, seconds)
    over_budget: set[str] = set()
    records = []
    for side in sorted(sides):
        pixels = side * side
        n = round(CONTEXT_FRACTION * pixels)
        field = smooth_field(side, rng)
        context = np.zeros(pixels, dtype=bool)
        context[rng.choice(pixels, n, replace=False)] = True
        context = context.reshape(side, side)
        for method in methods:
            record: dict[str, Any] = {"method": method.name, "n": n, "grid": side}
            cost = method.cost(n, pixels)
            need_gb = method.memory(n, pixels) / 1e9
            if time.perf_counter() - started > total_budget_s:
                record |= {"status": "skipped: over total budget"}
            elif need_gb > memory_gb:
                record |= {
                    "status": "skipped: over memory",
                    "reason": f"needs about {need_gb:.1f} GB > {memory_gb:g} GB",
                }
            elif method.name in over_budget:
                record |= {
                    "status": "skipped: over budget",
                    "reason": f"a smaller n already took over {budget_s:g} s",
                }
            elif method.name in last and (
                last[method.name][2] * cost / last[method.name][1] > budget_s
            ):
                previous_n, _, previous_s = last[method.name]
                record |= {
                    "status": "skipped: over budget",
                    "reason": (
                        f"n={previous_n} took {previous_s:.2f} s; its cost model "
                        f"({method.cost_model}) puts this run above {budget_s:g} s"
                    ),
                }
            else:
                times = time_call(method, field, context)
                seconds = statistics.median(times)
                record |= {"status": "measured", "seconds": seconds, "repeats": times}
                last[method.name] = (n, cost, seconds)
                if seconds > budget_s:
                    over_budget.add(method.name)
            records.append(record)
            shown = f"{record['seconds']:.3f} s" if "seconds" in record else record["status"]
            print(f"{method.name:18s} n={n:>7,d} grid {side:>4d}^2  {shown}", flush=True)
    return records


def slopes(records: Sequence[dict[str, Any]]) -> dict[str, dict[str, Any]]:
    """Per method: slope over all measured n and over the larger half of them.

    The larger half (at least two points) shows the dominant term, free of the
    fixed overheads that flatten the curves at small n.
    """
    result = {}
    for name in dict.fromkeys(r["method"] for r in records):
        measured = [r for r in records if r["method"] == name and r["status"] == "measured"]
        ns = [r["n"] for r in measured]
        seconds = [r["seconds"] for r in measured]
        half = min(len(ns) // 2, max(len(ns) - 2, 0))
        result[name] = {
            "slope_all": fitted_slope(ns, seconds),
            "slope_larger_half": fitted_slope(ns[half:], seconds[half:]),
            "measured_n": ns,
        }
    return result


def plot(records: Sequence[dict[str, Any]], fitted: dict[str, dict[str, Any]], path: Path) -> None:
    """Log-log seconds against n, one line per method, slopes in the legend."""
    fig, ax = plt.subplots(figsize=(7.5, 5))
    for name, fit in fitted.items():
        measured = [r for r in records if r["method"] == name and r["status"] == "measured"]
        skipped = [r["n"] for r in records if r["method"] == name and r["status"] != "measured"]
        slope = (
            "" if fit["slope_larger_half"] is None else f", slope {fit['slope_larger_half']:.2f}"
        )
        label = name + slope + (f"; n >= {min(skipped):,} skipped" if skipped else "")
        ax.plot([r["n"] for r in measured], [r["seconds"] for r in measured], "o-", label=label)
    measured = [r for r in records if r["status"] == "measured"]
    n0 = min(r["n"] for r in measured)
    t0 = min(r["seconds"] for r in measured)
    guide = np.array([n0, max(r["n"] for r in records)], dtype=float)
    for power, style in ((1, "--"), (3, ":")):
        ax.plot(
            guide,
            t0 * (guide / n0) ** power,
            style,
            color="0.6",
            lw=1,
            label="∝ n" + "¹³"[power // 3],
        )
    ax.set_ylim(bottom=0.5 * t0, top=2 * max(r["seconds"] for r in measured))
    ax.set_xscale("log")
    ax.set_yscale("log")
    ax.set_xlabel("observations n (1/8 of the pixels: grid from 32² to 1024²)")
    ax.set_ylabel("seconds to predict every pixel of one field")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize=8)
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=150)
    plt.close(fig)


def markdown_table(records: Sequence[dict[str, Any]], fitted: dict[str, dict[str, Any]]) -> str:
    """Seconds per n (rows) and method (columns); skips are named; slopes last."""
    names = list(fitted)
    lines = ["| n | grid | " + " | ".join(names) + " |", "|---:|---:|" + "---:|" * len(names)]
    for n in dict.fromkeys(r["n"] for r in records):
        row = {r["method"]: r for r in records if r["n"] == n}
        cells = [
            f"{row[name]['seconds']:.3g}"
            if row[name]["status"] == "measured"
            else row[name]["status"].removeprefix("skipped: ")
            for name in names
        ]
        side = row[names[0]]["grid"]
        lines.append(f"| {n:,} | {side}² | " + " | ".join(cells) + " |")
    for key, label in (("slope_all", "slope, all"), ("slope_larger_half", "slope, larger half")):
        cells = ["–" if fitted[name][key] is None else f"{fitted[name][key]:.2f}" for name in names]
        lines.append(f"| {label} | | " + " | ".join(cells) + " |")
    return "\n".join(lines)


THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def pin_threads(threads: int) -> None:
    """Restart this script with every thread pool set to ``threads`` (read at library load)."""
    wanted = str(threads)
    if any(os.environ.get(variable) != wanted for variable in THREAD_VARIABLES):
        os.environ.update(dict.fromkeys(THREAD_VARIABLES, wanted))
        os.execv(sys.executable, [sys.executable, *sys.argv])
    torch.set_num_threads(threads)


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--sides", type=int, nargs="+", default=list(SIDES), help="grid sides")
    parser.add_argument("--budget-s", type=float, default=90.0, help="per-run time budget")
    parser.add_argument("--total-budget-s", type=float, default=270.0)
    parser.add_argument("--memory-gb", type=float, default=6.0)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="threads of every method")
    parser.add_argument("--no-cuda", action="store_true", help="skip ConvCNP on CUDA")
    parser.add_argument("--out", type=Path, default=None, help="JSON path")
    parser.add_argument("--figure", type=Path, default=BOOK / "prediction-cost.png")
    parser.add_argument("--table", type=Path, default=BOOK / "prediction-cost.md")
    args = parser.parse_args(argv)
    pin_threads(args.threads)

    cuda = torch.cuda.is_available() and not args.no_cuda
    methods = [convcnp_method("cpu")] + ([convcnp_method("cuda")] if cuda else [])
    methods += [griddata_method(kind) for kind in BASELINES] + kriging_methods()
    load_before = os.getloadavg()
    records = run_benchmark(
        methods, args.sides, args.budget_s, args.total_budget_s, args.memory_gb, args.seed
    )
    fitted = slopes(records)
    tag = "cuda" if cuda else "cpu"
    out = args.out or RESULTS / f"prediction-cost-{tag}-{datetime.date.today().isoformat()}.json"
    result = {
        "benchmark": "prediction_cost",
        "command": " ".join(["python", "benchmarks/prediction_cost.py", *sys.argv[1:]]),
        "environment": provenance.environment("cuda" if cuda else "cpu"),
        "load_average_1_5_15min": {"before": load_before, "after": os.getloadavg()},
        "parameters": {
            "budget_s": args.budget_s,
            "total_budget_s": args.total_budget_s,
            "memory_gb": args.memory_gb,
            "seed": args.seed,
            "threads": args.threads,
            "neighbours": NEIGHBOURS,
            "context_fraction": CONTEXT_FRACTION,
            "repeats": f"up to {MAX_REPEATS} while under {REPEAT_SECONDS:g} s; median kept",
        },
        "cost_models": {m.name: m.cost_model for m in methods},
        "records": records,
        "slopes": fitted,
    }
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2))
    plot(records, fitted, args.figure)
    args.table.parent.mkdir(parents=True, exist_ok=True)
    args.table.write_text(markdown_table(records, fitted) + "\n")
    print(markdown_table(records, fitted))
    print(f"wrote {out}, {args.figure} and {args.table}")


if __name__ == "__main__":
    main()
