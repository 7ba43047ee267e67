"""The report's optimiser on each data set: how SGD on the summed NLL starts, and where it breaks.

Reads the run folders that ``scripts/train_slice.sh <name>-sgd <name> -p optimizer sgd`` wrote
(``run.json`` and ``history.json``: the loss and gradient norm of each of a run's first steps,
then of every tenth) and sets them side by side as a table and a figure.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np
from matplotlib.figure import Figure

from npf.study.figures import PAGE_WIDTH, SMALL
from npf.study.tables import markdown_table


@dataclass
class SgdTrial:
    """One run of the report's setting: its data set, logged steps and how it ended."""

    dataset: str
    steps: list[dict[str, float | None]]
    epochs_trained: int
    diverged: str | None

    @classmethod
    def load(cls, folder: Path) -> SgdTrial:
        """The trial in ``folder`` (``run.json`` and ``history.json``)."""
        record = json.loads((folder / "run.json").read_text())
        history = json.loads((folder / "history.json").read_text())
        parameters = record["parameters"]
        if parameters["optimizer"] != "sgd":
            raise ValueError(f"{folder} is not an SGD run (optimizer {parameters['optimizer']!r})")
        return cls(
            dataset=record["dataset"],
            steps=history["steps"],
            epochs_trained=record["epochs_trained"],
            diverged=record["diverged"],
        )

    @property
    def finite(self) -> list[dict[str, float | None]]:
        """The logged steps with a finite loss."""
        return [s for s in self.steps if s["loss"] is not None and math.isfinite(s["loss"])]

    @property
    def outcome(self) -> str:
        last = self.steps[-1]["step"] if self.steps else 0
        if self.diverged:
            return f"NaN at step {last}"
        if self.epochs_trained:
            return f"{self.epochs_trained} epoch(s), finite"
        return f"time limit at step {last}, finite"


def _number(value: float) -> str:
    return f"{value:.2e}" if abs(value) >= 1e6 else f"{value:,.0f}"


def trial_table(trials: list[SgdTrial]) -> str:
    """Per data set: the first logged loss, the lowest and the last finite logged loss,
    the largest gradient norm, and how the run ended, as Markdown."""
    rows = []
    for trial in trials:
        finite = trial.finite
        lowest = min(finite, key=lambda s: s["loss"]) if finite else None
        norms = [s for s in finite if s["grad_norm"] is not None]
        largest = max(norms, key=lambda s: s["grad_norm"]) if norms else None
        rows.append(
            [
                f"`{trial.dataset}`",
                f"{_number(finite[0]['loss'])} (step {finite[0]['step']})" if finite else "–",
                f"{_number(lowest['loss'])} (step {lowest['step']})" if lowest else "–",
                f"{_number(finite[-1]['loss'])} (step {finite[-1]['step']})" if finite else "–",
                f"{_number(largest['grad_norm'])} (step {largest['step']})" if largest else "–",
                trial.outcome,
            ]
        )
    header = [
        "data set",
        "first logged loss",
        "lowest loss",
        "last finite loss",
        "largest gradient norm",
        "end",
    ]
    return markdown_table(header, rows)


def plot_trials(trials: list[SgdTrial]) -> Figure:
    """The loss (relative to the run's first logged step) and the gradient norm against the step,
    one line per data set; a non-finite loss is marked with a cross at the top."""
    fig, (loss_ax, norm_ax) = plt.subplots(
        1, 2, figsize=(PAGE_WIDTH, 3.6), layout="constrained", sharex=True
    )
    colours = plt.get_cmap("tab10").colors
    for trial, colour in zip(trials, colours, strict=False):
        finite = trial.finite
        if not finite:
            continue
        step = np.array([s["step"] for s in finite])
        loss = np.array([s["loss"] for s in finite]) / finite[0]["loss"]
        norm = np.array([np.nan if s["grad_norm"] is None else s["grad_norm"] for s in finite])
        loss_ax.plot(step, loss, ".-", ms=3, lw=0.8, color=colour, label=trial.dataset)
        norm_ax.plot(step, norm, ".-", ms=3, lw=0.8, color=colour, label=trial.dataset)
        if trial.diverged:
            top = loss_ax.get_xaxis_transform()  # x in steps, y in axes fractions
            loss_ax.plot(
                trial.steps[-1]["step"], 0.95, "x", ms=9, mew=2, color=colour, transform=top
            )
    loss_ax.set_xscale("log")
    loss_ax.set_yscale("log")
    norm_ax.set_yscale("log")
    loss_ax.set_ylabel("loss / first logged loss", fontsize=SMALL)
    norm_ax.set_ylabel("gradient norm", fontsize=SMALL)
    for ax in (loss_ax, norm_ax):
        ax.set_xlabel("training step", fontsize=SMALL)
        ax.tick_params(labelsize=SMALL)
        ax.grid(alpha=0.3, which="both")
    loss_ax.legend(fontsize=SMALL, title="x: the loss became NaN", title_fontsize=SMALL)
    return fig
