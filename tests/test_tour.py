"""docs/tour.md, the notebook that walks the paper through the library, runs; docs/tour.ipynb
(its executed copy, for reading on GitHub) holds the same code."""

import importlib.util
from pathlib import Path

import pytest

pytest.importorskip("nbclient", reason="the notebook needs the test extra (nbclient, jupytext)")
pytest.importorskip("jupytext", reason="the notebook needs the test extra (nbclient, jupytext)")

ROOT = Path(__file__).resolve().parent.parent
spec = importlib.util.spec_from_file_location("tour", ROOT / "tools" / "tour.py")
tour = importlib.util.module_from_spec(spec)
spec.loader.exec_module(tour)


def test_the_executed_notebook_holds_the_sources_cells():
    import nbformat

    committed = nbformat.read(tour.NOTEBOOK, as_version=4)
    assert tour.code_cells(committed) == tour.code_cells(tour.read_tour()), (
        "docs/tour.ipynb is stale: run `make tour`")
    assert all(cell.get("execution_count") for cell in committed.cells if cell.cell_type == "code")


@pytest.mark.slow
def test_the_tour_runs(tmp_path):
    """Every cell, in a fresh kernel: the tables, the diagrams, training, crops, Grad-CAM, int8."""
    notebook = tour.execute(tour.read_tour(), tmp_path)
    outputs = [output for cell in notebook.cells if cell.cell_type == "code"
               for output in cell.get("outputs", [])]
    assert not [o for o in outputs if o.output_type == "error"]
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    assert len(images) >= 5  # the module, the network, three Grad-CAM figures
    text = "".join(o.get("text", "") for o in outputs)
    assert "cheaper" in text and "int8: top-1" in text
