"""Run docs/tour.md (the notebook's source, jupytext Markdown) and write docs/tour.ipynb with
its outputs, so that GitHub shows the pictures: `make tour`. tests/test_tour.py runs the same
notebook and checks that the .ipynb holds the .md's cells."""

from __future__ import annotations

import sys
import tempfile
from pathlib import Path

import jupytext
import nbformat
from nbclient import NotebookClient

DOCS = Path(__file__).resolve().parent.parent / "docs"
SOURCE, NOTEBOOK = DOCS / "tour.md", DOCS / "tour.ipynb"
TIMEOUT = 900  # seconds a cell may take (training the digits demo is the longest)


def read_tour() -> nbformat.NotebookNode:
    return jupytext.read(SOURCE)


def execute(notebook: nbformat.NotebookNode, cwd: Path) -> nbformat.NotebookNode:
    """Run every cell in a fresh kernel (this Python's); a failing cell raises CellExecutionError."""
    NotebookClient(notebook, timeout=TIMEOUT, kernel_name="python3",
                   resources={"metadata": {"path": str(cwd)}}).execute()
    return notebook


def code_cells(notebook: nbformat.NotebookNode) -> list[str]:
    return [cell.source.strip() for cell in notebook.cells if cell.cell_type == "code"]


def main() -> int:
    with tempfile.TemporaryDirectory() as cwd:
        notebook = execute(read_tour(), Path(cwd))
    nbformat.write(notebook, NOTEBOOK)
    print(f"wrote {NOTEBOOK}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
