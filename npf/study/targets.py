"""The study's targets for ConvCNP at the report's context of 1/8, per data set."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

from npf.scoring import Summary
from npf.study.tables import markdown_table

#: the context fraction the targets are set at (the report's 1/8)
TARGET_FRACTION = 0.125


@dataclass(frozen=True)
class Target:
    """A named check of the scores at :data:`TARGET_FRACTION`; ``measure`` gives the
    text shown and whether the target is met, or ``None`` when it cannot be judged."""

    name: str
    measure: Callable[[Summary], tuple[str, bool] | None]


def _mean(results: Summary, predictor: str, metric: str) -> float | None:
    return results.get(predictor, {}).get(metric, {}).get("mean")


def _coverage(results: Summary) -> tuple[str, bool] | None:
    value = _mean(results, "convcnp", "coverage95")
    return None if value is None else (f"{100 * value:.1f} %", 0.93 <= value <= 0.97)


def _rmse_below(other: str) -> Callable[[Summary], tuple[str, bool] | None]:
    def measure(results: Summary) -> tuple[str, bool] | None:
        ours, theirs = _mean(results, "convcnp", "rmse"), _mean(results, other, "rmse")
        if ours is None or theirs is None:
            return None
        return f"{ours:.3g} vs {theirs:.3g}", ours < theirs

    return measure


def _rmse_near_kriging(results: Summary) -> tuple[str, bool] | None:
    ours, kriging = _mean(results, "convcnp", "rmse"), _mean(results, "kriging", "rmse")
    if ours is None or kriging is None:
        return None
    return f"ratio {ours / kriging:.3f}", ours / kriging <= 1.10


def _nll_near_oracle(results: Summary) -> tuple[str, bool] | None:
    ours, oracle = _mean(results, "convcnp", "nll"), _mean(results, "oracle", "nll")
    if ours is None or oracle is None:
        return None
    return f"gap {ours - oracle:+.3f}", ours - oracle <= 0.10


def _fashion_rmse(results: Summary) -> tuple[str, bool] | None:
    ours, linear = _mean(results, "convcnp", "rmse"), _mean(results, "linear", "rmse")
    if ours is None or linear is None:
        return None
    below = 1 - ours / linear
    return f"{ours:.3g}, {100 * below:.0f} % below linear", ours <= 0.10 and below >= 0.25


COVERAGE = Target("95 % intervals cover 93-97 %", _coverage)
TARGETS: dict[str, tuple[Target, ...]] = {
    "gp": (
        COVERAGE,
        Target("RMSE below cubic's", _rmse_below("cubic")),
        Target("RMSE below kriging's", _rmse_below("kriging")),
        Target("NLL within 0.10 nats/pixel of the oracle's", _nll_near_oracle),
    ),
    "tfasr": (
        COVERAGE,
        Target("RMSE below cubic's", _rmse_below("cubic")),
        Target("RMSE within 10 % of kriging's", _rmse_near_kriging),
    ),
    "eurosat": (
        COVERAGE,
        Target("RMSE below linear's", _rmse_below("linear")),
        Target("RMSE below cubic's", _rmse_below("cubic")),
    ),
    "fashionmnist": (
        COVERAGE,
        Target("RMSE <= 0.10 and at least 25 % below linear's", _fashion_rmse),
    ),
}


def target_checks(summary: dict[float, Summary], dataset: str) -> list[tuple[str, str, bool]]:
    """(target, measured, met) for each of ``dataset``'s targets that the scores at
    1/8 context can judge (none without ConvCNP or without that fraction)."""
    results = summary.get(TARGET_FRACTION, {})
    checks = []
    for target in TARGETS.get(dataset, (COVERAGE,)):
        if (measured := target.measure(results)) is not None:
            checks.append((target.name, *measured))
    return checks


def target_table(checks: Sequence[tuple[str, str, bool]]) -> str:
    """Markdown of :func:`target_checks`."""
    rows = [[name, value, "yes" if met else "no"] for name, value, met in checks]
    return markdown_table(["target (ConvCNP, context 1/8)", "measured", "met"], rows)
