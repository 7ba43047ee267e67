"""The gp learning curve: validation scores against the exact posterior on the same tasks."""

from __future__ import annotations

from pathlib import Path

import matplotlib
import nbformat

from npf.study.runs import TrainingRun

matplotlib.use("Agg")
NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "train.ipynb"


def notebook_defaults() -> dict:
    """The train notebook's parameters cell, executed."""
    notebook = nbformat.read(NOTEBOOK, as_version=4)
    cell = next(c for c in notebook.cells if "parameters" in c.metadata.get("tags", []))
    namespace: dict = {}
    exec(cell.source, namespace)
    return {k: v for k, v in namespace.items() if not k.startswith("__")}


def test_learning_curve_measures_the_gap_to_the_exact_posterior(tmp_path) -> None:
    parameters = notebook_defaults() | {
        "dataset": "gp",
        "dataset_options": {"n_train": 64, "n_test": 8, "size": 16},
        "epochs": 2,
        "batch_size": 16,
        "optimizer": "adam",
        "hidden_channels": 16,
        "n_blocks": 2,
        "kernel_size": 5,
        "compile": False,
        "precision": "fp32",
        "out_dir": str(tmp_path),
        "resume": False,
    }
    run = TrainingRun.start(parameters)
    history = run.fit()
    reference = run.validation_reference
    last = history.epochs[-1]
    # the exact posterior beats a model trained for two epochs on the same tasks
    assert 0 < reference["val_heldout_rmse"] < last["val_heldout_rmse"]
    assert reference["val_heldout_nll"] < last["val_heldout_nll"]
    fig = run.learning_curve()
    gap_ax, rmse_ax = fig.axes
    assert gap_ax.get_yscale() == "log" and len(gap_ax.lines[0].get_xdata()) == 2
    assert list(gap_ax.lines[0].get_xdata()) == [64 - 6, 2 * (64 - 6)]  # fields seen
    assert (tmp_path / "learning_curve.png").is_file()
