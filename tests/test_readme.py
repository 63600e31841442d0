"""The README's Python examples run as written (each block in a fresh namespace, in order, so a
later block may use names from an earlier one in the same section)."""
import re
from pathlib import Path

import pytest

README = Path(__file__).resolve().parent.parent / "README.md"


def _blocks():
    text = README.read_text(encoding="utf-8")
    return re.findall(r"```python\n(.*?)```", text, re.S)


def test_readme_has_examples():
    assert len(_blocks()) >= 3


def _has_dask() -> bool:
    try:
        import dask.array  # noqa: F401
    except ImportError:
        return False
    return True


def test_readme_examples_run(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # examples may write pictures
    namespace: dict = {}
    for block in _blocks():
        if "import dask" in block and not _has_dask():  # only the Dask example needs dask
            continue
        exec(compile(block, str(README), "exec"), namespace)  # our own documentation
    assert "history" in namespace and namespace["history"].epoch_loss[-1] < \
        namespace["history"].epoch_loss[0]
