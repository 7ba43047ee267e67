"""Turn a run's executed notebook into the book's page for that run.

usage: .venv/bin/python scripts/results_page.py RUN
       .venv/bin/python scripts/results_page.py --evaluation RUN

Reads ``book/results/RUN/train.ipynb`` (the notebook ``scripts/train_slice.sh`` or
papermill executed into the run folder) and writes ``book/results/RUN.ipynb``;
with ``--evaluation``, reads ``book/beyond/RUN/evaluate.ipynb`` (an executed
``notebooks/evaluate.ipynb``) and writes ``book/beyond/RUN_evaluation.ipynb``:

* the notebook's generic first cell is replaced by ``page.md`` of the run folder
  (the page's label, title and introduction, written for the data set);
* ``reading.md`` of the run folder, if present, is appended (what the numbers say);
* code is hidden behind "show code" toggles (``hide-input``); cells that print
  nothing but to stderr are left out of the page (``remove-cell``) except the injected
  parameters, the notebook's own defaults cell is dropped, and the ``NBVAL``
  markers for the test suite are taken out of view;
* cells tagged ``dem-only`` (the terrain-slope section of the evaluation) are
  left out when none of them drew a figure, i.e. for data that are not DEMs.

Outputs are copied as they are: the page shows what the run computed (the book
leaves out what went to stderr: ``nb_output_stderr: remove`` in ``_config.yml``).
"""

from __future__ import annotations

import sys
from pathlib import Path

import nbformat

REPO_ROOT = Path(__file__).resolve().parent.parent
#: (folder of run folders, executed notebook, page name) for a training run and an evaluation
KINDS = {
    "train": (REPO_ROOT / "book" / "results", "train.ipynb", "{run}.ipynb"),
    "evaluation": (REPO_ROOT / "book" / "beyond", "evaluate.ipynb", "{run}_evaluation.ipynb"),
}


def clean_source(source: str) -> str:
    """The cell's code without the test suite's markers and their explanation lines."""
    lines = source.splitlines()
    while lines and (lines[0].startswith("# NBVAL_") or lines[0].startswith("# (")):
        lines.pop(0)
    return "\n".join(lines)


def build_page(run: str, kind: str = "train") -> Path:
    parent, notebook_name, page_name = KINDS[kind]
    run_dir = parent / run
    executed = run_dir / notebook_name
    intro = run_dir / "page.md"
    for needed in (executed, intro):
        if not needed.is_file():
            raise SystemExit(f"{needed.relative_to(REPO_ROOT)} is missing")
    notebook = nbformat.read(executed, as_version=4)
    cells = [nbformat.v4.new_markdown_cell(intro.read_text().strip())]
    dem = [cell for cell in notebook.cells if "dem-only" in cell.metadata.get("tags", [])]
    dem_applies = any(
        "image/png" in output.get("data", {}) for c in dem for output in c.get("outputs", [])
    )
    for cell in notebook.cells[1:]:
        tags = cell.metadata.get("tags", [])
        if "parameters" in tags or ("dem-only" in tags and not dem_applies):
            continue
        if cell.cell_type == "code":
            cell.source = clean_source(cell.source)
            # the book leaves out stderr (progress bars): such a cell would show nothing
            printed = [output for output in cell.outputs if output.get("name") != "stderr"]
            shown = printed or "injected-parameters" in tags
            cell.metadata["tags"] = [*tags, "hide-input" if shown else "remove-cell"]
        cells.append(cell)
    reading = run_dir / "reading.md"
    if reading.is_file():
        cells.append(nbformat.v4.new_markdown_cell(reading.read_text().strip()))
    notebook.cells = cells
    notebook.metadata.pop("widgets", None)
    page = parent / page_name.format(run=run)
    nbformat.write(notebook, page)
    return page


if __name__ == "__main__":
    match sys.argv[1:]:
        case [run]:
            page = build_page(run)
        case ["--evaluation", run]:
            page = build_page(run, "evaluation")
        case _:
            raise SystemExit(__doc__.split("\n\n")[1])
    print(f"wrote {page.relative_to(REPO_ROOT)}")
