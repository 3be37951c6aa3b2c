"""Without the mlir extra the iree backend says which extra to install (run with IREE
hidden from the import system, so it holds whether or not the extra is installed)."""

from __future__ import annotations

import subprocess
import sys

SCRIPT = """
import sys
sys.modules["iree"] = None  # importing iree now raises ImportError
import graphjit as gj
g = gj.Graph()
try:
    gj.Session(g, backend="iree")
except gj.errors.BackendError as e:
    print(e)
"""


def test_iree_backend_without_the_extra_names_it():
    out = subprocess.run([sys.executable, "-c", SCRIPT], capture_output=True, text=True)
    assert "pip install graphjit[mlir]" in out.stdout, out.stderr
