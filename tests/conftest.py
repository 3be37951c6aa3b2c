"""Shared test setup: `import op_table` works from every test folder, and every graph any
test builds is verified and round-tripped through the IR printer and parser."""

import os
import sys
import weakref

import pytest

sys.path.insert(0, os.path.dirname(__file__))

from graphjit.frontend import graph as graph_module  # noqa: E402
from graphjit.ir import parse, print_module, verify  # noqa: E402

_built: list = []
_original_init = graph_module.Graph.__init__


def _tracking_init(self, *args, **kwargs):
    _original_init(self, *args, **kwargs)
    _built.append(weakref.ref(self))


graph_module.Graph.__init__ = _tracking_init


@pytest.fixture(autouse=True)
def every_graph_verifies_and_round_trips():
    """print(parse(print(g))) == print(g) and the verifier accepts g, for each graph built."""
    _built.clear()
    yield
    for ref in _built:
        g = ref()
        if g is None or not g.block.ops:
            continue
        module = g.as_module()
        verify(module)
        text = print_module(module)
        assert print_module(parse(text)) == text
    _built.clear()
