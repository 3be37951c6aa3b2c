"""The cuda backend without running a kernel: its tables cover the op registry, the kernels
it generates have the intended structure, PTX compilation catches an ill-typed kernel,
and without a GPU or the simulator a Session says how to enable the simulator."""

from __future__ import annotations

import functools
import os
from types import SimpleNamespace

import numpy as np
import pytest

import graphjit as gj
from graphjit.codegen.cuda import scalar
from graphjit.codegen.cuda.compiler import compile_ptx, ptx_unavailable
from graphjit.codegen.cuda.copies import COPY_LAUNCHES
from graphjit.codegen.cuda.fused import fused_launches
from graphjit.codegen.cuda.lower import LOWERINGS, NOT_NARROW, refuse_narrow
from graphjit.codegen.cuda.matmul import matmul_launch
from graphjit.codegen.cuda.source import KernelSource
from graphjit.codegen.cuda.target import GPU, SIMULATOR
from graphjit.errors import BackendError
from graphjit.ir.ops import VALUE_SHAPED, all_ops
from graphjit.ir.types import TensorType
from graphjit.passes.pipeline import optimize
from graphjit.runtime.program import build_program

STRUCTURAL = {"placeholder", "variable", "yield", "condition", "return"}


# ---- coverage of the op registry -----------------------------------------------------------


def test_every_op_has_a_cuda_rule():
    """Elementwise ops have a scalar expression, reductions a combine rule (they only
    occur inside fused kernels), value-shaped ops run on the host between compiled stages,
    every other op a lowering or a structural role."""
    missing = []
    for name, opdef in all_ops().items():
        if opdef.decompose is not None:  # (replaced by its ops when a program is built)
            continue
        if opdef.elementwise:
            covered = name in scalar.CUDA_SCALAR
        else:
            covered = name in LOWERINGS or name in scalar.COMBINE or name in STRUCTURAL
            covered = covered or opdef.has(VALUE_SHAPED)
        if not covered:
            missing.append(name)
    assert not missing, f"ops without a cuda rule: {missing}"
    assert set(scalar.CUDA_SCALAR) <= set(all_ops()), "rules for ops that do not exist"


def optimised(build, *arrays):
    """The optimised function of build(*placeholders shaped like arrays)."""
    g = gj.Graph()
    with g.as_default():
        xs = [gj.placeholder(a.dtype, a.shape, name=f"x{i}") for i, a in enumerate(arrays)]
        out = build(*xs)
    program = build_program(g, [out], [], {})
    optimize(program.function)
    return program.function


def kernels_of(fn, cfg=GPU, check=False) -> list[KernelSource]:
    """Every kernel the backend generates for fn's top-level ops."""
    launches = []
    for op in fn.block.ops:
        if op.name == "fused":
            launches += fused_launches(op, cfg, check)
        elif op.name == "matmul":
            launches.append(matmul_launch(op, cfg))
        elif op.name in COPY_LAUNCHES:
            launches += COPY_LAUNCHES[op.name](op, cfg)
    return [launch.kernel for launch in launches]


def test_ops_without_narrow_kernels_refuse_float16_and_bfloat16():
    """Random ops' type rules refuse 16-bit floats today; their lowerings would too, naming
    the op and the dtype, rather than write float32 values into 16-bit storage."""
    assert NOT_NARROW <= set(LOWERINGS)
    result = SimpleNamespace(type=TensorType((2,), gj.bfloat16))
    op = SimpleNamespace(name="random_uniform", operands=[], results=[result])
    with pytest.raises(BackendError, match="no bfloat16 kernel for 'random_uniform'"):
        refuse_narrow(op)


def test_a_missing_scalar_rule_raises_naming_the_op(monkeypatch):
    fn = optimised(lambda x: gj.exp(x) + 1, np.zeros(3))
    monkeypatch.delitem(scalar.CUDA_SCALAR, "exp")
    with pytest.raises(BackendError, match="no scalar rule for 'exp'"):
        kernels_of(fn)


# ---- the generated kernels --------------------------------------------------------------------


def test_elementwise_kernel_is_a_grid_stride_loop_with_broadcast_indexing():
    fn = optimised(lambda x, b: gj.tanh(x * b), np.zeros((3, 4)), np.zeros(4))
    (kernel,) = kernels_of(fn)
    assert "for i in range(cuda.grid(1), 12, cuda.gridsize(1))" in kernel.source
    assert "in1[c1]" in kernel.source  # b varies along the last axis only
    assert kernel.params == ("float64", "float64", "float64")


def test_reduction_with_few_outputs_folds_partial_results_in_a_second_kernel():
    fn = optimised(lambda x: gj.sum(x * x), np.zeros((8, 1000), np.float32))
    fold, finish = kernels_of(fn)
    for kernel in (fold, finish):
        assert "cuda.shared.array(256, float32)" in kernel.source
        assert "cuda.syncthreads()" in kernel.source
        assert "atomic" not in kernel.source
    assert "part[task] = shared[0]" in fold.source
    (one_pass,) = kernels_of(optimised(lambda x: gj.sum(x, axis=1), np.zeros((2048, 3))))
    assert "out0[o] = shared[0]" in one_pass.source


def test_a_narrow_reduction_folds_in_float32_and_rounds_once_when_stored():
    x = np.zeros((8, 1000), gj.bfloat16.np)
    fold, finish = kernels_of(optimised(lambda v: gj.sum(v * v), x))
    assert fold.params == ("bfloat16", "bfloat16", "float32")  # float32 partial results
    assert finish.params == ("float32", "bfloat16")
    for kernel in (fold, finish):
        assert "cuda.shared.array(256, float32)" in kernel.source
    assert "libdevice.int_as_float" in fold.source  # loads widen, the product is rounded
    assert "part[task] = shared[0]" in fold.source
    assert "out[o] = uint16(" in finish.source


def test_matmul_kernel_is_tiled_in_shared_memory():
    fn = optimised(gj.matmul, np.zeros((2, 5, 3)), np.zeros((3, 7)))
    (kernel,) = kernels_of(fn)
    assert "sa = cuda.shared.array((16, 16), float64)" in kernel.source
    assert "sb = cuda.shared.array((16, 16), float64)" in kernel.source
    assert "bbase = 0" in kernel.source  # b is broadcast over the batch


# ---- PTX ----------------------------------------------------------------------------------------

needs_nvvm = pytest.mark.skipif(
    ptx_unavailable() is not None, reason=f"no PTX compiler here: {ptx_unavailable()}"
)

TYPED = """
def kernel(x, out):
    for i in range(cuda.grid(1), 4, cuda.gridsize(1)):
        out[i] = float32(x[i] * float32(2.0))
"""


@needs_nvvm
def test_a_well_typed_kernel_compiles_to_ptx_for_sm_90():
    ptx = compile_ptx(KernelSource(TYPED, ("float32", "float32"), "typed"))
    assert ".target sm_90" in ptx


@needs_nvvm
def test_an_ill_typed_kernel_fails_the_ptx_check():
    """Storing a tuple into a float array runs in the simulator (NumPy raises only for
    some values), but does not type-check for the GPU."""
    source = TYPED.replace("float32(x[i] * float32(2.0))", "(x[i], 1.0)")
    with pytest.raises(BackendError, match="does not compile to PTX"):
        compile_ptx(KernelSource(source, ("float32", "float32"), "ill-typed"))


def sample_functions():
    """One of each kind of kernel, in float32, float64, int32, bool and bfloat16."""
    bfloat16 = gj.bfloat16.np
    rng = np.random.default_rng(0)
    x, y = rng.normal(size=(4, 6)), rng.normal(size=(6, 3))
    return [
        optimised(lambda a, b: gj.softmax(gj.matmul(a, b)), x, y),
        optimised(lambda a: gj.argmax(gj.transpose(a), axis=1), x.astype(np.float32)),
        optimised(lambda a: gj.concat([a, a * 2], axis=0)[1:3], x.astype(np.int32)),
        optimised(lambda a: gj.logical_not(a > 0), x),
        optimised(lambda a: gj.max(gj.exp(a), axis=0), x.astype(np.float32)),
        optimised(lambda a, b: gj.softmax(a @ b), x.astype(bfloat16), y.astype(bfloat16)),
    ]


@functools.cache
def gpu_ptx(kernel: KernelSource) -> str:
    """The kernel's PTX (optimisation off), compiled once per session: a kernel that
    check_numerics leaves as it is (a matmul, a copy) is the plain case's too."""
    return compile_ptx(kernel, opt=False)


@needs_nvvm
@pytest.mark.parametrize("check", [False, True], ids=["plain", "check_numerics"])
def test_gpu_geometry_kernels_compile_to_ptx(check):
    """The simulated suite compiles its own (small-block) kernels to PTX; these are the
    geometry a GPU runs: 256-thread blocks, 16 x 16 tiles."""
    kernels = [k for fn in sample_functions() for k in kernels_of(fn, GPU, check)]
    assert len(kernels) >= 8
    for kernel in kernels:
        gpu_ptx(kernel)


def test_simulator_geometry_is_small_but_still_splits_work():
    assert SIMULATOR.block < GPU.block and SIMULATOR.tile < GPU.tile
    assert SIMULATOR.max_blocks >= 2  # several blocks: grid-stride loops are exercised


# ---- no GPU -----------------------------------------------------------------------------------------


def _gpu_present() -> bool:
    try:
        from numba import cuda
    except ImportError:
        return False
    return bool(cuda.is_available())


@pytest.mark.skipif(
    os.environ.get("NUMBA_ENABLE_CUDASIM") == "1" or _gpu_present(),
    reason="a GPU or the simulator is available here",
)
def test_without_gpu_or_simulator_the_session_says_how_to_enable_the_simulator():
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, [2], name="x")
        y = x * 2
    with gj.Session(g, backend="cuda") as sess:
        with pytest.raises(BackendError, match="NUMBA_ENABLE_CUDASIM=1") as info:
            sess.run(y, {x: np.ones(2, np.float32)})
    assert isinstance(info.value, gj.GraphjitError)
    assert "no usable CUDA GPU" in str(info.value)


EMPTY_EXTREMA = [lambda x: gj.max(x * 2), lambda x: gj.argmax(x, axis=1)]


@pytest.mark.parametrize("reduce", EMPTY_EXTREMA, ids=["fused max", "argmax"])
def test_an_extremum_of_an_empty_axis_is_a_shape_error(reduce):
    """NumPy raises; the op's shape rule says so as soon as the length is known (here when
    the graph is built), the same error for every backend."""
    with pytest.raises(gj.ShapeError, match="empty axis"):
        optimised(reduce, np.zeros((3, 0)))
