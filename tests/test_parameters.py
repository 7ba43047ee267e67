"""Notebook parameters: the checks of npf.study.parameters, and papermill runs that stop at them."""

from __future__ import annotations

import ast
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from npf import REPO_ROOT
from npf.study.parameters import (
    EVALUATE_PARAMETERS,
    TRAIN_PARAMETERS,
    NotebookParameters,
    ParameterError,
    check_parameters,
    injected_names,
    problems,
)

TRAIN = REPO_ROOT / "notebooks" / "train.ipynb"
EVALUATE = REPO_ROOT / "notebooks" / "evaluate.ipynb"


def tagged_source(notebook: Path, tag: str) -> str:
    """The source of the notebook's cell tagged ``tag``."""
    cells = json.loads(notebook.read_text())["cells"]
    (cell,) = (c for c in cells if tag in c["metadata"].get("tags", []))
    return "".join(cell["source"])


def run_cells(*sources: str) -> dict[str, Any]:
    """The globals after running ``sources`` as cells, with IPython's history ``In``."""
    namespace: dict[str, Any] = {"In": ["", *sources]}
    for source in sources:
        exec(source, namespace)
    del namespace["__builtins__"]
    return namespace


def train_defaults(**changes: Any) -> dict[str, Any]:
    return run_cells(tagged_source(TRAIN, "parameters")) | changes


@pytest.mark.parametrize(
    ("notebook", "spec"), [(TRAIN, TRAIN_PARAMETERS), (EVALUATE, EVALUATE_PARAMETERS)]
)
def test_specs_cover_the_parameters_cells_and_accept_their_defaults(
    notebook: Path, spec: NotebookParameters
) -> None:
    source = tagged_source(notebook, "parameters")
    names = [node.targets[0].id for node in ast.parse(source).body]
    assert names == list(spec.rules)
    assert problems(spec, run_cells(source)) == []


def test_the_stored_tiny_configuration_is_valid() -> None:
    cells = [tagged_source(TRAIN, tag) for tag in ("parameters", "injected-parameters")]
    assert problems(TRAIN_PARAMETERS, run_cells(*cells)) == []


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("epochs", "three", "epochs = 'three' (str) is invalid: expected a whole number >= 1"),
        ("epochs", 2.5, "epochs = 2.5 (float) is invalid: expected a whole number >= 1"),
        ("epochs", True, "epochs = True (bool) is invalid: expected a whole number >= 1"),
        ("lr", "1e-3x", "lr = '1e-3x' (str) is invalid: expected a number > 0"),
        ("lr", float("nan"), "lr = nan (float) is invalid: expected a number > 0"),
        ("max_train", "sixty", "expected None or a whole number >= 1"),
        ("max_train", 0, "max_train = 0 (int) is invalid: expected None or a whole number >= 1"),
        ("eval_context", 1, "eval_context = 1 (int) is invalid: expected a number in (0, 1)"),
        ("momentum", 1.0, "expected a number in [0, 1)"),
        ("kernel_size", 4, "expected an odd whole number >= 1"),
        ("optimizer", "Adam", "expected one of 'sgd', 'adam'"),
        ("dataset", "mnist", "expected one of 'gp', 'tfasr', 'fashionmnist', 'eurosat'"),
        ("dataset_options", "n_train", 'given with -y, e.g. -y "dataset_options: {n_train'),
        ("device", "gpu", "expected 'auto' or a device such as 'cpu', 'cuda' or 'cuda:1'"),
        ("resume", "yes", "resume = 'yes' (str) is invalid: expected True or False"),
    ],
)
def test_a_wrong_value_is_named_with_what_is_expected(name: str, value: Any, expected: str) -> None:
    (problem,) = problems(TRAIN_PARAMETERS, train_defaults(**{name: value}))
    assert expected in problem


@pytest.mark.parametrize(
    ("changes", "valid"),
    [
        ({"lr": 1, "momentum": 0, "grad_clip": 1.5, "device": "cuda:1"}, True),
        ({"max_train": 64, "time_limit_s": 420, "data_dir": "/data"}, True),
        ({"min_context": 0.3, "max_context": 0.3}, True),
        ({"min_context": 0.5, "max_context": 0.3}, False),
    ],
)
def test_valid_values_pass(changes: dict[str, Any], valid: bool) -> None:
    found = problems(TRAIN_PARAMETERS, train_defaults(**changes))
    assert found == ([] if valid else ["min_context = 0.5 exceeds max_context = 0.3"])


def test_evaluation_parameters() -> None:
    defaults = run_cells(tagged_source(EVALUATE, "parameters"))
    assert problems(EVALUATE_PARAMETERS, defaults | {"device": "cuda", "checkpoint": None}) == []
    assert problems(EVALUATE_PARAMETERS, defaults | {"focus_fraction": 0.2}) == [
        "focus_fraction = 0.2 is not among context_fractions = [0.01, 0.05, 0.125, 0.3, 0.5]: "
        "add it to them or choose one of them"
    ]
    for wrong in ({"context_fractions": []}, {"context_fractions": [0.125, 1]}, {"device": "auto"}):
        assert len(problems(EVALUATE_PARAMETERS, defaults | wrong)) == 1


def test_injected_names_come_from_the_last_injected_cell() -> None:
    history = ["", "# Parameters\nold = 1\n", "x = 1", "# Parameters\nepochs = 3\nlr = 0.1\n", "y"]
    assert injected_names(history) == ["epochs", "lr"]
    assert injected_names(["", "epochs = 3"]) == []


def test_unknown_injected_names_are_reported_with_a_suggestion() -> None:
    namespace = run_cells(
        tagged_source(TRAIN, "parameters"), "# Parameters\noptimiser = 'adam'\nepoch = 3\nwhy = 1\n"
    )
    assert problems(TRAIN_PARAMETERS, namespace) == [
        "unknown parameter 'optimiser' (did you mean 'optimizer'?)",
        "unknown parameter 'epoch' (did you mean 'epochs'?)",
        "unknown parameter 'why'",
    ]


def test_check_parameters_lists_every_problem_and_the_valid_names() -> None:
    namespace = run_cells(tagged_source(TRAIN, "parameters"), "# Parameters\nepoch = 3\n")
    namespace["lr"] = "fast"
    del namespace["seed"]
    with pytest.raises(ParameterError) as error:
        check_parameters(TRAIN_PARAMETERS, namespace)
    lines = str(error.value).splitlines()
    assert lines[0].startswith("the notebook's parameters need fixing (set them with -p NAME VALUE")
    assert lines[1:4] == [
        "  - unknown parameter 'epoch' (did you mean 'epochs'?)",
        "  - lr = 'fast' (str) is invalid: expected a number > 0",
        "  - seed is not defined: the notebook's parameters cell lacks it",
    ]
    assert lines[4] == f"valid parameters: {', '.join(TRAIN_PARAMETERS.rules)}"
    check_parameters(TRAIN_PARAMETERS, train_defaults())


@pytest.mark.parametrize(
    ("options", "message"),
    [
        (["-p", "optimiser", "adam"], "unknown parameter 'optimiser' (did you mean 'optimizer'?)"),
        (["-p", "epochs", "2.5"], "epochs = 2.5 (float) is invalid: expected a whole number >= 1"),
    ],
)
def test_papermill_stops_at_the_check_before_loading_data(
    tmp_path: Path, options: list[str], message: str
) -> None:
    tiny = json.loads(TRAIN.read_text())["metadata"]["papermill"]["parameters"]
    output = tmp_path / "train.ipynb"
    run = subprocess.run(
        [sys.executable, "-m", "papermill", TRAIN, output, "-y", json.dumps(tiny), *options],
        cwd=REPO_ROOT,
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert run.returncode != 0
    assert "ParameterError" in run.stderr
    assert message in run.stderr
    assert "valid parameters: dataset, data_dir, dataset_options, epochs," in run.stderr
    code = [c for c in json.loads(output.read_text())["cells"] if c["cell_type"] == "code"]
    checked = next(i for i, c in enumerate(code) if "check_parameters(" in "".join(c["source"]))
    assert code[checked]["outputs"][-1]["ename"] == "ParameterError"
    assert all(c["execution_count"] is None for c in code[checked + 1 :])
