"""Shared by the tests/mlir suites: skip when the mlir extra is absent, compare the iree
backend with the interpreter, and check every export with MLIR's verifier."""

from __future__ import annotations

import pytest
from backend_check import compare_on

import graphjit as gj

IREE_MISSING = "the mlir extra is not installed (pip install graphjit[mlir])"


def require_iree():
    pytest.importorskip("iree.compiler", reason=IREE_MISSING)
    pytest.importorskip("iree.runtime", reason=IREE_MISSING)


def exported(graph, fetches, feed=None) -> str:
    """The export of `fetches`, passed through MLIR's parser and verifier."""
    text = gj.mlir.export(fetches, feed, graph=graph)
    gj.mlir.verify(text)
    return text


def compare_iree(graph, fetches, feed=None, runs=1, what="", **tol):
    """Verify the export, then run on iree and the interpreter and compare."""
    exported(graph, fetches, feed)
    return compare_on("iree", graph, fetches, feed, runs=runs, what=what, **tol)
