"""Every record of the bad-input catalogue (bad_input_records.py), on each backend: the
mistake raises its specific GraphjitError subclass, whose message names the offending op
and the line of the records file where it was built (or where the bad call was made);
nothing crashes; and the same session still computes the right answer afterwards."""

from __future__ import annotations

import numpy as np
import pytest
from bad_input_records import CATALOGUE
from reliability_helpers import BACKENDS, here

import graphjit as gj

RECORDS_FILE = "bad_input_records.py"
CASES = [
    pytest.param(record, backend, id=f"{record.name}-{backend}")
    for record in CATALOGUE
    for backend in BACKENDS
]


def test_the_catalogue_has_at_least_30_distinct_records():
    names = [record.name for record in CATALOGUE]
    assert len(names) >= 30 and len(set(names)) == len(names)


@pytest.mark.parametrize("record, backend", CASES)
def test_bad_input_raises_a_specific_error_and_the_session_recovers(record, backend, tmp_path):
    setup = record.setup(str(tmp_path))
    with gj.Session(setup.graph, backend=backend, **setup.options) as sess:
        with pytest.raises(record.error) as info:
            setup.bad(sess)
        message = str(info.value)
        assert isinstance(info.value, gj.GraphjitError), message
        if setup.line is not None:
            assert f"{RECORDS_FILE}:{setup.line}" in message, message
        for word in record.words:
            assert word in message, message
        fetch, feed, expected = setup.good
        np.testing.assert_allclose(sess.run(fetch, feed), expected)


@pytest.mark.parametrize("backend", BACKENDS)
def test_gradient_through_an_integer_path_is_none(backend):
    """Decided: like TF1, an integer (or boolean) path carries no gradient, so the gradient
    of a result that reaches x only through a cast to int is None, not an error."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(np.float32, [3], name="x")
        k = gj.placeholder(np.int32, [3], name="k")
        rounded = gj.cast(gj.cast(x, gj.int32), gj.float32)
        through_int, wrt_int = gj.gradients(gj.sum(rounded * 2.0), [x, k])
        (mixed,) = gj.gradients(gj.sum(rounded * x), [x])
    assert through_int is None and wrt_int is None
    with gj.Session(g, backend=backend) as sess:
        got = sess.run(mixed, {x: np.array([1.5, -2.5, 3.0], np.float32)})
    np.testing.assert_allclose(got, [1.0, -2.0, 3.0])  # only the direct path counts


def test_run_on_a_closed_session_names_the_call():
    with gj.Graph().as_default() as g:
        out = gj.constant(1.0) * 2.0
    sess = gj.Session(g)
    assert sess.run(out) == 2.0
    sess.close()
    with pytest.raises(gj.FetchError, match="closed") as info:
        line = here() + 1
        sess.run(out)
    assert f"test_bad_input_catalogue.py:{line}" in str(info.value)
    with gj.Session(g) as fresh:  # the graph itself is unharmed
        assert fresh.run(out) == 2.0
