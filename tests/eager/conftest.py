"""Setup shared by the eager tests."""

import pytest

from graphjit.frontend import eager_compiled


@pytest.fixture
def fresh_signatures(monkeypatch):
    """Eager compilation on (GRAPHJIT_EAGER_COMPILE unset) and no signature seen yet, before
    and after the test: what runs compiled depends on nothing another test ran."""
    monkeypatch.delenv("GRAPHJIT_EAGER_COMPILE", raising=False)
    eager_compiled.SIGNATURES.clear()
    yield
    eager_compiled.SIGNATURES.clear()
