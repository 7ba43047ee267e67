"""scripts/results_page.py turns an executed notebook into a book page."""

from __future__ import annotations

import importlib.util

import nbformat
import pytest

from npf import REPO_ROOT


@pytest.fixture
def results_page(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location(
        "results_page", REPO_ROOT / "scripts" / "results_page.py"
    )
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    kinds = {
        "train": (tmp_path / "results", "train.ipynb", "{run}.ipynb"),
        "evaluation": (tmp_path / "beyond", "evaluate.ipynb", "{run}_evaluation.ipynb"),
    }
    monkeypatch.setattr(module, "KINDS", kinds)
    monkeypatch.setattr(module, "REPO_ROOT", tmp_path)
    return module


def executed(cells: list) -> nbformat.NotebookNode:
    notebook = nbformat.v4.new_notebook(cells=cells)
    notebook.metadata["widgets"] = {"state": {}}
    return notebook


def code(source: str, tags=(), outputs=()) -> nbformat.NotebookNode:
    cell = nbformat.v4.new_code_cell(source, metadata={"tags": list(tags)})
    cell.outputs = list(outputs)
    return cell


def test_page_has_its_own_title_hidden_code_and_reading(results_page, tmp_path) -> None:
    run = tmp_path / "results" / "demo"
    run.mkdir(parents=True)
    printed = nbformat.v4.new_output("stream", name="stdout", text="RMSE 0.2\n")
    cells = [
        nbformat.v4.new_markdown_cell("# Train and evaluate a ConvCNP on one data set"),
        code('dataset = "gp"', tags=["parameters"]),
        code('dataset = "demo"', tags=["injected-parameters"]),
        code("import numpy"),
        code("fit()", outputs=[nbformat.v4.new_output("stream", name="stderr", text="10%|#")]),
        code("# NBVAL_IGNORE_OUTPUT\n# (timings)\nprint('RMSE 0.2')", outputs=[printed]),
    ]
    nbformat.write(executed(cells), run / "train.ipynb")
    (run / "page.md").write_text("(results-demo)=\n# Demo data\n\nWhat the data are.\n")
    (run / "reading.md").write_text("## Reading\n\nThe numbers.\n")
    page = nbformat.read(results_page.build_page("demo"), as_version=4)
    assert page.cells[0].source.startswith("(results-demo)=\n# Demo data")
    assert page.cells[-1].source == "## Reading\n\nThe numbers."
    tags = [c.metadata.get("tags", []) for c in page.cells if c.cell_type == "code"]
    assert tags == [
        ["injected-parameters", "hide-input"],
        ["remove-cell"],  # prints nothing
        ["remove-cell"],  # only a progress bar, which the book leaves out
        ["hide-input"],
    ]
    assert page.cells[-2].source == "print('RMSE 0.2')"  # test-suite markers out of view
    assert "widgets" not in page.metadata


def test_evaluation_page_drops_the_dem_section_when_it_drew_nothing(results_page, tmp_path) -> None:
    run = tmp_path / "beyond" / "demo"
    run.mkdir(parents=True)
    message = nbformat.v4.new_output("stream", name="stdout", text="no slope analysis\n")
    cells = [
        nbformat.v4.new_markdown_cell("# Evaluate"),
        nbformat.v4.new_markdown_cell(
            "## Error against terrain slope", metadata={"tags": ["dem-only"]}
        ),
        code("run.terrain()", tags=["dem-only"], outputs=[message]),
        code("print('kept')", outputs=[message]),
    ]
    nbformat.write(executed(cells), run / "evaluate.ipynb")
    (run / "page.md").write_text("# Evaluation on demo data\n")
    page = nbformat.read(results_page.build_page("demo", "evaluation"), as_version=4)
    assert [c.source for c in page.cells] == ["# Evaluation on demo data", "print('kept')"]
    assert (tmp_path / "beyond" / "demo_evaluation.ipynb").is_file()


def test_missing_inputs_are_named(results_page, tmp_path) -> None:
    (tmp_path / "results" / "demo").mkdir(parents=True)
    with pytest.raises(SystemExit, match="train.ipynb is missing"):
        results_page.build_page("demo")
