"""The training notebook's run (npf.study.runs.TrainingRun): the gp learning curve against the
exact posterior, and a run that diverges."""

from __future__ import annotations

import json
import math

import matplotlib
import pytest
from test_parameters import train_defaults  # the train notebook's parameters cell, run

from npf.study.runs import TrainingRun

matplotlib.use("Agg")


def tiny_gp_run(tmp_path, **changes) -> TrainingRun:
    parameters = train_defaults() | {
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
    return TrainingRun.start(parameters | changes)


def test_learning_curve_measures_the_gap_to_the_exact_posterior(tmp_path) -> None:
    run = tiny_gp_run(tmp_path)
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


def test_a_diverging_run_stops_with_its_step_log(tmp_path) -> None:
    run = tiny_gp_run(tmp_path, optimizer="sgd", lr=1e9, epochs=1)
    history = run.fit()
    assert run.diverged and "diverged in epoch 1" in run.diverged
    assert not history.epochs and not math.isfinite(history.steps[-1]["loss"])
    fig = run.step_log()
    assert [line.get_label() for line in fig.axes[0].lines][-1] == "non-finite loss"
    assert (tmp_path / "step_log.png").is_file()
    assert run.learning_curve() is None  # no epoch to draw
    assert run.predict_test(progress=False) is None  # no model to score
    run.write_record(None)
    record = json.loads((tmp_path / "run.json").read_text())
    assert "diverged in epoch 1" in record["diverged"] and record["epochs_trained"] == 0
    assert not (tmp_path / "metrics.json").exists()


def test_a_run_stopped_before_its_first_epoch_ended_has_nothing_to_score(tmp_path) -> None:
    run = tiny_gp_run(tmp_path, time_limit_s=1e-9)  # stops after one step
    history = run.fit()
    assert not history.epochs and not run.diverged and (tmp_path / "last.pt").is_file()
    assert run.predict_test(progress=False) is None


def test_a_trained_run_without_its_best_checkpoint_is_an_error(tmp_path) -> None:
    run = tiny_gp_run(tmp_path, epochs=1)
    run.fit()
    (tmp_path / "best.pt").unlink()
    with pytest.raises(FileNotFoundError, match="best.pt is missing"):
        run.predict_test(progress=False)
