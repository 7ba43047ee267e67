"""Plain-text summaries of a run."""

from __future__ import annotations

from npf.report import training_summary
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
