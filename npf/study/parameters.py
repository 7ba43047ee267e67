"""Checks of a notebook's parameters, run before it loads any data.

Papermill runs ``-p name value`` as an assignment in a cell it injects (starting with
``# Parameters``) after the notebook's ``parameters`` cell: a misspelt name would define an
unused variable and the run go on with the default, and a value of the wrong kind would fail
late, perhaps after training. :func:`check_parameters` stops the run at once instead, naming each
unknown or invalid parameter, the values it accepts and the notebook's valid names.
"""

from __future__ import annotations

import ast
import difflib
import math
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch

from npf.data import DATASETS
from npf.training import LOSS_PIXELS, OPTIMIZERS, TRAIN_PRECISIONS

INJECTED_HEADER = "# Parameters"  # first line of the cell papermill injects


class ParameterError(ValueError):
    """A notebook parameter is unknown, or has a value the notebook cannot use."""


@dataclass(frozen=True)
class Rule:
    """The values one parameter accepts.

    ``expected`` describes them in error messages; ``{name}`` in it stands for the parameter.
    """

    expected: str
    accepts: Callable[[Any], bool]


@dataclass(frozen=True)
class NotebookParameters:
    """A rule per parameter of a notebook, and conditions across parameters.

    ``relations`` are ``(message, condition)`` pairs: ``condition(values)`` must hold, else
    ``message.format(**values)`` is reported.
    """

    rules: Mapping[str, Rule]
    relations: tuple[tuple[str, Callable[[Mapping[str, Any]], bool]], ...] = ()

    def values(self, namespace: Mapping[str, Any]) -> dict[str, Any]:
        """The parameters' values in ``namespace`` (a notebook's globals), checked first."""
        check_parameters(self, namespace)
        return {name: namespace[name] for name in self.rules}


def _is_whole(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value)


def whole(minimum: int) -> Rule:
    """A whole number (not a float, not a bool) of at least ``minimum``."""
    return Rule(f"a whole number >= {minimum}", lambda v: _is_whole(v) and v >= minimum)


def odd(minimum: int) -> Rule:
    """An odd whole number of at least ``minimum``."""
    return Rule(
        f"an odd whole number >= {minimum}", lambda v: _is_whole(v) and v >= minimum and v % 2 == 1
    )


def number(
    low: float,
    high: float = math.inf,
    *,
    include_low: bool = False,
    include_high: bool = False,
) -> Rule:
    """A finite int or float between ``low`` and ``high``, each bound included or not."""

    def accepts(v: Any) -> bool:
        if not _is_number(v):
            return False
        above = v >= low if include_low else v > low
        below = v <= high if include_high else v < high
        return above and below

    if math.isinf(high):
        expected = f"a number {'>=' if include_low else '>'} {low:g}"
    else:
        expected = (
            f"a number in {'[' if include_low else '('}{low:g}, {high:g}"
            f"{']' if include_high else ')'}"
        )
    return Rule(expected, accepts)


def one_of(options: Iterable[str]) -> Rule:
    """One of the strings ``options``."""
    options = tuple(options)
    return Rule(f"one of {', '.join(map(repr, options))}", lambda v: v in options)


def flag() -> Rule:
    """``True`` or ``False``."""
    return Rule("True or False", lambda v: isinstance(v, bool))


def path() -> Rule:
    """A path, as a non-empty string."""
    return Rule("a path (a string)", lambda v: isinstance(v, str) and bool(v))


def mapping() -> Rule:
    """A dictionary with string keys, passed with ``-y``."""
    return Rule(
        'a dictionary, given with -y, e.g. -y "{name}: {{n_train: 512}}"',
        lambda v: isinstance(v, dict) and all(isinstance(k, str) for k in v),
    )


def fractions() -> Rule:
    """A non-empty list of numbers in (0, 1), passed with ``-y``."""
    share = number(0, 1)
    return Rule(
        'a non-empty list of numbers in (0, 1), given with -y, e.g. -y "{name}: [0.05, 0.5]"',
        lambda v: isinstance(v, list) and bool(v) and all(share.accepts(x) for x in v),
    )


def device(auto: bool) -> Rule:
    """A torch device name such as ``cpu`` or ``cuda:1``; also ``auto`` if ``auto``."""

    def accepts(v: Any) -> bool:
        if not isinstance(v, str):
            return False
        if v == "auto":
            return auto
        try:
            torch.device(v)
        except (RuntimeError, ValueError):
            return False
        return True

    names = "'cpu', 'cuda' or 'cuda:1'"
    return Rule(f"'auto' or a device such as {names}" if auto else f"a device: {names}", accepts)


def optional(rule: Rule) -> Rule:
    """``None`` or a value ``rule`` accepts."""
    return Rule(f"None or {rule.expected}", lambda v: v is None or rule.accepts(v))


def injected_names(history: Sequence[str]) -> list[str]:
    """Names assigned by the last cell of ``history`` (a kernel's ``In``) papermill injected."""
    for source in reversed(history):
        if source.startswith(INJECTED_HEADER):
            return [
                target.id
                for node in ast.parse(source).body
                if isinstance(node, ast.Assign)
                for target in node.targets
                if isinstance(target, ast.Name)
            ]
    return []


def problems(spec: NotebookParameters, namespace: Mapping[str, Any]) -> list[str]:
    """What is wrong with the parameters in ``namespace`` (a notebook's globals), if anything.

    Unknown names are those papermill injected (found in the kernel's input history ``In``)
    that ``spec`` does not know.
    """
    found = []
    for name in injected_names(namespace.get("In", [])):
        if name not in spec.rules:
            close = difflib.get_close_matches(name, spec.rules, n=1)
            hint = f" (did you mean {close[0]!r}?)" if close else ""
            found.append(f"unknown parameter {name!r}{hint}")
    for name, rule in spec.rules.items():
        if name not in namespace:
            found.append(f"{name} is not defined: the notebook's parameters cell lacks it")
        elif not rule.accepts(value := namespace[name]):
            kind = type(value).__name__
            expected = rule.expected.format(name=name)
            found.append(f"{name} = {value!r} ({kind}) is invalid: expected {expected}")
    if found:
        return found
    values = {name: namespace[name] for name in spec.rules}
    return [message.format(**values) for message, holds in spec.relations if not holds(values)]


def check_parameters(spec: NotebookParameters, namespace: Mapping[str, Any]) -> None:
    """Raise :class:`ParameterError` listing every problem with the notebook's parameters."""
    if found := problems(spec, namespace):
        raise ParameterError(
            "\n".join(
                [
                    "the notebook's parameters need fixing (set them with -p NAME VALUE, "
                    "lists and dictionaries with -y):",
                    *(f"  - {problem}" for problem in found),
                    f"valid parameters: {', '.join(spec.rules)}",
                ]
            )
        )


_SHARED = {
    "dataset": one_of(DATASETS),
    "data_dir": optional(path()),
    "dataset_options": mapping(),
}

#: the parameters of notebooks/train.ipynb
TRAIN_PARAMETERS = NotebookParameters(
    rules=_SHARED
    | {
        "epochs": whole(1),
        "batch_size": whole(1),
        "optimizer": one_of(OPTIMIZERS),
        "lr": number(0),
        "lr_decay": number(0, 1, include_high=True),
        "momentum": number(0, 1, include_low=True),
        "grad_clip": optional(number(0)),
        "val_fraction": number(0, 1),
        "max_train": optional(whole(1)),
        "min_context": number(0, 1, include_low=True, include_high=True),
        "max_context": number(0, 1, include_low=True, include_high=True),
        "hole_tasks": number(0, 1, include_low=True, include_high=True),
        "loss_pixels": one_of(LOSS_PIXELS),
        "init_checkpoint": optional(path()),
        "eval_context": number(0, 1),
        "n_test_images": optional(whole(1)),
        "n_figure_images": whole(1),
        "hidden_channels": whole(1),
        "n_blocks": whole(1),
        "kernel_size": odd(1),
        "raw_context": flag(),
        "seed": whole(0),
        "device": device(auto=True),
        "precision": one_of(TRAIN_PRECISIONS),
        "compile": flag(),
        "cpu_heap": flag(),
        "checkpoint_every_s": number(0),
        "out_dir": optional(path()),
        "resume": flag(),
        "time_limit_s": optional(number(0)),
    },
    relations=(
        (
            "min_context = {min_context} exceeds max_context = {max_context}",
            lambda p: p["min_context"] <= p["max_context"],
        ),
    ),
)

#: the parameters of notebooks/evaluate.ipynb
EVALUATE_PARAMETERS = NotebookParameters(
    rules=_SHARED
    | {
        "checkpoint": optional(path()),
        "context_fractions": fractions(),
        "focus_fraction": number(0, 1),
        "n_test_images": optional(whole(1)),
        "kriging_neighbours": optional(whole(1)),
        "n_worst": whole(1),
        "device": device(auto=False),
        "batch_size": whole(1),
        "seed": whole(0),
        "out_dir": optional(path()),
    },
    relations=(
        (
            "focus_fraction = {focus_fraction} is not among context_fractions = "
            "{context_fractions}: add it to them or choose one of them",
            lambda p: p["focus_fraction"] in p["context_fractions"],
        ),
    ),
)
