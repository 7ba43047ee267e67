"""Plain-text summaries of a run for the results pages: tables and sentences."""

from __future__ import annotations

import statistics

from npf.training import History

METRIC_COLUMNS: tuple[tuple[str, str], ...] = (
    ("rmse", "RMSE"),
    ("mae", "MAE"),
    ("nll", "NLL / pixel"),
    ("crps", "CRPS"),
    ("coverage95", "95 % coverage"),
    ("mean_std", "mean std"),
)


def metrics_table(results: dict[str, dict[str, dict[str, float]]], digits: int = 3) -> str:
    """Markdown table: one row per predictor, ``mean ± 95 % CI`` over images."""
    header = "| predictor | " + " | ".join(label for _, label in METRIC_COLUMNS) + " |"
    rule = "|---|" + "---:|" * len(METRIC_COLUMNS)
    rows = [header, rule]
    for predictor, scores in results.items():
        cells = []
        for key, _ in METRIC_COLUMNS:
            if key in scores:
                cells.append(f"{scores[key]['mean']:.{digits}f} ± {scores[key]['ci95']:.{digits}f}")
            else:
                cells.append("–")
        rows.append(f"| {predictor} | " + " | ".join(cells) + " |")
    return "\n".join(rows)


def training_summary(history: History) -> str:
    """Best epoch, whether validation loss rose after it, and time per epoch."""
    epochs = history.epochs
    if not epochs:
        return "No epoch has been trained yet."
    best = history.best_epoch
    best_loss = min(e["val_loss"] for e in epochs)
    rises = sum(b["val_loss"] > a["val_loss"] for a, b in zip(epochs, epochs[1:], strict=False))
    median_seconds = statistics.median(e["seconds"] for e in epochs)
    after_best = [e["val_loss"] for e in epochs if e["epoch"] > best]
    trend = (
        f"after it, validation loss stayed above the best, ending at {after_best[-1]:.1f}"
        if after_best
        else "it is the last epoch trained"
    )
    return (
        f"{len(epochs)} epochs trained. Lowest validation loss {best_loss:.1f} "
        f"(summed NLL per image) at epoch {best}; {trend}. Validation loss rose from "
        f"one epoch to the next {rises} time(s) out of {len(epochs) - 1}. "
        f"Median time per epoch: {median_seconds:.1f} s."
    )
