"""Score ConvCNP checkpoints of one data set side by side on the same seeded test contexts.

usage: .venv/bin/python scripts/compare_checkpoints.py --dataset gp \
           --checkpoints base=book/results/gp-long/best.pt wide=book/results/gp-long-ctx5/best.pt \
           --fractions 0.125 0.3 0.5 [--options '{"n_test": 64}'] [--out FILE.md]

Every checkpoint sees the contexts of ``notebooks/evaluate.ipynb`` (seed 0: a smaller
fraction's context is part of a larger one's), so its rows are comparable with that
notebook's. Prints, per fraction, each checkpoint's RMSE, NLL, 95 % coverage (mean over
images, with a 95 % interval of the mean) and, for the second checkpoint on, the paired
RMSE difference from the first; data sets with a known law add the exact posterior
(``oracle``) as the reference. Only ConvCNPs are run: kriging, the slow part of a full
evaluation, is on the evaluation pages.
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import xarray as xr

from npf import REPO_ROOT, provenance
from npf.data import load_splits
from npf.evaluation import evaluate
from npf.predictors import ConvCNP, GaussianProcessOracle, Predictor
from npf.scoring import summarise

METRICS = ("rmse", "nll", "coverage95")


def _parse_checkpoints(items: list[str]) -> dict[str, str]:
    checkpoints = {}
    for item in items:
        name, sep, path = item.partition("=")
        if not sep or not name or not path:
            raise SystemExit(f"--checkpoints takes NAME=PATH, got {item!r}")
        if name in checkpoints or name == "oracle":
            raise SystemExit(f"checkpoint name {name!r} is taken")
        checkpoints[name] = path
    return checkpoints


def _cell(values: np.ndarray) -> str:
    summary = summarise([{"x": float(v)} for v in values[np.isfinite(values)]])["x"]
    return f"{summary['mean']:.4f} ± {summary['ci95']:.4f}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--dataset", required=True)
    parser.add_argument("--data-dir", default=None)
    parser.add_argument("--checkpoints", nargs="+", required=True, metavar="NAME=PATH")
    parser.add_argument("--fractions", nargs="+", type=float, default=[0.125, 0.3, 0.5])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--options", type=json.loads, default={}, help="data set options, as JSON")
    parser.add_argument("--out", type=Path, default=None, help="also write the tables here")
    args = parser.parse_args(argv)
    checkpoints = _parse_checkpoints(args.checkpoints)
    started = time.perf_counter()
    test = load_splits(args.dataset, args.data_dir, seed=args.seed, **args.options).test
    scores: dict[str, xr.DataArray] = {}
    for name, path in checkpoints.items():
        convcnp = ConvCNP.load(REPO_ROOT / path)
        convcnp.check_fits(test)
        predictors: list[Predictor] = [convcnp]
        if test.truth is not None and not scores:
            predictors.append(GaussianProcessOracle(test.truth))
        evaluation = evaluate(
            predictors, test, args.fractions, seed=args.seed, focus_fraction=args.fractions[0]
        )
        if "oracle" in evaluation.scores["predictor"].values:
            scores["oracle"] = evaluation.scores.sel(predictor="oracle")
        scores[name] = evaluation.scores.sel(predictor="convcnp")
    first = next(iter(checkpoints))
    environment = provenance.environment("cpu")
    lines = [
        f"{len(test)} `{args.dataset}` test images (seed {args.seed}), {environment['cpu']} "
        f"({environment['cpu_cores']} cores), commit {environment['commit']}, "
        f"{environment['date_utc']}, in {(time.perf_counter() - started) / 60:.1f} min. "
        "Checkpoints: " + ", ".join(f"{n} = `{p}`" for n, p in checkpoints.items()) + ".",
    ]
    for fraction in args.fractions:
        lines += [
            "",
            f"Context {fraction:g} of the valid pixels",
            "",
            "| model | RMSE | NLL per pixel (nats) | 95 % coverage | RMSE minus "
            f"{first}'s (paired) | images better than {first} |",
            "|---|---:|---:|---:|---:|---:|",
        ]
        for name, table in scores.items():
            at = table.sel(fraction=fraction)
            cells = [_cell(at.sel(metric=metric).values) for metric in METRICS]
            if name in (first, "oracle"):
                cells += ["–", "–"]
            else:
                reference = scores[first].sel(fraction=fraction, metric="rmse").values
                difference = at.sel(metric="rmse").values - reference
                cells += [_cell(difference), f"{np.mean(difference < 0):.0%}"]
            lines.append(f"| {name} | " + " | ".join(cells) + " |")
    text = "\n".join(lines)
    print(text)
    if args.out is not None:
        args.out.write_text(text + "\n")


if __name__ == "__main__":
    main()
