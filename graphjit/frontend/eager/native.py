"""Eager ops that run as compiled code: convolutions and pooling.

NumPy has no convolution. The registry's kernels for the WINDOWED ops (ir/ops/conv.py: the
reference interpreter's) gather each output's window through a strided view and reduce it
with einsum or max, on one thread: LeNet's first convolution of 64 images takes them 2.6 ms
and its 2x2 max pooling 4.5 ms, where the llvm backend's kernels take 0.12 and 0.08 ms
(PyTorch's 0.2 and 0.6). So eager mode runs such an op, on float32 or float64 arrays of at
least NATIVE_MIN_ELEMENTS elements, as a one-op program the llvm backend compiled for its
signature (the op, its attributes, its operands' shapes and dtypes) -- once that signature
has run HOT_CALLS times the NumPy way: a call made once, exploring at the prompt, never
waits for a compile (0.05-0.25 s), a training loop compiles at its third step. JAX's
op-by-op mode compiles each primitive the same way, at its first call.

The results are the NumPy kernel's up to rounding: the llvm backend is tested against it op
by op (each output sums the same products, in another order). Subnormals are kept, as NumPy
and PyTorch keep them. Whatever the compiled path cannot do (a build or compile error, an
error at run time) runs the NumPy kernel instead, which gives its result or its error, so
errors are the same as without this path; only a malformed GRAPHJIT_* variable is raised
as it is. GRAPHJIT_EAGER_COMPILE=0 turns the path off.
"""

from __future__ import annotations

import threading
from collections import OrderedDict

import numpy as np

from graphjit import config
from graphjit.errors import ConfigError
from graphjit.ir.ops import OpDef, bind_op
from graphjit.ir.types import BY_NP

HOT_CALLS = 2  # NumPy runs of a signature before it is compiled
# Below this many elements in every operand the NumPy kernel takes tens of microseconds:
# the compiled one gains less than its compile costs in a thousand calls.
NATIVE_MIN_ELEMENTS = 1 << 14
MAX_COMPILED = 64  # signatures whose compiled code is kept, the least recently used dropped
_FLOATS = frozenset({np.dtype(np.float32), np.dtype(np.float64)})
_UNUSABLE = object()  # a signature the compiled path failed for: NumPy's from then on


class _Signatures:
    """Per signature: how often it ran the NumPy way, then its compiled callable."""

    def __init__(self):
        self.lock = threading.Lock()
        self.counts: dict = {}
        self.compiled: OrderedDict = OrderedDict()

    def clear(self) -> None:
        with self.lock:
            self.counts.clear()
            self.compiled.clear()


SIGNATURES = _Signatures()


def native_kernel(opdef: OpDef):
    """The eager kernel of a WINDOWED op: its compiled code where that pays, else (and on
    any failure of the compiled path) the registry's kernel."""
    reference = opdef.kernel

    def kernel(*arrays, **attrs):
        compiled = _compiled_for(opdef, arrays, attrs)
        if compiled is not None:
            try:
                results = compiled(*arrays)
            except ConfigError:
                raise
            except Exception:  # (not KeyboardInterrupt: Ctrl-C stops the op)
                _forget(opdef, arrays, attrs)
            else:
                return results[0] if len(results) == 1 else tuple(results)
        return reference(*arrays, **attrs)

    return kernel


def _compiled_for(opdef: OpDef, arrays, attrs):
    """The compiled callable for this call's signature, compiling it on its HOT_CALLS + 1st
    call; None while NumPy's kernel should run."""
    if max(a.size for a in arrays) < NATIVE_MIN_ELEMENTS:
        return None
    if any(a.dtype not in _FLOATS for a in arrays) or not config.eager_compile():
        return None
    key = _signature(opdef, arrays, attrs)
    if key is None:
        return None
    signatures = SIGNATURES
    with signatures.lock:
        compiled = signatures.compiled.get(key)
        if compiled is not None:
            signatures.compiled.move_to_end(key)
            return None if compiled is _UNUSABLE else compiled
        count = signatures.counts.get(key, 0) + 1
        if count <= HOT_CALLS:
            if len(signatures.counts) >= 8 * MAX_COMPILED:  # (shapes seen once: forget)
                signatures.counts.clear()
            signatures.counts[key] = count
            return None
    compiled = _compile(opdef, arrays, attrs)  # (outside the lock: it takes a while)
    with signatures.lock:
        signatures.counts.pop(key, None)
        signatures.compiled[key] = compiled
        while len(signatures.compiled) > MAX_COMPILED:
            signatures.compiled.popitem(last=False)
    return None if compiled is _UNUSABLE else compiled


def _signature(opdef: OpDef, arrays, attrs):
    key = (opdef, tuple((a.shape, a.dtype.char) for a in arrays), tuple(attrs.items()))
    try:
        hash(key)
    except TypeError:  # (an attribute given as a list: no signature, NumPy's kernel)
        return None
    return key


def _forget(opdef: OpDef, arrays, attrs) -> None:
    """The compiled callable failed at run time: NumPy's kernel runs this signature now."""
    key = _signature(opdef, arrays, attrs)
    with SIGNATURES.lock:
        SIGNATURES.compiled[key] = _UNUSABLE


def _compile(opdef: OpDef, arrays, attrs):
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
        session = Session(graph, backend="llvm", flush_denormals=False, dynamic=False)
    except ConfigError:
        raise
    except Exception:
        return _UNUSABLE
    return session.make_callable(fetches, feeds)
