"""Row chains (codegen/llvm/row_chains.py): softmax, layer norm and their gradients run
their kernels row by row as one loop, with the bits of the kernels run one after another
(column sums, such as a layer norm weight's gradient, included), values only the chain
reads stay in a row of scratch, and a chain is refused when the memory plan puts a value a
kernel writes over bytes of another value of the chain that are not the same rows."""

from __future__ import annotations

import dataclasses

import numpy as np
import pytest
from llvm_helpers import assert_matches, record_llvm_ir, run_on

import graphjit as gj
from graphjit.codegen.llvm import row_chains
from graphjit.passes.memory import ARENA
from graphjit.passes.pipeline import optimize
from graphjit.runtime.program import build_program


def _functions(text: str, prefix: str) -> int:
    return sum(line.startswith(f'define internal void @"{prefix}') for line in text.splitlines())


def _row_graphs(shape):
    """Softmax, layer norm and both gradients over the last axis of `shape`."""
    rng = np.random.default_rng(4)
    x_value = rng.normal(scale=3, size=shape).astype(np.float32)
    x_value.reshape(-1)[5] = np.nan  # a NaN row among finite ones
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape, name="x")
        dy = gj.placeholder(gj.float32, shape, name="dy")
        w = gj.placeholder(gj.float32, shape[-1:], name="w")
        b = gj.placeholder(gj.float32, shape[-1:], name="b")
        soft = gj.softmax(x, axis=-1)
        norm = gj.nn.layer_norm(x, shape[-1:], w, b)
        graphs = {
            "softmax": [soft],
            "softmax_grad": [soft, *gj.gradients(soft, [x], dy)],
            "layer_norm": [norm],
            "layer_norm_grad": [norm, *gj.gradients(norm, [x, w, b], dy)],
        }
    feeds = {
        x: x_value,
        dy: rng.normal(size=shape).astype(np.float32),
        w: rng.normal(size=shape[-1:]).astype(np.float32),
        b: rng.normal(size=shape[-1:]).astype(np.float32),
    }
    return g, graphs, feeds


@pytest.mark.parametrize("shape", [(64, 300), (4, 6, 40)], ids=["rows", "batch x time"])
@pytest.mark.parametrize("name", ["softmax", "softmax_grad", "layer_norm", "layer_norm_grad"])
def test_row_kernels_chain_with_the_bits_of_separate_kernels(monkeypatch, name, shape):
    g, graphs, feeds = _row_graphs(shape)
    fetches = graphs[name]
    texts = record_llvm_ir(monkeypatch)
    chained = run_on("llvm", g, fetches, feeds)
    assert _functions(texts[-1], "rows") >= 1, "no row chain"
    monkeypatch.setattr(row_chains, "plan_chains", lambda low, ops: {})
    separate = run_on("llvm", g, fetches, feeds)
    assert _functions(texts[-1], "rows") == 0
    expected = run_on("interpreter", g, fetches, feeds)
    for k, (a, s, e) in enumerate(zip(chained, separate, expected, strict=True)):
        np.testing.assert_array_equal(a, s, err_msg=f"fetch {k}: chained vs separate kernels")
        assert_matches(a, e, f"fetch {k}", rtol=2e-5, atol=1e-5)  # (sums over 64 rows)


def test_chains_split_over_threads_by_rows(monkeypatch):
    """A chain large enough is split over threads (by rows, bit-identical at any count)."""
    g, graphs, feeds = _row_graphs((512, 1024))
    texts = record_llvm_ir(monkeypatch)
    with gj.Session(g) as sess:
        gj.set_num_threads(1)
        one = sess.run(graphs["softmax_grad"], feeds)
        assert 'define internal i8* @"rows' in texts[-1]  # the chain's thread task
        gj.set_num_threads(2)
        two = sess.run(graphs["softmax_grad"], feeds)
    for a, b in zip(one, two, strict=True):
        np.testing.assert_array_equal(a, b)


def _softmax_members():
    """The optimised softmax function's fused ops (as chain members) and its plan."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [64, 300], name="x")
        y = gj.softmax(gj.exp(x), axis=-1)  # exp(x): an arena value the chain reads
    program = build_program(g, [y], [], {})
    optimize(program.function)
    ops = [op for op in program.function.block.ops if op.name == "fused"]
    return ops, program.function.memory_plan


class _FakeLowering:
    """What row_chains reads of a Lowering: the plan, pointers of non-arena storage."""

    numerics = None

    def __init__(self, plan):
        self.plan, self.pointers = plan, {}

    def ptr(self, v):
        return self.pointers.setdefault(v, object())


def test_a_plan_reusing_bytes_for_another_shape_refuses_the_chain():
    ops, plan = _softmax_members()
    assert row_chains.plan_chains(_FakeLowering(plan), ops) == {0: ops}
    # move the last kernel's result onto the bytes of the row maxima ([64, 1]) that an
    # earlier kernel of the chain reads: row r of the result would overwrite maxima of
    # later rows before they are read
    maxima = next(v for op in ops[:-1] for v in op.results if v.type.shape == (64, 1))
    last = ops[-1].results[0]
    buffers = dict(plan.buffers)
    buffers[maxima] = dataclasses.replace(buffers[maxima], kind=ARENA, offset=1 << 20)
    buffers[last] = dataclasses.replace(buffers[last], kind=ARENA, offset=(1 << 20) - 64)
    moved = dataclasses.replace(plan, buffers=buffers)
    chains = row_chains.plan_chains(_FakeLowering(moved), ops)
    assert all(last.op not in chain for chain in chains.values())


@pytest.mark.parametrize(
    "shape, reduce",
    [((256,), False), ((64, 300), False), ((512, 8), True)],
    ids=["1-d elementwise", "rows without a reduction", "rows of 8 elements"],
)
def test_no_chain_where_it_would_cost_the_vector_loops(monkeypatch, shape, reduce):
    """Kernels of elementwise ops alone (a chain the fusion cap cut), and rows too short
    for a vector loop, keep their own loops over the whole tensor (a 1-d chain of
    1-element rows ran 9x slower)."""
    from graphjit.bench.workloads.compile_scaling import chain

    texts = record_llvm_ir(monkeypatch)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape, name="x")
        y = chain(x, 300, gj.tanh)  # several kernels: fusion.MAX_KERNEL_OPS is 128
        if reduce:
            y = gj.softmax(y, axis=-1)
    feeds = {x: np.random.default_rng(0).normal(size=shape).astype(np.float32)}
    got = run_on("llvm", g, y, feeds)
    assert _functions(texts[-1], "kernel") >= 3
    assert _functions(texts[-1], "rows") == 0
    assert_matches(got, run_on("interpreter", g, y, feeds), "chain", rtol=2e-5, atol=1e-6)


def _on_one_thread_and_two(g, fetches, feeds):
    with gj.Session(g) as sess:
        gj.set_num_threads(1)
        one = sess.run(fetches, feeds)
        gj.set_num_threads(2)
        two = sess.run(fetches, feeds)
    gj.set_num_threads(gj.config.num_threads())
    return one, two


def _layer_norm_grad(shape, dtype):
    g, graphs, feeds = _row_graphs(shape)
    if dtype != np.float32:
        g = gj.Graph()
        with g.as_default():
            x, dy = (gj.placeholder(gj.float64, shape, name=n) for n in ("x", "dy"))
            w, b = (gj.placeholder(gj.float64, shape[-1:], name=n) for n in ("w", "b"))
            norm = gj.nn.layer_norm(x, shape[-1:], w, b)
            fetches = [norm, *gj.gradients(norm, [x, w, b], dy)]
        feeds = {p: feeds[q].astype(np.float64) for p, q in zip([x, dy, w, b], feeds)}
        return g, fetches, feeds
    return g, graphs["layer_norm_grad"], feeds


@pytest.mark.parametrize(
    "shape, dtype",
    [((1000, 256), np.float32), ((40, 96), np.float64), ((12, 80), np.float32)],
    ids=["rows not a multiple of 16", "float64", "one block of rows"],
)
def test_layer_norm_gradient_runs_as_one_chain_with_its_column_sums(monkeypatch, shape, dtype):
    """The weight's and bias's gradients (sums over the rows) no longer cut the chain: all
    the kernels run as one, with the bits of separate kernels, on 1 thread or 2."""
    g, fetches, feeds = _layer_norm_grad(shape, dtype)
    texts = record_llvm_ir(monkeypatch)
    one, two = _on_one_thread_and_two(g, fetches, feeds)
    assert _functions(texts[-1], "rows") == 1, "one chain"
    monkeypatch.setattr(row_chains, "plan_chains", lambda low, ops: {})
    separate = run_on("llvm", g, fetches, feeds)
    expected = run_on("interpreter", g, fetches, feeds)
    for k, (a, b, s, e) in enumerate(zip(one, two, separate, expected, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"fetch {k}: 1 thread vs 2")
        np.testing.assert_array_equal(a, s, err_msg=f"fetch {k}: chained vs separate kernels")
        assert_matches(a, e, f"fetch {k}", rtol=2e-5, atol=1e-4)  # (sums of 1000 rows)


def test_values_only_the_chain_reads_stay_in_row_scratch(monkeypatch):
    """Of layer norm's gradient, only the inputs and the returned values are tensors in
    memory: the four row-sized intermediates the chain alone reads are rows of scratch."""
    g, fetches, feeds = _layer_norm_grad((256, 128), np.float32)
    kept = []
    make = row_chains._RowScratch.__init__

    def recording(self, low, members, blocks):
        make(self, low, members, blocks)
        kept.append((self, row_chains._values(members), set(low.returned)))

    monkeypatch.setattr(row_chains._RowScratch, "__init__", recording)
    got = run_on("llvm", g, fetches, feeds)
    (scratch, values, returned) = kept[-1]
    big = [v for v in values if v.type.shape == (256, 128)]
    in_memory = [v for v in big if v not in scratch.values]
    assert len(big) - len(in_memory) >= 3, "intermediates in scratch"
    inputs = [v for v in in_memory if v.op is None]
    assert len(inputs) == 2 and len(in_memory) == 4  # x and dy; y and dx
    assert all(v in returned for v in in_memory if v.op is not None)
    expected = run_on("interpreter", g, fetches, feeds)
    for k, (a, e) in enumerate(zip(got, expected, strict=True)):
        assert_matches(a, e, f"fetch {k}", rtol=2e-5, atol=1e-5)


def test_the_same_program_built_again_makes_the_same_module(monkeypatch):
    """The chain's scratch rows are laid out in the order the values appear, not a set's
    (which follows the values' addresses): otherwise a program built again compiles to
    another module and misses the in-memory and disk compile caches."""
    texts = record_llvm_ir(monkeypatch)
    for _ in range(4):
        g, fetches, feeds = _layer_norm_grad((256, 128), np.float32)
        run_on("llvm", g, fetches, feeds)
    assert _functions(texts[0], "rows") == 1, "one chain"
    assert all(text == texts[0] for text in texts[1:])


def test_a_column_sum_read_in_the_chain_ends_it(monkeypatch):
    """A kernel that reads a column sum needs it whole: it cannot run in the same chain,
    row by row, as the sum."""
    rng = np.random.default_rng(2)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [200, 64], name="x")
        scaled = gj.exp(x) * 0.5
        centred = scaled - gj.reduce_sum(scaled, axis=0)  # the next kernel reads the sum
        y = gj.softmax(centred, axis=-1)
    feeds = {x: rng.normal(size=(200, 64)).astype(np.float32)}
    texts = record_llvm_ir(monkeypatch)
    got = run_on("llvm", g, y, feeds)
    assert _functions(texts[-1], "rows") == 1  # the softmax's chain, after the sum
    # (x - a sum of 200 values: cancellation costs digits; read too early it is 0.99 off)
    assert_matches(got, run_on("interpreter", g, y, feeds), "y", rtol=1e-4, atol=1e-5)


def _recorded_groups(monkeypatch) -> list:
    """The sizes of the groups of each chain lowered from now on (row_chains._groups)."""
    seen, group = [], row_chains._groups

    def recording(members):
        groups = group(members)
        seen.append([len(g) for g in groups])
        return groups

    monkeypatch.setattr(row_chains, "_groups", recording)
    return seen


@pytest.mark.parametrize("dtype", [np.float32, np.float64])
@pytest.mark.parametrize("width", [64, 100, 256, 1000, 1024])  # (chains: 64 or more)
def test_kernels_that_read_no_row_fold_of_each_other_share_one_loop_a_row(
    monkeypatch, width, dtype
):
    """Layer norm's gradient: the bias's and the weight's gradients (column sums) and the
    row fold of the gradient's first term read the same rows and none of the others'
    folds: one loop over each row runs all three, with the bits of separate kernels."""
    g, fetches, feeds = _layer_norm_grad((50, width), dtype)
    groups = _recorded_groups(monkeypatch)
    one, two = _on_one_thread_and_two(g, fetches, feeds)
    assert len(groups) == 1 and 3 in groups[0], groups
    monkeypatch.setattr(row_chains, "plan_chains", lambda low, ops: {})
    separate = run_on("llvm", g, fetches, feeds)
    for k, (a, b, s) in enumerate(zip(one, two, separate, strict=True)):
        np.testing.assert_array_equal(a, b, err_msg=f"fetch {k}: 1 thread vs 2")
        np.testing.assert_array_equal(a, s, err_msg=f"fetch {k}: shared loop vs separate kernels")


def test_a_kernel_that_reads_a_row_fold_of_the_chain_loops_over_the_row_after_it(monkeypatch):
    """Softmax: the exponentials' sum needs the row's maximum, and the division the sum,
    whole: each of its kernels runs its own loop over the row."""
    g, graphs, feeds = _row_graphs((64, 300))
    groups = _recorded_groups(monkeypatch)
    run_on("llvm", g, graphs["softmax"], feeds)
    assert groups == [[1, 1, 1]]


@pytest.mark.parametrize("rows", [40, 7, 0])
def test_kernels_share_a_loop_a_row_when_the_rows_are_a_size_of_the_run(monkeypatch, rows):
    """Layer norm's and softmax's gradients over a batch of any size (ir/symbolic.py), in
    one program: groups form (softmax's exponentials and their sum beside layer norm's
    column sums), with the bits of separate kernels."""
    rng = np.random.default_rng(7)
    width = 96
    g = gj.Graph()
    with g.as_default():
        x, dy = (gj.placeholder(gj.float32, [None, width], name=n) for n in ("x", "dy"))
        w, b = (gj.placeholder(gj.float32, [width], name=n) for n in ("w", "b"))
        norm = gj.nn.layer_norm(x, [width], w, b)
        soft = gj.softmax(x, axis=-1)
        fetches = [norm, *gj.gradients(norm, [x, w, b], dy), *gj.gradients(soft, [x], dy)]
    feeds = {x: rng.normal(size=(rows, width)), dy: rng.normal(size=(rows, width))}
    feeds |= {w: rng.normal(size=width), b: rng.normal(size=width)}
    feeds = {k: v.astype(np.float32) for k, v in feeds.items()}
    groups = _recorded_groups(monkeypatch)
    shared = run_on("llvm", g, fetches, feeds)
    # (no rows: a program compiled for an empty batch has no chain)
    assert any(size > 1 for sizes in groups for size in sizes) or rows == 0, groups
    monkeypatch.setattr(row_chains, "plan_chains", lambda low, ops: {})
    separate = run_on("llvm", g, fetches, feeds)
    expected = run_on("interpreter", g, fetches, feeds)
    for k, (a, s, e) in enumerate(zip(shared, separate, expected, strict=True)):
        np.testing.assert_array_equal(a, s, err_msg=f"fetch {k}: shared loop vs separate kernels")
        assert_matches(a, e, f"fetch {k}", rtol=2e-5, atol=1e-4)


def _random_row_program(rng, rows: int, width: int):
    """A random program of row-wise work over (rows, width) float32 values: elementwise ops
    on them and on values broadcast along the rows or the columns, row sums and maxima
    (read again, broadcast), and column sums (fetched only: read in the chain, one ends
    it)."""
    g = gj.Graph()
    with g.as_default():
        x, y = (gj.placeholder(gj.float32, [rows, width], name=n) for n in ("x", "y"))
        w = gj.placeholder(gj.float32, [width], name="w")
        full, per_row, fetches = [x, y], [], []
        for _ in range(int(rng.integers(6, 14))):
            a = full[int(rng.integers(len(full)))]
            kind = rng.choice(["unary", "binary", "row", "column"], p=[0.25, 0.35, 0.25, 0.15])
            if kind == "unary":
                full.append(gj.tanh(a) if rng.random() < 0.5 else a * 0.5 - 1.0)
            elif kind == "binary":
                others = full + per_row + [w]
                b = others[int(rng.integers(len(others)))]
                full.append(a * b if rng.random() < 0.5 else a - b)
            elif kind == "row":
                fold = gj.reduce_sum if rng.random() < 0.6 else gj.reduce_max
                per_row.append(fold(a, axis=1, keepdims=True))
            else:
                fetches.append(gj.reduce_sum(a, axis=0))
        fetches += full[2:][-3:] + per_row[-2:]
    feeds = {
        x: rng.normal(size=(rows, width)).astype(np.float32),
        y: rng.normal(size=(rows, width)).astype(np.float32),
        w: rng.normal(size=width).astype(np.float32),
    }
    return g, fetches or [full[-1]], feeds


def test_random_row_programs_have_the_bits_of_separate_kernels(monkeypatch):
    """Random chains of row-wise kernels (how they group is theirs to decide): the same
    bits as each kernel run on its own over the whole tensor, and the interpreter's
    values."""
    rng = np.random.default_rng(18)
    groups = _recorded_groups(monkeypatch)
    chain = row_chains.plan_chains
    for case in range(30):
        rows, width = int(rng.integers(20, 70)), int(rng.choice([64, 80, 130]))
        g, fetches, feeds = _random_row_program(rng, rows, width)
        monkeypatch.setattr(row_chains, "plan_chains", chain)
        chained = run_on("llvm", g, fetches, feeds)
        monkeypatch.setattr(row_chains, "plan_chains", lambda low, ops: {})
        separate = run_on("llvm", g, fetches, feeds)
        expected = run_on("interpreter", g, fetches, feeds)
        for k, (a, s, e) in enumerate(zip(chained, separate, expected, strict=True)):
            what = f"case {case}, fetch {k}"
            np.testing.assert_array_equal(a, s, err_msg=f"{what}: chained vs separate kernels")
            assert_matches(a, e, what, rtol=1e-4, atol=1e-3)  # (sums of up to 70 terms)
    shared = sum(size > 1 for sizes in groups for size in sizes)
    assert shared >= 5, groups  # (the programs exercise shared loops, not just chains)


def test_long_programs_check_few_candidate_chains(monkeypatch):
    """Chains grow from a start only while one of them could fold rows, and to at most
    MAX_MEMBERS kernels: a long program of elementwise kernels (a whole eager backward
    pass compiled, compiled_backward.py) took a compile cubic in its length (1000 steps of
    tanh(x * w): 152 s)."""
    count, every = 2000, 500
    members = {
        i: row_chains._Member(
            op=None, rows=64, row_local=set(), reduces=i % every == 7, row_elements=300
        )  # fmt: skip
        for i in range(count)
    }
    monkeypatch.setattr(row_chains, "_member", members.get)
    checked = []

    def fits(run):
        checked.append(len(run))
        return True

    runs = row_chains._runs(list(range(count)), fits)
    folds = [i for i in range(count) if members[i].reduces]
    assert all(any(members[f] in run for run in runs.values()) for f in folds)
    assert max(checked) <= row_chains.MAX_MEMBERS
    assert all(len(run) <= row_chains.MAX_MEMBERS for run in runs.values())
    assert len(checked) <= 2 * row_chains.MAX_MEMBERS * len(folds)  # (not ~count * 31)
