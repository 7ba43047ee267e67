"""The SGD trials' summary (npf.study.sgd_trials): read from run folders, tabled and drawn."""

from __future__ import annotations

import json

import matplotlib
import pytest

from npf.study.sgd_trials import SgdTrial, plot_trials, trial_table

matplotlib.use("Agg")


def write_run(folder, dataset, steps, diverged=None, optimizer="sgd"):
    folder.mkdir()
    record = {
        "dataset": dataset,
        "parameters": {"optimizer": optimizer, "batch_size": 32, "lr": 1e-3},
        "epochs_trained": 0,
        "diverged": diverged,
        "wall_time_s": 12.0,
    }
    (folder / "run.json").write_text(json.dumps(record))
    (folder / "history.json").write_text(json.dumps({"epochs": [], "steps": steps}))
    return folder


def step(n, loss, norm):
    return {"epoch": 1, "step": n, "loss": loss, "grad_norm": norm}


def test_a_diverging_and_a_stalled_trial_are_told_apart(tmp_path) -> None:
    diverging = write_run(
        tmp_path / "a",
        "tfasr",
        [step(1, 900.0, 50.0), step(2, 400.0, 9000.0), step(3, None, None)],
        diverged="training diverged in epoch 1, batch 3 (loss nan)",
    )
    stalled = write_run(tmp_path / "b", "fashionmnist", [step(1, 70.0, 2.0), step(2, 69.0, 2.5)])
    trials = [SgdTrial.load(diverging), SgdTrial.load(stalled)]
    table = trial_table(trials)
    assert "| `tfasr` | 900 (step 1) | 400 (step 2) | 400 (step 2) | 9,000 (step 2) |" in table
    assert "NaN at step 3" in table
    huge = write_run(tmp_path / "c", "gp", [step(1, 2.5e15, 6e15)])
    assert "| 2.50e+15 (step 1) |" in trial_table([SgdTrial.load(huge)])
    assert "time limit at step 2, finite" in table
    fig = plot_trials(trials)
    loss_ax = fig.axes[0]
    assert len(loss_ax.lines) == 3  # two curves and the cross where tfasr's loss became NaN
    assert list(loss_ax.lines[0].get_ydata()) == [1.0, 400.0 / 900.0]


def test_an_adam_run_is_not_an_sgd_trial(tmp_path) -> None:
    folder = write_run(tmp_path / "adam", "gp", [step(1, 1.0, 1.0)], optimizer="adam")
    with pytest.raises(ValueError, match="not an SGD run"):
        SgdTrial.load(folder)
