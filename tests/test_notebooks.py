"""Every notebook runs top to bottom (fast mode: SPARSESIS_FAST=1 shrinks any heavy loop)."""
import os

import nbformat
import pytest
from nbclient import NotebookClient

from conftest import REPO, needs_data

NOTEBOOKS = sorted((REPO / "notebooks").glob("*.ipynb"))


@pytest.mark.slow
@pytest.mark.data
@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.name for p in NOTEBOOKS])
def test_notebook_runs(path, monkeypatch):
    needs_data()
    monkeypatch.setenv("SPARSESIS_FAST", "1")
    # the kernel starts in notebooks/: make the package importable without installing it
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join(filter(None, [str(REPO), os.environ.get("PYTHONPATH")])))
    nb = nbformat.read(path, as_version=4)
    NotebookClient(nb, timeout=900, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}).execute()
    errors = [o for c in nb.cells for o in c.get("outputs", []) if o.get("output_type") == "error"]
    assert not errors
    images = sum("image/png" in o.get("data", {}) for c in nb.cells for o in c.get("outputs", []))
    assert images >= 1, "a notebook of figures produced no figure"
