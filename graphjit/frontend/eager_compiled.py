"""Eager work that runs as compiled code once it is hot: convolutions and pooling, large
matrix products, and the composites PyTorch has fused kernels for (softmax, layer norm,
GELU, attention).

Eager mode computes each op at once with NumPy, one thread, one pass over memory per op.
Two kinds of eager work lose most by it:
- ops NumPy has no kernel for: the registry's kernels for the WINDOWED ops (ir/ops/conv.py:
  the reference interpreter's) gather each output's window through a strided view and
  reduce it with einsum or max. LeNet's first convolution of 64 images takes them 2.6 ms
  and its 2x2 max pooling 4.5 ms, the llvm backend's kernels 0.12 and 0.08 ms (PyTorch's
  0.2 and 0.6). `native_kernel` gives such an op a one-op program compiled for its
  signature (its attributes, its operands' shapes and dtypes).
- composites of many elementwise ops and reductions: softmax of 4096x1024 floats is five
  ops and five passes over 16 MB (10 ms), PyTorch's one fused kernel (1.2 ms).
  `compiled_when_hot` makes such a frontend function run as one `gj.function` call for its
  signature (the tensors' shapes, dtypes and requires_grad, the other arguments' values):
  one fused program forward, one backward (0.8 ms forward). Where a gradient is recorded,
  the two are split from one trace (partition.py), so that the backward reads what the
  forward computed rather than computing it again.
- large matrix products, which NumPy has a kernel for but runs on OpenBLAS's threads, not
  graphjit's (native_matmul says why that matters); and scatter_add, whose np.add.at is
  slow (eager/dispatch.py: _scatter_indices).

Each runs compiled only once its signature has run HOT_CALLS times the eager way, on
float32/float64 tensors one of which has at least NATIVE_MIN_ELEMENTS elements (a product:
at least NATIVE_MIN_MACS multiply-adds, and its signature is its dtype, ranks and
transposes, not its shapes; shape errors never reach its program): a call made
once, exploring at the prompt, never waits for a compile (0.05-0.3 s), a training loop
compiles at its third step (JAX's op-by-op mode compiles each primitive at its first call).
A composite's signature counts only calls that succeeded, so the compiled path never meets
an input the eager one refused (a WINDOWED op's counts failed calls too: its compile then
fails in turn, and the op falls back as below).

The results are the eager ones up to rounding (the llvm backend is tested against the
interpreter op by op). Subnormals are kept, as NumPy and PyTorch keep them. The programs
keep no working memory between runs (`held_buffer_bytes=0`): eager tensors hold their
results anyway, and 64 signatures each keeping up to GRAPHJIT_HELD_BUFFER_BYTES would sit on
gigabytes (a 256-wide transformer's eager step held 250 MiB more). Whatever the
compiled path cannot do (a build or compile error, an error at run time) runs the eager
path instead, which gives its result or its error, so errors do not depend on this; only a
malformed GRAPHJIT_* variable is raised as it is. Under anomaly detection composites stay
eager (its reports name each op). GRAPHJIT_EAGER_COMPILE=0 turns all of it off.
"""

from __future__ import annotations

import functools
import inspect
import threading
from collections import OrderedDict

import numpy as np

from graphjit import config
from graphjit.errors import ConfigError, ResourceError, ShapeError
from graphjit.frontend.convert import plain_eager
from graphjit.ir.ops import OpDef, bind_op
from graphjit.ir.ops.elementwise import broadcast_shapes
from graphjit.ir.types import BY_NP

HOT_CALLS = 2  # eager runs of a signature before it is compiled
# Below this many elements in every tensor the eager path takes tens of microseconds: the
# compiled one gains less than its compile costs in a thousand calls.
NATIVE_MIN_ELEMENTS = 1 << 14
MAX_COMPILED = 64  # signatures whose compiled code is kept, the least recently used dropped
_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_INDICES = frozenset({np.dtype(np.int32), np.dtype(np.int64)})
_UNUSABLE = object()  # a signature the compiled path failed for: eager from then on
# Errors of a compiled run that say nothing against its code, raised as they are rather than
# giving up the signature: a malformed GRAPHJIT_* variable, and memory running out (NumPy's
# kernel would run out too; a later call of the signature may well fit).
_RAISED = (ConfigError, ResourceError, MemoryError)
_PLAIN = (int, float, bool, str, type(None))  # other arguments a signature holds by value


class _Signatures:
    """Per signature: how often it ran the eager way, then its compiled callable."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict = {}
        self.compiled: OrderedDict = OrderedDict()

    def compiled_for(self, key):
        """Its compiled callable, _UNUSABLE, or None (not compiled yet)."""
        with self.lock:
            compiled = self.compiled.get(key)
            if compiled is not None:
                self.compiled.move_to_end(key)
            return compiled

    def counted(self, key) -> int:
        """One more eager run of `key`: how many there have been. Counted by the key's
        hash: a tape's key (compiled_backward.py) holds a part for every node, 185 KiB for
        an RNN's 502, and up to 512 keys seen once or twice were kept only to be counted
        (two keys of one hash are only compiled sooner; what runs is looked up by key)."""
        digest = hash(key)
        with self.lock:
            count = self.counts.get(digest, 0) + 1
            if len(self.counts) >= 8 * MAX_COMPILED:  # (shapes seen once or twice: forget)
                self.counts.clear()
            self.counts[digest] = count
            return count

    def store(self, key, compiled) -> None:
        with self.lock:
            self.counts.pop(hash(key), None)
            self.compiled[key] = compiled
            self.compiled.move_to_end(key)
            while len(self.compiled) > MAX_COMPILED:
                self.compiled.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.counts.clear()
            self.compiled.clear()


SIGNATURES = _Signatures()


# ---- WINDOWED ops ----------------------------------------------------------------------------


def native_kernel(opdef: OpDef, index_operands: frozenset = frozenset(), check=None):
    """The eager kernel of a WINDOWED op (or a scatter): its compiled code where that pays,
    else (and on any failure of the compiled path) the registry's kernel. The operands at
    `index_operands` are integer indices, which `check(*arrays, **attrs)` checks before
    the compiled code runs, raising the registry kernel's error (the compiled code must
    never meet a bad index: its failure would give up the signature)."""
    reference = opdef.kernel

    def kernel(*arrays, **attrs):
        key = _op_signature(opdef, arrays, attrs, index_operands)
        compiled = None if key is None else _hot(key, lambda: _compile_op(opdef, arrays, attrs))
        if compiled is not None:
            if check is not None:
                check(*arrays, **attrs)
            try:
                results = compiled(*arrays)
            except _RAISED:
                raise
            except Exception:  # (not KeyboardInterrupt: Ctrl-C stops the op)
                SIGNATURES.store(key, _UNUSABLE)
            else:
                return results[0] if len(results) == 1 else tuple(results)
        return reference(*arrays, **attrs)

    return kernel


def _hot(key, make):
    """The compiled callable for `key`, made by `make()` at its HOT_CALLS + 1st call;
    None while the eager path should run (and counts this run)."""
    compiled = SIGNATURES.compiled_for(key)
    if compiled is None:
        if SIGNATURES.counted(key) <= HOT_CALLS:
            return None
        compiled = make()  # (outside the lock: it takes a while)
        SIGNATURES.store(key, compiled)
    return None if compiled is _UNUSABLE else compiled


def _op_signature(opdef: OpDef, arrays, attrs, index_operands=frozenset()):
    sizes = [a.size for a in arrays]
    if max(sizes) < NATIVE_MIN_ELEMENTS or min(sizes) == 0:  # (empty: nothing to compute)
        return None
    for i, a in enumerate(arrays):
        if a.dtype not in (_INDICES if i in index_operands else _FLOATS):
            return None
    if not config.eager_compile():
        return None
    key = (opdef, tuple((a.shape, a.dtype.char) for a in arrays), tuple(attrs.items()))
    try:
        hash(key)
    except TypeError:  # (an attribute given as a list: no signature, NumPy's kernel)
        return None
    return key


def _compile_op(opdef: OpDef, arrays, attrs):
    """A callable of the arrays returning the op's results as a list: a Session's on a
    graph of the op alone, its operands fed at exactly these shapes (compiled at its first
    call, where a failure falls back as any other); _UNUSABLE if the op cannot be built."""
    from graphjit.frontend.graph import Graph, placeholder
    from graphjit.runtime.session import Session

    graph = Graph()
    try:
        with graph.as_default():
            feeds = [placeholder(BY_NP[a.dtype], shape=a.shape) for a in arrays]
            results = bind_op(opdef, tuple(feeds), dict(attrs))
        fetches = list(results) if isinstance(results, tuple) else [results]
        session = Session(graph, flush_denormals=False, dynamic=False, held_buffer_bytes=0)
    except ConfigError:
        raise
    except Exception:
        return _UNUSABLE
    return session.make_callable(fetches, feeds)


# ---- matrix products -------------------------------------------------------------------------

# Products of at least this many multiply-adds run on graphjit's threads; smaller ones are
# NumPy's (its call costs less than the compiled program's, and OpenBLAS runs them on one
# thread). blas.SPLIT_MIN_MACS is where the llvm backend starts splitting a product.
NATIVE_MIN_MACS = 1 << 19


def native_matmul(opdef: OpDef):
    """Eager matmul's kernel for operands none of which is a narrow float: large float32/
    float64 products through a compiled program of the product alone, whose sizes are
    run-time values (one compile per dtype, ranks and transposes), the rest through the
    registry's kernel (NumPy).

    Why not NumPy for all of them: its OpenBLAS splits a large product over threads of its
    own, which then spin on the cores for a while after each call (~0.1 s: OpenBLAS's
    THREAD_TIMEOUT), while the convolutions, pooling and composites of the same step run
    on graphjit's threads (native_kernel, compiled_when_hot). Each pool's threads then
    wait for cores the other one holds: in an eager transformer step the compiled
    attention took 1.9-2.5 ms, alone 0.8-0.9 ms. The llvm backend's products run as
    blocks on graphjit's threads, each block a single-threaded BLAS call (or graphjit's
    own float32 kernel) -- one pool for all of a step's parallel work, as PyTorch's."""
    reference = opdef.float_kernel  # (eager's, for operands none of which is a narrow float)

    def kernel(a, b, transpose_a=False, transpose_b=False):
        # (a.size * b.size / k bounds the multiply-adds from above: most products stop here)
        inner = a.shape[-2] if transpose_a else a.shape[-1]
        if a.size * b.size < NATIVE_MIN_MACS * inner or not _large_product(
            a, b, transpose_a, transpose_b
        ):
            return reference(a, b, transpose_a, transpose_b)
        if b.ndim == 2 and a.ndim > 2 and not transpose_a and a.flags.c_contiguous:
            # (a batch of rows times one matrix: one product of all the rows, as the
            # registry's kernel does; its result has the rows' layout)
            rows = _product(opdef, a.reshape(-1, a.shape[-1]), b, False, transpose_b, reference)
            return rows.reshape(a.shape[:-1] + rows.shape[-1:])
        return _product(opdef, a, b, transpose_a, transpose_b, reference)

    return kernel


def _large_product(a, b, transpose_a: bool, transpose_b: bool) -> bool:
    if a.dtype not in _FLOATS or b.dtype != a.dtype or a.ndim < 2 or b.ndim < 2:
        return False
    if not a.size or not b.size or not config.eager_compile():
        return False
    m, k = (a.shape[-1], a.shape[-2]) if transpose_a else (a.shape[-2], a.shape[-1])
    inner, n = (b.shape[-1], b.shape[-2]) if transpose_b else (b.shape[-2], b.shape[-1])
    if inner != k:
        return False  # (NumPy's kernel raises the error: no compiled program must fail)
    try:
        broadcast_shapes(a.shape[:-2], b.shape[:-2])
    except ShapeError:
        return False
    batch = max(a.size // (m * k), b.size // (k * n))  # (at least that many products)
    return batch * m * n * k >= NATIVE_MIN_MACS


def _product(opdef: OpDef, a, b, transpose_a: bool, transpose_b: bool, reference):
    """op(a) @ op(b) by the compiled program for their dtype, ranks and transposes; an
    operand that is the transpose of a contiguous array (`w.T`) is given as that array
    with its transpose flag flipped, as BLAS takes it (the program would copy it)."""
    a, transpose_a = _contiguous_operand(a, transpose_a)
    b, transpose_b = _contiguous_operand(b, transpose_b)
    key = (opdef, a.dtype.char, a.ndim, b.ndim, transpose_a, transpose_b)
    compiled = _hot(key, lambda: _compile_product(opdef, a, b, transpose_a, transpose_b))
    if compiled is not None:
        try:
            return compiled(a, b)[0]
        except _RAISED:
            raise
        except Exception:  # (the reference below gives the result, or the error)
            SIGNATURES.store(key, _UNUSABLE)
    return reference(a, b, transpose_a, transpose_b)


def _contiguous_operand(x, transposed: bool):
    if x.flags.c_contiguous:
        return x, transposed
    swapped = x.swapaxes(-1, -2)
    if swapped.flags.c_contiguous:
        return swapped, not transposed
    return x, transposed


def _compile_product(opdef: OpDef, a, b, transpose_a: bool, transpose_b: bool):
    """A callable of two arrays of a's and b's dtype and ranks: a Session's on a graph of
    the product alone, every dimension unknown (compiled for sizes of the run)."""
    from graphjit.frontend.graph import Graph, placeholder
    from graphjit.runtime.session import Session

    graph = Graph()
    try:
        with graph.as_default():
            feeds = [placeholder(BY_NP[x.dtype], shape=(None,) * x.ndim) for x in (a, b)]
            attrs = {"transpose_a": transpose_a, "transpose_b": transpose_b}
            product = bind_op(opdef, tuple(feeds), attrs)
        session = Session(graph, flush_denormals=False, dynamic=True, held_buffer_bytes=0)
    except ConfigError:
        raise
    except Exception:
        return _UNUSABLE
    return session.make_callable([product], feeds)


# ---- composites ------------------------------------------------------------------------------


def compiled_when_hot(fn=None, *, vjp_of_result=None):
    """Decorator for a frontend composite of graphjit ops with no randomness, no state and
    no error that depends on values: on eager tensors it runs as one gj.function call once
    its signature is hot (the module's docstring); on graph values, and otherwise, as
    written. Its node keeps its tensor arguments for gj.function's VJP, as PyTorch's
    layer_norm, GELU and attention keep theirs; `vjp_of_result(result, g, *options)` for
    a composite of one tensor argument that PyTorch lets change in place before backward
    (softmax keeps its result, not its input): the node keeps the result for it instead,
    as the eager ops' rules do."""
    if fn is None:
        return lambda f: compiled_when_hot(f, vjp_of_result=vjp_of_result)

    @functools.wraps(fn)
    def composite(*args, **kwargs):
        key = _composite_signature(fn, args, kwargs)
        if key is None:
            return fn(*args, **kwargs)
        compiled = SIGNATURES.compiled_for(key)
        if compiled is not None and compiled is not _UNUSABLE:
            try:
                return compiled(*args, **kwargs)
            except _RAISED:
                raise
            except Exception:  # (the eager path below gives the result, or the error)
                SIGNATURES.store(key, _UNUSABLE)
        result = fn(*args, **kwargs)
        if compiled is None and SIGNATURES.counted(key) >= HOT_CALLS:
            # (traced and compiled at its first call)
            SIGNATURES.store(key, _compiled(fn, vjp_of_result))
        return result

    return composite


def _compiled(fn, vjp_of_result):
    if vjp_of_result is None:
        return _Partitioned(fn)
    return _KeepsResult(fn, vjp_of_result)


class _Partitioned:
    """A composite compiled: where a gradient is recorded, as two programs from one trace
    (partition.py: the forward keeps what the backward would otherwise compute again),
    recorded as one node (a `Compiled<Name>Backward`); otherwise its gj.function."""

    def __init__(self, fn):
        self.fn, self.signature = fn, inspect.signature(fn)
        self.plain = _function(fn)
        self.split = None  # (made at the first call that records a gradient)
        self.tensor_positions: list = []  # where the tensor arguments are, in order
        self.node_function = _node_function(fn.__name__, _saving_for_backward)

    def __call__(self, *args, **kwargs):
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        if bound.kwargs or not _records_gradient(bound.args):
            return self.plain(*args, **kwargs)
        if self.split is None:
            self.split = self._split(bound.args) or _UNUSABLE
        if self.split is _UNUSABLE:
            return self.plain(*args, **kwargs)
        return self.node_function.apply(self, *bound.args)

    def _split(self, args: tuple):
        from graphjit.frontend.partition import split_composite

        names = list(self.signature.parameters)
        self.tensor_positions = [i for i, a in enumerate(args) if plain_eager(type(a))]
        tensors = {names[i]: (BY_NP[args[i]._data.dtype], args[i].shape)
                   for i in self.tensor_positions}  # fmt: skip
        wanted = [names[i] for i in self.tensor_positions if args[i].requires_grad]
        others = {name: a for name, a in zip(names, args) if name not in tensors}
        return split_composite(self.fn, others, tensors, wanted)

    def replayed_gradients(self, args: list, wanted: list, cotangents: tuple) -> tuple:
        """The gradients of the arguments at `wanted` as the eager composite gives them,
        recorded (create_graph: a gradient to differentiate again): the composite run again
        on the saved inputs."""
        from graphjit.frontend.eager.engine import grad

        result = self.fn(*args)
        outputs = list(result) if isinstance(result, tuple) else [result]
        inputs = [args[i] for i in wanted]
        return grad(outputs, inputs, list(cotangents), create_graph=True, allow_unused=True)


def _records_gradient(args: tuple) -> bool:
    from graphjit.frontend.eager.grad_mode import is_grad_enabled

    return is_grad_enabled() and any(plain_eager(type(a)) and a.requires_grad for a in args)


class _KeepsResult:
    """A composite of one tensor argument (then options), compiled, recorded as one node
    (a `Compiled<Name>Backward`) that keeps its result for `vjp_of_result`, compiled too."""

    def __init__(self, fn, vjp_of_result):
        self.signature = inspect.signature(fn)
        self.forward, self.backward = _function(fn), _function(vjp_of_result)
        self.node_function = _node_function(fn.__name__, _result_keeping)

    def __call__(self, *args, **kwargs):
        bound = self.signature.bind(*args, **kwargs)
        bound.apply_defaults()
        return self.node_function.apply(self, *bound.args)


@functools.cache
def _node_function(name: str, base) -> type:
    """One autograd Function per composite (not per signature: a class each would stay in
    custom_function's table of node classes), named for `Compiled<Name>Backward` nodes;
    `base()` makes the Function it derives from."""
    camel = "".join(part.title() for part in name.split("_"))
    return type(f"Compiled{camel}", (base(),), {})


@functools.cache
def _result_keeping():
    """The autograd Function of _KeepsResult (made at first use: the eager package imports
    this module)."""
    from graphjit.frontend.eager.custom_function import Function

    class ResultKeeping(Function):
        @staticmethod
        def forward(ctx, compiled, x, *options):
            result = compiled.forward(x, *options)
            ctx.save_for_backward(result)
            ctx.compiled, ctx.options = compiled, options
            return result

        @staticmethod
        def backward(ctx, g):
            (result,) = ctx.saved_tensors
            dx = ctx.compiled.backward(result, g, *ctx.options)
            return (None, dx, *(None for _ in ctx.options))

    return ResultKeeping


@functools.cache
def _saving_for_backward():
    """The autograd Function of _Partitioned (made at first use, as _result_keeping)."""
    from graphjit.frontend.eager.custom_function import Function
    from graphjit.frontend.eager.grad_mode import is_grad_enabled
    from graphjit.frontend.eager.tensor import wrap

    class SavingForBackward(Function):
        @staticmethod
        def forward(ctx, compiled, *args):
            split, positions = compiled.split, compiled.tensor_positions
            tensors = [args[i] for i in positions]
            # (a view such as attention's heads, transposed, is copied here once rather than
            # by both programs; the copy is what the backward reads)
            inputs = [np.asarray(t._data, order="C") for t in tensors]  # (0-d stays 0-d)
            arrays = split.forward(*inputs)
            count = len(arrays) - len(split.kept_values)
            outputs, kept = arrays[:count], arrays[count:]
            # (an output handed out, or an input, may be changed in place before backward:
            # the kept value must not change with it)
            given = outputs + inputs
            kept = [k.copy() if any(k is a for a in given) else k for k in kept]
            outputs = [o.copy() if any(o is a for a in inputs) else o for o in outputs]
            kept = [inputs[i] for i in split.kept_sources] + kept
            ctx.save_for_backward(*tensors, *[wrap(k) for k in kept])  # (freed with the node)
            ctx.compiled = compiled
            ctx.options = [None if i in positions else a for i, a in enumerate(args)]
            results = tuple(wrap(o) for o in outputs)
            return results[0] if len(results) == 1 else results

        @staticmethod
        def backward(ctx, *cotangents):
            compiled, saved = ctx.compiled, ctx.saved_tensors
            split, positions = compiled.split, compiled.tensor_positions
            tensors, kept = saved[: len(positions)], saved[len(positions) :]
            wanted = [i for i in positions if ctx.needs_input_grad[1 + i]]  # (as split)
            if is_grad_enabled():  # (create_graph)
                args = list(ctx.options)
                for i, t in zip(positions, tensors):
                    args[i] = t
                grads = compiled.replayed_gradients(args, wanted, cotangents)
            else:
                fed = [k._data for k in kept] + [g._data for g in cotangents]
                grads = [None if g is None else wrap(g) for g in split.backward(*fed)]
            per_argument = [None] * len(ctx.options)
            for i, g in zip(wanted, grads):
                per_argument[i] = g
            return (None, *per_argument)

    return SavingForBackward


def _composite_signature(fn, args, kwargs):
    """(fn, each argument's tensor signature or value, the keywords' names), or None when
    the call should run eagerly as written: no eager float tensor of NATIVE_MIN_ELEMENTS,
    a graph value or an argument of another kind, anomaly detection on, the path off."""
    for value in args:  # (the usual refusal first, and cheaply: no tensor that large)
        if plain_eager(type(value)) and value._data.size >= NATIVE_MIN_ELEMENTS:
            break
    else:
        if not any(
            plain_eager(type(v)) and v._data.size >= NATIVE_MIN_ELEMENTS for v in kwargs.values()
        ):
            return None
    parts = []
    for value in (*args, *kwargs.values()):
        if type(value) in _PLAIN:
            parts.append(value)
        elif plain_eager(type(value)):
            data = value._data
            if data.dtype not in _FLOATS:
                return None
            parts.append((data.shape, data.dtype.char, value.requires_grad))
        elif type(value) in (tuple, list) and all(type(v) is int for v in value):
            parts.append((type(value), *value))
        else:
            return None
    if not config.eager_compile() or _anomaly_enabled():
        return None
    return (fn, tuple(parts), tuple(kwargs))


def _anomaly_enabled() -> bool:
    from graphjit.frontend.eager.anomaly import is_anomaly_enabled

    return is_anomaly_enabled()


def _function(fn):
    from graphjit.frontend.tracing import function

    return function(fn, flush_denormals=False, held_buffer_bytes=0)
