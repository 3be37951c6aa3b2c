"""The llvm backend handles every registered op, and fails cleanly when it cannot: an op it
cannot lower, or a bug in a lowering or a scalar emitter, is a BackendError naming the IR
op; LLVM IR that does not parse or verify is a BackendError, never a crash."""

from __future__ import annotations

import ctypes
import subprocess
import sys
import textwrap

import numpy as np
import pytest
from llvm_helpers import compare_backends
from llvmlite import ir

import graphjit as gj
from graphjit.codegen.llvm.jit import compile_module
from graphjit.codegen.llvm.lower import LOWERINGS
from graphjit.codegen.llvm.scalar import SCALAR_EMITTERS, combine, identity
from graphjit.codegen.llvm.types import register_type
from graphjit.errors import BackendError
from graphjit.ir.ops import INDEX_MAP, REDUCTION, VALUE_SHAPED, all_ops
from graphjit.ir.types import as_dtype

# Terminators end the block being lowered; placeholders and variables become the entry
# point's arguments when the program is built: none of them is ever lowered.
STRUCTURAL = frozenset({"yield", "condition", "return", "placeholder", "variable"})


def how_handled(name: str) -> str | None:
    opdef = all_ops()[name]
    if name in LOWERINGS:
        return "lowered by the entry point"
    if name in STRUCTURAL:
        return "structural"
    if opdef.has(REDUCTION):
        return "folded by scalar.combine"  # checked by test_reductions_fold_with_combine
    if opdef.has(VALUE_SHAPED):
        return "run on the host between compiled stages (runtime/staged.py)"
    if opdef.decompose is not None:
        return "replaced by the ops it stands for when the program is built"
    if (opdef.elementwise or opdef.has(INDEX_MAP)) and name in SCALAR_EMITTERS:
        return "scalar emitter in fused kernels"
    return None


@pytest.mark.parametrize("name", sorted(all_ops()))
def test_every_registered_op_is_handled(name):
    assert how_handled(name), (
        f"the llvm backend has no rule for '{name}': add it to lower.LOWERINGS, or (if it "
        "is elementwise) to scalar.SCALAR_EMITTERS"
    )


def test_list_ops_are_lowered_by_the_entry_point():
    """Tensor lists are not fusible: each list op needs a lowering of its own."""
    list_ops = {name for name in all_ops() if name.startswith("list_")}
    assert len(list_ops) >= 6
    assert list_ops <= set(LOWERINGS), sorted(list_ops - set(LOWERINGS))


def test_tables_name_only_registered_ops():
    registered = set(all_ops())
    assert set(LOWERINGS) <= registered, sorted(set(LOWERINGS) - registered)
    assert set(SCALAR_EMITTERS) <= registered, sorted(set(SCALAR_EMITTERS) - registered)
    for name in SCALAR_EMITTERS:  # only fused kernels use the table: fusible ops only
        assert all_ops()[name].elementwise or all_ops()[name].has(INDEX_MAP), name
    assert not STRUCTURAL & set(LOWERINGS)


def test_structural_ops_never_reach_the_backend():
    """Placeholders, variables, assign/group and cond/while terminators, run twice."""
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [3], name="x")
        v = gj.Variable(np.array([1.0, -2.0, 0.5]), name="v")
        w = gj.Variable(np.zeros(3), name="w")
        y = gj.cond(gj.sum(x) > 0, lambda: x * v, lambda: x - v)
        _, z = gj.while_loop(lambda i, a: i < 3, lambda i, a: (i + 1, a + y + w), [0, v])
        step = gj.group(v.assign(z * 0.5), w.assign_add(x))
    compare_backends(g, [y, z, step], {x: np.array([0.5, 1.0, -0.25])}, runs=2)


# ---- reductions ------------------------------------------------------------------------------

REDUCTION_DTYPES = ("float64", "float32", "int64", "int32")
NUMPY_FOLD = {"reduce_sum": np.add, "sum_to": np.add, "reduce_max": np.maximum}
NUMPY_FOLD["reduce_min"] = np.minimum
NUMPY_FOLD["reduce_prod"] = np.multiply


def _fold_functions(module, name, dtype):
    """`T fold(T acc, T x)` = combine, and `T start()` = identity."""
    t = register_type(dtype)
    fold = ir.Function(module, ir.FunctionType(t, [t, t]), f"fold_{name}_{dtype.name}")
    b = ir.IRBuilder(fold.append_basic_block())
    b.ret(combine(b, name, *fold.args, dtype))
    start = ir.Function(module, ir.FunctionType(t, []), f"start_{name}_{dtype.name}")
    b = ir.IRBuilder(start.append_basic_block())
    b.ret(identity(name, dtype))


def test_reductions_fold_with_combine():
    """Every fusible reduction has a combine rule and an identity, in every dtype: the
    identity is neutral and one fold step equals NumPy's (NaN propagates through max/min)."""
    reductions = sorted(n for n, d in all_ops().items() if d.has(REDUCTION))
    assert set(reductions) == set(NUMPY_FOLD)
    module = ir.Module("reductions")
    for name in reductions:
        for dtype_name in REDUCTION_DTYPES:
            _fold_functions(module, name, as_dtype(dtype_name))
    compiled = compile_module(str(module))
    for name in reductions:
        for dtype_name in REDUCTION_DTYPES:
            np_t = np.dtype(dtype_name).type
            c_t = np.ctypeslib.as_ctypes_type(np.dtype(dtype_name))
            fold = ctypes.CFUNCTYPE(c_t, c_t, c_t)(compiled.address(f"fold_{name}_{dtype_name}"))
            start = ctypes.CFUNCTYPE(c_t)(compiled.address(f"start_{name}_{dtype_name}"))()
            values = [-7, 0, 3, 2**20]
            if dtype_name.startswith("float"):
                values += [np.nan, np.inf, -np.inf, -0.0, 0.25]
            for x in map(np_t, values):
                neutral = np_t(fold(start, x))
                assert np.array_equal(neutral, x, equal_nan=True), (name, dtype_name, x)
                for acc in map(np_t, values):
                    with np.errstate(invalid="ignore"):  # inf + -inf
                        want = NUMPY_FOLD[name](acc, x)
                    got = np_t(fold(acc, x))
                    assert np.array_equal(got, want, equal_nan=True), (name, dtype_name, acc, x)


def test_combine_rejects_an_unknown_reduction():
    module = ir.Module("unknown")
    t = register_type(as_dtype("float64"))
    fn = ir.Function(module, ir.FunctionType(t, [t, t]), "f")
    b = ir.IRBuilder(fn.append_basic_block())
    with pytest.raises(BackendError, match="reduce_median"):
        combine(b, "reduce_median", *fn.args, as_dtype("float64"))
    with pytest.raises(BackendError, match="reduce_median"):
        identity("reduce_median", as_dtype("float64"))


# ---- invalid LLVM IR ---------------------------------------------------------------------------

NOT_DOMINATED = """
define i32 @f(i1 %c) {
entry:
  br i1 %c, label %then, label %join
then:
  %x = add i32 1, 2
  br label %join
join:
  ret i32 %x
}
"""


def test_ir_that_does_not_parse_is_a_backend_error():
    with pytest.raises(BackendError, match="invalid"):
        compile_module("define i32 @f() {\n  ret i64 0\n}\n")
    with pytest.raises(BackendError, match="invalid"):
        compile_module("this is not LLVM IR")


def test_ir_that_does_not_verify_is_a_backend_error_every_time():
    """The module parses but a use is not dominated by its definition: the verifier catches
    it before code generation (which could crash on it). A failure is not cached."""
    for _ in range(2):
        with pytest.raises(BackendError, match="dominate"):
            compile_module(NOT_DOMINATED)


def test_compiled_modules_outlive_each_other():
    """Freeing one module's native code must leave the others (and later compiles) working:
    in a subprocess, so that a use-after-free fails this test instead of the whole run."""
    script = textwrap.dedent(
        """
        import ctypes, gc
        from graphjit.codegen.llvm.jit import CompiledModule
        SRC = "define i32 @f(i32 %x) {\\n  %y = add i32 %x, 1\\n  ret i32 %y\\n}\\n"
        kept = CompiledModule(SRC)
        for _ in range(3):
            dropped = CompiledModule(SRC)
            del dropped
            gc.collect()
        fresh = CompiledModule(SRC)
        signature = ctypes.CFUNCTYPE(ctypes.c_int32, ctypes.c_int32)
        print(signature(kept.address("f"))(41), signature(fresh.address("f"))(1))
        """
    )
    done = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.split() == ["42", "2"]


# ---- errors name the IR op -------------------------------------------------------------------


def _run_llvm(build):
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float64, [2, 3], name="x")
        y = build(x)
    with gj.Session(g, backend="llvm") as sess:
        return sess.run(y, {x: np.arange(6.0).reshape(2, 3) - 2})


def _assert_names(err, name: str) -> None:
    assert err.op is not None and err.op.name == name, err.op
    assert f"'{name}'" in str(err)
    assert "test_llvm_coverage.py" in str(err)  # where the user built it


def test_an_op_without_a_lowering_is_named(monkeypatch):
    monkeypatch.delitem(LOWERINGS, "transpose")
    with pytest.raises(BackendError, match="cannot lower") as info:
        _run_llvm(lambda x: gj.transpose(x) * 2)
    _assert_names(info.value, "transpose")


def test_a_failing_lowering_is_named(monkeypatch):
    def broken(lowering, op):
        raise ZeroDivisionError("a bug in the lowering")

    monkeypatch.setitem(LOWERINGS, "transpose", broken)
    with pytest.raises(BackendError, match="a bug in the lowering") as info:
        _run_llvm(lambda x: gj.transpose(x) * 2)
    _assert_names(info.value, "transpose")
    assert isinstance(info.value.__cause__, ZeroDivisionError)


def test_an_op_without_a_scalar_rule_is_named(monkeypatch):
    monkeypatch.delitem(SCALAR_EMITTERS, "sign")
    with pytest.raises(BackendError, match="scalar rule") as info:
        _run_llvm(lambda x: gj.sign(x * 2) + 1)
    _assert_names(info.value, "sign")


def test_a_failing_scalar_emitter_names_the_op_inside_the_kernel(monkeypatch):
    def broken(b, args, op):
        raise TypeError("a bug in the emitter")

    monkeypatch.setitem(SCALAR_EMITTERS, "sign", broken)
    with pytest.raises(BackendError, match="a bug in the emitter") as info:
        _run_llvm(lambda x: gj.sign(x * 2) + 1)
    _assert_names(info.value, "sign")


def test_an_emitter_that_builds_invalid_ir_is_a_backend_error(monkeypatch):
    """An emitter that uses another function's argument: the module does not parse."""

    def foreign(b, args, op):
        other = ir.Function(b.module, ir.FunctionType(args[0].type, [args[0].type]), "other")
        other.args[0].name = "foreign"
        return b.fadd(args[0], other.args[0])

    monkeypatch.setitem(SCALAR_EMITTERS, "sign", foreign)
    with pytest.raises(BackendError, match="invalid"):
        _run_llvm(lambda x: gj.sign(x * 2) + 1)
