"""Every `>>>` example in docs/*.md runs as a doctest, so the documentation stays true."""

from __future__ import annotations

import doctest
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[1] / "docs"
DOCTESTED = ["tutorial_static.md", "tutorial_eager.md", "control_flow_gradients.md",
             "pipeline.md", "api.md", "migrating.md"]  # fmt: skip


@pytest.mark.parametrize("name", DOCTESTED)
def test_doc_examples_run(name, monkeypatch):
    for variable in ("GRAPHJIT_PRINT_IR", "GRAPHJIT_EXPLAIN_RETRACE"):
        monkeypatch.delenv(variable, raising=False)
    flags = doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE
    result = doctest.testfile(str(DOCS / name), module_relative=False, optionflags=flags)
    assert result.attempted > 0, f"{name} has no examples"
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed"


NOT_DOCTESTED = {"architecture.md", "benchmarks.md"}  # prose and measurements, no examples


def test_every_markdown_page_with_examples_is_tested():
    pages = {p.name for p in DOCS.glob("*.md") if ">>> " in p.read_text()} - NOT_DOCTESTED
    assert pages <= set(DOCTESTED), sorted(pages - set(DOCTESTED))
