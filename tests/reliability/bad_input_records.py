"""The catalogue of bad inputs: one record per mistake a user can make, with the error it
must raise. test_bad_input_catalogue.py runs every record on each backend.

A record's `setup(tmp)` builds a graph and returns a Setup: `bad(sess)` makes the mistake
(at run time, or at graph-building time inside the graph), `line` is the line of THIS file
that the message must name (where the offending op was built, or where the bad call was
made; None for files and text, which have no op), and `good` is a run that must still
give the right answer in the same session afterwards.
"""

from __future__ import annotations

import os
from collections.abc import Callable
from dataclasses import dataclass, field

import numpy as np
from reliability_helpers import here

import graphjit as gj
from graphjit.errors import FeedDTypeError, FeedShapeError

F32 = np.float32
ONES = np.ones((2, 3), F32)
HUGE = 10**6  # a placeholder fed with HUGE elements, a result with HUGE**2 of them


@dataclass
class Setup:
    graph: object
    bad: Callable
    line: int | None
    good: tuple  # (fetch, feed_dict, expected value)
    options: dict = field(default_factory=dict)  # Session options


@dataclass
class Bad:
    name: str
    setup: Callable  # setup(tmp directory) -> Setup
    error: type
    words: tuple = ()  # what the message must contain besides the line


def base():
    """A small graph, its placeholder x (and the line that built it), and a good run."""
    g = gj.Graph()
    with g.as_default():
        x, line = gj.placeholder(F32, [None, 3], name="x"), here()
        y = gj.sum(x * 2.0, axis=1)
    return g, x, line, (y, {x: ONES}, [6.0, 6.0])


def line_of(make) -> int:
    """The line of the table where the lambda `make`, which builds the ops, is written."""
    return make.__code__.co_firstlineno


def inside(graph, build):
    with graph.as_default():
        return build()


# ---- feeds -------------------------------------------------------------------------------


def feeding(value):
    """A feed of `value` to x: the message names x's placeholder and its line."""

    def setup(tmp):
        g, x, line, good = base()
        return Setup(g, lambda sess: sess.run(good[0], {x: value}), line, good)

    return setup


def missing_feed(tmp):
    g, x, _, good = base()
    with g.as_default():
        k, line = gj.placeholder(F32, [3], name="k"), here()
        z = gj.cond(gj.sum(x) > 0, lambda: x + k, lambda: x)  # k is read in a branch only
    return Setup(g, lambda sess: sess.run(z, {x: ONES}), line, good)


def feed_unknown_name(tmp):
    g, x, _, good = base()
    bad, line = (lambda sess: sess.run(good[0], {x: ONES, "nope": ONES})), here()
    return Setup(g, bad, line, good)


def feed_a_computed_tensor(tmp):
    g, x, _, good = base()
    with g.as_default():
        z, line = gj.exp(x), here()
    return Setup(g, lambda sess: sess.run(good[0], {x: ONES, z: ONES}), line, good)


def feed_another_graphs_placeholder(tmp):
    g, x, _, good = base()
    with gj.Graph().as_default():
        other, line = gj.placeholder(F32, [2, 3], name="other"), here()
    return Setup(g, lambda sess: sess.run(good[0], {x: ONES, other: ONES}), line, good)


# ---- fetches -----------------------------------------------------------------------------


def fetching(make):
    """sess.run(make(x)): the message names this file's line of the run call."""

    def setup(tmp):
        g, x, _, good = base()
        bad, line = (lambda sess: sess.run(make(x), {x: ONES})), here()
        return Setup(g, bad, line, good)

    return setup


def fetch_another_graphs_tensor(tmp):
    g, x, _, good = base()
    with gj.Graph().as_default():
        foreign, line = gj.exp(gj.constant(1.0)), here()
    return Setup(g, lambda sess: sess.run(foreign), line, good)


def fetch_inside_a_cond_branch(tmp):
    g, x, _, good = base()
    leaked = []
    with g.as_default():
        branch, line = (lambda: leaked.append(gj.exp(x)) or x), here()
        gj.cond(gj.sum(x) > 0, branch, lambda: x)
    return Setup(g, lambda sess: sess.run(leaked[0], {x: ONES}), line, good)


# ---- numerics ----------------------------------------------------------------------------


def nan_feed_checked(tmp):
    g, x, _, good = base()
    with g.as_default():
        scaled, line = x * 3.0, here()
    nan = np.array([[1.0, np.nan, 0.0]], F32)
    options = {"check_numerics": True}
    return Setup(g, lambda sess: sess.run(scaled, {x: nan}), line, good, options)


def overflow_checked(tmp):
    g, x, _, good = base()
    with g.as_default():
        grown, line = gj.exp(x * 100.0), here()
    options = {"check_numerics": True}
    return Setup(g, lambda sess: sess.run(grown, {x: ONES}), line, good, options)


def check_numerics_op(tmp):
    g, x, _, good = base()
    with g.as_default():
        checked, line = gj.check_numerics(gj.log(x - 2.0), "log went wrong"), here()
    return Setup(g, lambda sess: sess.run(checked, {x: ONES}), line, good)


# ---- shapes and dtypes at build time -------------------------------------------------------


def building(make):
    """A mistake found while building the ops of `make(x)` (a lambda in the table below:
    the line the message must name) in the graph."""

    def setup(tmp):
        g, x, _, good = base()
        return Setup(g, lambda sess: inside(g, lambda: make(x)), line_of(make), good)

    return setup


def specialising(make, feed_shape):
    """A mistake found when the Session specialises the graph on the fed shape."""

    def setup(tmp):
        g, x, _, good = base()
        with g.as_default():
            out = make(x)
        feed = {x: np.ones(feed_shape, F32)}
        return Setup(g, lambda sess: sess.run(out, feed), line_of(make), good)

    return setup


def non_broadcastable_at_run(tmp):
    g, x, _, good = base()
    with g.as_default():
        w = gj.placeholder(F32, [None], name="w")
        out, line = x * w, here()
    bad = lambda sess: sess.run(out, {x: ONES, w: np.ones(4, F32)})
    return Setup(g, bad, line, good)


def matmul_mismatch_at_run(tmp):
    g, x, _, good = base()
    with g.as_default():
        w = gj.placeholder(F32, [None, None], name="w")
        out, line = gj.matmul(x, w), here()
    bad = lambda sess: sess.run(out, {x: ONES, w: np.ones((4, 2), F32)})
    return Setup(g, bad, line, good)


def grad_ys_of_the_wrong_shape_at_run(tmp):
    g, x, _, good = base()
    with g.as_default():
        (dx,), line = gj.gradients(good[0], [x], grad_ys=[np.ones(5, F32)]), here()
    return Setup(g, lambda sess: sess.run(dx, {x: ONES}), line, good)


# ---- huge results: a ResourceError before anything is allocated -----------------------------


def huge(make):
    def setup(tmp):
        g, x, _, good = base()
        with g.as_default():
            v = gj.placeholder(F32, [None], name="v")
            out = make(v)
        return Setup(g, lambda sess: sess.run(out, {v: np.ones(HUGE, F32)}), line_of(make), good)

    return setup


# ---- files and text --------------------------------------------------------------------------


def with_checkpoint(damage):
    """Save a good checkpoint, `damage(path)` it, restore: nothing may change."""

    def setup(tmp):
        g, x, _, good = base()
        with g.as_default():
            v = gj.Variable(np.arange(3, dtype=F32), name="v")
            read = x * v
        path = os.path.join(tmp, "model.ckpt")

        def bad(sess):
            sess.save(path)
            damage(path)
            sess.restore(path)

        return Setup(g, bad, None, (read, {x: ONES}, [[0.0, 1.0, 2.0]] * 2))

    return setup


def flip_a_byte(path):
    data = bytearray(open(path, "rb").read())
    data[len(data) // 2] ^= 0xFF
    open(path, "wb").write(bytes(data))


def truncate(path):
    data = open(path, "rb").read()
    open(path, "wb").write(data[: len(data) // 3])


def save_other_variables(shape, dtype=F32, name="v"):
    def damage(path):
        with gj.Graph().as_default():
            gj.Variable(np.zeros(shape, dtype), name=name)
            other = gj.Session(gj.get_default_graph(), backend="interpreter")
        other.save(path)

    return damage


def save_plain_npz(path):
    with open(path, "wb") as f:
        np.savez(f, v=np.zeros(3, F32))


def parsing(text):
    def setup(tmp):
        g, x, _, good = base()
        return Setup(g, lambda sess: gj.ir.parse(text), None, good)

    return setup


def unknown_backend(tmp):
    g, x, _, good = base()
    bad, line = (lambda sess: gj.Session(g, backend="tpu")), here()
    return Setup(g, bad, line, good)


def bad_cache_size(tmp):
    g, x, _, good = base()
    bad, line = (lambda sess: gj.Session(g, cache_size=0)), here()
    return Setup(g, bad, line, good)


S = gj.ShapeError
CATALOGUE = [
    Bad("feed of the wrong shape", feeding(np.ones((2, 4), F32)), FeedShapeError, ("(2, 4)",)),
    Bad("feed of the wrong rank", feeding(np.ones(3, F32)), FeedShapeError, ("'x'",)),
    Bad("feed of the wrong dtype", feeding(np.ones((2, 3), complex)), FeedDTypeError, ("complex",)),
    Bad("feed of a string", feeding("abc"), FeedDTypeError, ("'x'",)),
    Bad("feed of a non-numeric object", feeding(object()), gj.FeedError, ("object",)),
    Bad("feed of None", feeding(None), gj.FeedError, ("'x'",)),
    Bad("feed of a ragged list", feeding([[1.0, 2.0, 3.0], [1.0]]), gj.FeedError, ("'x'",)),
    Bad("missing feed", missing_feed, gj.FeedError, ("'k'", "feed_dict")),
    Bad("feed of an unknown name", feed_unknown_name, gj.FeedError, ("'nope'",)),
    Bad("feed of a computed tensor", feed_a_computed_tensor, gj.FeedError, ("'exp'",)),
    Bad("feed from another graph", feed_another_graphs_placeholder, gj.FeedError, ("'other'",)),
    Bad("fetch of a Python object", fetching(lambda x: object()), gj.FetchError, ("object",)),
    Bad("fetch of a name", fetching(lambda x: "y"), gj.FetchError, ("'y'",)),
    Bad("fetch of None", fetching(lambda x: [None]), gj.FetchError, ("None",)),
    Bad("fetch from another graph", fetch_another_graphs_tensor, gj.FetchError, ("'exp'",)),
    Bad("fetch inside a cond branch", fetch_inside_a_cond_branch, gj.FetchError, ("cond",)),
    Bad("NaN feed under check_numerics", nan_feed_checked, gj.NumericsError, ("'mul'", "NaN")),
    Bad("overflow under check_numerics", overflow_checked, gj.NumericsError, ("'exp'", "inf")),
    Bad("check_numerics op", check_numerics_op, gj.NumericsError, ("log went wrong",)),
    Bad("shapes that never broadcast", building(lambda x: x + np.ones(4, F32)), S, ("'add'",)),
    Bad("shapes that do not broadcast at run time", non_broadcastable_at_run, S, ("'mul'",)),
    Bad("matmul of a scalar", building(lambda x: gj.matmul(gj.sum(x), x)), S, ("matmul",)),
    Bad("matmul of mismatched shapes", building(lambda x: x @ np.ones((4, 2), F32)), S, ("'matmul'",)),
    Bad("matmul mismatch at run time", matmul_mismatch_at_run, S, ("'matmul'",)),
    Bad("impossible reshape", specialising(lambda x: gj.reshape(x, [-1, 4]), (3, 3)), S, ("'reshape'",)),
    Bad("reduction axis out of range", building(lambda x: gj.sum(x, axis=2)), S, ("axis 2",)),
    Bad("index out of range", building(lambda x: x[:, 3]), S, ("index 3",)),
    Bad("transpose with a bad permutation", building(lambda x: gj.transpose(x, (0, 0))), S, ("axes",)),
    Bad("concat of different ranks", building(lambda x: gj.concat([x, x[0]], 0)), S, ("'concat'",)),
    Bad("one_hot of floats", building(lambda x: gj.one_hot(x, 3)), gj.DTypeError, ("integer",)),
    Bad("placeholder of a bad dtype", building(lambda x: gj.placeholder("complex64", [2])), gj.DTypeError, ("complex64",)),
    Bad("placeholder of a negative size", building(lambda x: gj.placeholder(F32, [-3])), S, ("negative",)),
    Bad("cond branches of different dtypes", building(lambda x: gj.cond(gj.sum(x) > 0, lambda: x, lambda: gj.cast(x, gj.int32))), gj.ControlFlowError, ("cond",)),
    Bad("cond branches of different shapes", building(lambda x: gj.cond(gj.sum(x) > 0, lambda: x, lambda: x[0])), gj.ControlFlowError, ("cond",)),
    Bad("cond on a tensor that is not a boolean scalar", building(lambda x: gj.cond(x, lambda: x, lambda: x)), gj.DTypeError, ("predicate",)),
    Bad("loop body that changes a shape", building(lambda x: gj.while_loop(lambda a: gj.sum(a) < 9, lambda a: gj.concat([a, a], 1), [x])), gj.ControlFlowError, ("shape",)),
    Bad("loop body that changes a dtype", building(lambda x: gj.while_loop(lambda a: gj.sum(a) < 9, lambda a: gj.cast(a, gj.float64), [x])), gj.ControlFlowError, ("while_loop",)),
    Bad("loop body returning two values for one", building(lambda x: gj.while_loop(lambda a: gj.sum(a) < 9, lambda a: (a, a), [x])), gj.ControlFlowError, ("2 values",)),
    Bad("loop with a bad max_iterations", building(lambda x: gj.while_loop(lambda a: gj.sum(a) < 1, lambda a: a, [x], max_iterations=-2)), gj.ControlFlowError, ("max_iterations",)),
    Bad("Python if on a graph tensor", building(lambda x: bool(gj.sum(x) > 0)), gj.GraphjitError, ("gj.cond",)),
    Bad("gradient with respect to a number", building(lambda x: gj.gradients(gj.sum(x), [3.0])), gj.GradientError, ("xs",)),
    Bad("grad_ys of the wrong shape", grad_ys_of_the_wrong_shape_at_run, S, ("do not broadcast",)),
    Bad("assign of the wrong shape", building(lambda x: gj.Variable(np.ones(3, F32), name="w").assign(np.ones(4, F32))), S, ("'w'",)),
    Bad("outer product of 10^12 elements", huge(lambda v: v[:, None] * v[None, :]), gj.ResourceError, ("'mul'", "TiB")),
    Bad("broadcast to 10^13 elements", huge(lambda v: gj.broadcast_to(v, (10 * HUGE, HUGE))), gj.ResourceError, ("'broadcast_to'",)),
    Bad("broadcast to 2^64 elements (int64 wraps to 0)", huge(lambda v: gj.broadcast_to(v[:1], (2**32, 2**32))), gj.ResourceError, ("'broadcast_to'", "PiB")),
    Bad("concat of huge broadcasts", huge(lambda v: gj.concat([v[None, :] + v[:, None]] * 2, 0)), gj.ResourceError, ("'add'",)),
    Bad("malformed IR text", parsing("func.func @f( {\n"), gj.ParseError, ("line 1, column 15",)),
    Bad("IR text with an unknown op", parsing('func.func @f() {\n  %0 = "gj.bogus"() : () -> ()\n}\n'), gj.ParseError, ('"gj.bogus"', "line 2")),
    Bad("IR text using an undefined value", parsing("func.func @f() {\n  func.return %9 : tensor<f32>\n}\n"), gj.ParseError, ("%9", "line 2")),
    Bad("corrupted checkpoint", with_checkpoint(flip_a_byte), gj.CheckpointError, ("model.ckpt",)),
    Bad("truncated checkpoint", with_checkpoint(truncate), gj.CheckpointError, ("corrupt",)),
    Bad("checkpoint of another graph (shape)", with_checkpoint(save_other_variables(4)), gj.CheckpointError, ("'v'",)),
    Bad("checkpoint of another graph (dtype)", with_checkpoint(save_other_variables(3, np.float64)), gj.CheckpointError, ("float64",)),
    Bad("checkpoint of another graph (names)", with_checkpoint(save_other_variables(3, name="u")), gj.CheckpointError, ("no variable 'v'",)),
    Bad("checkpoint that is a plain .npz", with_checkpoint(save_plain_npz), gj.CheckpointError, ("not a graphjit checkpoint",)),
    Bad("checkpoint that is missing", with_checkpoint(os.remove), gj.CheckpointError, ("no checkpoint",)),
    Bad("unknown backend", unknown_backend, gj.errors.BackendError, ("'tpu'",)),
    Bad("cache of no entries", bad_cache_size, gj.errors.BackendError, ("cache_size",)),
]  # fmt: skip
