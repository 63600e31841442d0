"""The notebooks in ``notebooks/`` run top to bottom from a clean kernel (issue 3, part 5).

Each notebook is executed with nbclient in a fresh kernel of *this* interpreter (a temporary
kernelspec points at ``sys.executable``, so the kernel imports the symdiff under test, whatever
``python3`` kernelspec happens to be installed), with the kernel's working directory a temporary
directory. A cell that raises, including a failed ``assert``, fails the test with the cell and
its traceback. Notebooks are stored without outputs.
"""
from __future__ import annotations

import json
import os
import sys
import time
from pathlib import Path

import pytest

nbformat = pytest.importorskip("nbformat")
nbclient = pytest.importorskip("nbclient")
pytest.importorskip("ipykernel")

NOTEBOOK_DIR = Path(__file__).resolve().parent.parent / "notebooks"
NOTEBOOKS = sorted(NOTEBOOK_DIR.glob("*.ipynb"))
CELL_TIMEOUT = 120   # seconds per cell
BUDGET = 60          # seconds per notebook, start to finish (the "under a minute")
KERNEL_NAME = "symdiff-test-python"  # found only in the fixture's directory


@pytest.fixture(scope="session")
def kernel_dir(tmp_path_factory):
    """A directory holding one kernelspec: ipykernel on the running interpreter."""
    root = tmp_path_factory.mktemp("kernels")
    spec_dir = root / KERNEL_NAME
    spec_dir.mkdir()
    spec = {"argv": [sys.executable, "-m", "ipykernel_launcher", "-f", "{connection_file}"],
            "display_name": f"Python ({sys.executable})", "language": "python"}
    (spec_dir / "kernel.json").write_text(json.dumps(spec))
    return root


def _source(nb) -> str:
    return "\n".join(cell.source for cell in nb.cells if cell.cell_type == "code")


def test_notebooks_exist():
    names = {p.stem for p in NOTEBOOKS}
    for expected in ("01_backprop_by_hand", "02_symbol_to_symbol", "03_window_ner",
                     "04_mlp_weight_decay", "05_xor", "06_gradient_checking",
                     "10_checking_hand_written_backprop"):
        assert expected in names, f"notebooks/{expected}.ipynb is missing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_saved_without_outputs(path):
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    dirty = [i for i, cell in enumerate(nb.cells) if cell.cell_type == "code"
             and (cell.outputs or cell.execution_count is not None)]
    assert not dirty, f"{path.name}: clear the outputs of cells {dirty} before committing"


@pytest.mark.parametrize("path", NOTEBOOKS, ids=[p.stem for p in NOTEBOOKS])
def test_notebook_runs(path, kernel_dir, tmp_path):
    from jupyter_client.kernelspec import KernelSpecManager
    from jupyter_client.manager import KernelManager

    nb = nbformat.read(path, as_version=4)
    if "matplotlib" in _source(nb):
        pytest.importorskip("matplotlib", reason="the notebooks plot with matplotlib "
                                                 "(pip install -e '.[notebooks]')")
    km = KernelManager(kernel_name=KERNEL_NAME,
                       kernel_spec_manager=KernelSpecManager(kernel_dirs=[str(kernel_dir)]))
    client = nbclient.NotebookClient(nb, km=km, timeout=CELL_TIMEOUT,
                                     resources={"metadata": {"path": str(tmp_path)}})
    # the kernel only: figures go to the notebook (inline), whatever the outer MPLBACKEND says
    env = {**os.environ, "MPLBACKEND": "module://matplotlib_inline.backend_inline"}
    start = time.perf_counter()
    client.execute(env=env)
    elapsed = time.perf_counter() - start
    errors = [out for cell in nb.cells if cell.cell_type == "code" for out in cell.outputs
              if out.output_type == "error"]
    assert not errors, errors
    assert elapsed < BUDGET, f"{path.name} took {elapsed:.0f} s (budget {BUDGET} s)"
