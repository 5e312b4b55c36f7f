"""The quickstart notebook runs from top to bottom and shows what it says.

The notebook's last cell asserts its own findings (a reloaded model scores
identically; Florida is anomalous under Hudson Bay's model, normal under its
own). This test runs it with nbclient in a scratch directory and checks what
a reader would see: no error output, a figure under every plotting cell, and
the printed confirmation of the checks.
"""

from __future__ import annotations

from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK = Path(__file__).resolve().parents[1] / "notebooks" / "quickstart.ipynb"
PLOT_TAGS = ("map", "timeseries", "hudson-map")


def _tagged(nb, tag: str):
    cells = [cell for cell in nb.cells if tag in cell.get("metadata", {}).get("tags", [])]
    assert len(cells) == 1, f"expected one cell tagged {tag!r} in {NOTEBOOK.name}, found {len(cells)}"
    return cells[0]


def _text(cell) -> str:
    parts = []
    for output in cell.get("outputs", []):
        if output.get("output_type") == "stream":
            parts.append(output.get("text", ""))
        elif "data" in output:
            parts.append(output["data"].get("text/plain", ""))
    return "".join(parts)


@pytest.fixture(scope="module")
def executed(tmp_path_factory):
    nb = nbformat.read(NOTEBOOK, as_version=4)
    workdir = tmp_path_factory.mktemp("notebook")
    client = nbclient.NotebookClient(
        nb, timeout=300, kernel_name="python3", resources={"metadata": {"path": str(workdir)}}
    )
    client.execute()  # raises CellExecutionError, with the cell's traceback, on any error
    return nb


def test_stored_without_outputs():
    nb = nbformat.read(NOTEBOOK, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert not cell.outputs and cell.execution_count is None, "store the notebook with outputs cleared"


def test_runs_without_error(executed):
    for cell in executed.cells:
        if cell.cell_type == "code":
            errors = [o for o in cell.outputs if o.get("output_type") == "error"]
            assert not errors, f"cell failed:\n{cell.source}"
            assert cell.execution_count is not None


@pytest.mark.parametrize("tag", PLOT_TAGS)
def test_plot_cells_draw_a_figure(executed, tag):
    cell = _tagged(executed, tag)
    images = [o for o in cell.outputs if "image/png" in o.get("data", {})]
    assert len(images) == 1, f"the cell tagged {tag!r} should show one inline PNG figure"
    assert len(images[0]["data"]["image/png"]) > 10_000  # base64 of a real plot, not an empty canvas


def test_tiles_and_precision_reason_shown(executed):
    text = _text(_tagged(executed, "tiles"))
    assert "precision 2:" in text and "81 tiles over 1813 grid cells" in text


def test_checks_cell_passed(executed):
    cell = _tagged(executed, "checks")
    assert cell is executed.cells[-1], "the checks must be the notebook's last cell"
    assert "assert same_scores" in cell.source and "florida_by_hudson > florida_own" in cell.source
    assert "all checks passed" in _text(cell)
