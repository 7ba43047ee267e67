"""Markdown tables, sentences and targets of the results pages."""

from __future__ import annotations

import numpy as np
import xarray as xr

from npf.study.tables import (
    coverage_table,
    group_table,
    markdown_table,
    metrics_table,
    paired_table,
    training_summary,
)
from npf.study.targets import target_checks, target_table
from npf.training import History


def epoch(number: int, val_loss: float, seconds: float) -> dict[str, float]:
    return {"epoch": number, "train_loss": val_loss + 1.0, "val_loss": val_loss, "seconds": seconds}


def test_training_summary_reports_the_true_median_epoch_time() -> None:
    times = [260.0, 265.2, 259.7, 264.8]  # median: the mean of 260.0 and 264.8
    losses = [5.0, 4.0, 4.5, 4.2]
    text = training_summary(
        History([epoch(i + 1, v, t) for i, (v, t) in enumerate(zip(losses, times, strict=True))])
    )
    assert "Median time per epoch: 262.4 s." in text
    assert "Lowest validation loss 4.0 (summed NLL per image) at epoch 2" in text
    assert "rose from one epoch to the next 1 time(s) out of 3" in text
    single = training_summary(History([epoch(1, 3.0, 7.0)]))
    assert single.endswith("Median time per epoch: 7.0 s.")


def test_training_summary_before_any_epoch() -> None:
    assert training_summary(History()) == "No epoch has been trained yet."


def scores(rmse: float, nll: float = 0.0, coverage95: float = 0.95) -> dict:
    values = {"rmse": rmse, "nll": nll, "coverage95": coverage95}
    return {key: {"mean": value, "ci95": 0.0} for key, value in values.items()}


def test_targets_are_checked_where_they_apply() -> None:
    dem = {0.125: {"convcnp": scores(10.0), "cubic": scores(11.0), "kriging": scores(9.5)}}
    checks = target_checks(dem, "tfasr")
    assert [met for _, _, met in checks] == [True, True, True]
    dem[0.125]["convcnp"] = scores(10.5, coverage95=0.90)
    assert [met for _, _, met in target_checks(dem, "tfasr")] == [False, True, False]
    gp = {0.125: {"convcnp": scores(1.0, nll=0.30), "oracle": scores(0.9, nll=0.21)}}
    assert target_checks(gp, "gp")[-1] == (
        "NLL within 0.10 nats/pixel of the oracle's",
        "gap +0.090",
        True,
    )
    gp[0.125]["convcnp"] = scores(1.0, nll=0.32)
    assert target_checks(gp, "gp")[-1][2] is False
    # without ConvCNP nothing can be judged; targets whose reference is missing are left out
    assert target_checks({0.125: {"cubic": scores(1.0)}}, "gp") == []
    assert [name for name, _, _ in target_checks(gp, "gp")] == [
        "95 % intervals cover 93-97 %",
        "NLL within 0.10 nats/pixel of the oracle's",
    ]
    assert "| no |" in target_table(target_checks(gp, "gp"))


def test_fashionmnist_and_eurosat_targets() -> None:
    fashion = {0.125: {"convcnp": scores(0.09), "linear": scores(0.13)}}
    assert target_checks(fashion, "fashionmnist")[-1] == (
        "RMSE <= 0.10 and at least 25 % below linear's",
        "0.09, 31 % below linear",
        True,
    )
    fashion[0.125]["linear"] = scores(0.11)
    assert target_checks(fashion, "fashionmnist")[-1][2] is False
    eurosat = {0.125: {"convcnp": scores(0.092), "linear": scores(0.094), "cubic": scores(0.1)}}
    assert [met for _, _, met in target_checks(eurosat, "eurosat")] == [True, True, True]


def test_markdown_tables_share_one_layout() -> None:
    assert markdown_table(["a", "b"], [["x", "1"]]) == "| a | b |\n|---|---:|\n| x | 1 |"
    results = {"convcnp": scores(0.5), "linear": {"rmse": {"mean": 0.6, "ci95": 0.01}}}
    table = metrics_table(results).splitlines()
    assert table[0].startswith("| predictor | RMSE | MAE | NLL per pixel (nats) |")
    assert table[3].startswith("| linear | 0.600 ± 0.010 | – |")
    # three significant digits of the smallest RMSE
    small = {"convcnp": {"rmse": {"mean": 0.0912, "ci95": 0.0014}}}
    assert "| convcnp | 0.0912 ± 0.0014 |" in metrics_table(small)
    summary = {
        f: {"convcnp": {f"coverage{c}": {"mean": c / 100, "ci95": 0} for c in (50, 90, 95)}}
        for f in (0.1, 0.5)
    }
    assert (
        coverage_table(summary).splitlines()[2]
        == "| convcnp | 50.0 / 90.0 / 95.0 | 50.0 / 90.0 / 95.0 |"
    )


def per_image_scores() -> xr.DataArray:
    rmse = np.array([[1.0, 2.0, 3.0, 4.0], [1.5, 2.5, 2.5, 4.5]])
    return xr.DataArray(
        np.stack([rmse, rmse / 2], axis=-1),
        dims=("predictor", "image", "metric"),
        coords={
            "predictor": ["convcnp", "linear"],
            "image": [3, 5, 8, 9],
            "metric": ["rmse", "mae"],
        },
    )


def test_paired_and_group_tables() -> None:
    table = paired_table(per_image_scores()).splitlines()
    assert table[0] == (
        "| versus | RMSE difference | images better | MAE difference | images better |"
    )
    # differences -0.5, -0.5, +0.5, -0.5: mean -0.25, ConvCNP lower on 3 of 4 images
    assert table[2].startswith("| linear | -0.25 ± ") and "| 75 % |" in table[2]
    groups = group_table(per_image_scores(), np.array(["a", "a", "b", "b"])).splitlines()
    assert groups[2:] == ["| a | 2 | 1.5 | 2 |", "| b | 2 | 3.5 | 3.5 |"]
