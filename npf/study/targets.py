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
    """A named check of ConvCNP's ``metric`` at :data:`TARGET_FRACTION`, alone or against
    the ``reference`` predictor's; ``judge(ours, theirs)`` gives the text shown and
    whether the target is met."""

    name: str
    metric: str
    judge: Callable[[float, float], tuple[str, bool]]
    reference: str | None = None

    def measure(self, results: Summary) -> tuple[str, bool] | None:
        """The judgement, or ``None`` when ConvCNP's or the reference's score is missing."""
        ours = _mean(results, "convcnp", self.metric)
        theirs = _mean(results, self.reference, self.metric) if self.reference else 0.0
        if ours is None or theirs is None:
            return None
        return self.judge(ours, theirs)


def _mean(results: Summary, predictor: str, metric: str) -> float | None:
    return results.get(predictor, {}).get(metric, {}).get("mean")


def _rmse_below(reference: str) -> Target:
    return Target(
        f"RMSE below {reference}'s",
        "rmse",
        lambda ours, theirs: (f"{ours:.3g} vs {theirs:.3g}", ours < theirs),
        reference,
    )


def _fashion_rmse(ours: float, linear: float) -> tuple[str, bool]:
    below = 1 - ours / linear
    return f"{ours:.3g}, {100 * below:.0f} % below linear", ours <= 0.10 and below >= 0.25


COVERAGE = Target(
    "95 % intervals cover 93-97 %",
    "coverage95",
    lambda value, _: (f"{100 * value:.1f} %", 0.93 <= value <= 0.97),
)
TARGETS: dict[str, tuple[Target, ...]] = {
    "gp": (
        COVERAGE,
        _rmse_below("cubic"),
        _rmse_below("kriging"),
        Target(
            "NLL within 0.10 nats/pixel of the oracle's",
            "nll",
            lambda ours, oracle: (f"gap {ours - oracle:+.3f}", ours - oracle <= 0.10),
            "oracle",
        ),
    ),
    "tfasr": (
        COVERAGE,
        _rmse_below("cubic"),
        Target(
            "RMSE within 10 % of kriging's",
            "rmse",
            lambda ours, kriging: (f"ratio {ours / kriging:.3f}", ours / kriging <= 1.10),
            "kriging",
        ),
    ),
    "eurosat": (COVERAGE, _rmse_below("linear"), _rmse_below("cubic")),
    "fashionmnist": (
        COVERAGE,
        Target("RMSE <= 0.10 and at least 25 % below linear's", "rmse", _fashion_rmse, "linear"),
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
