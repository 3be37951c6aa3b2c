"""`gj.function`: trace a Python function into a graph once per input signature (the
arguments' structure, tensor shapes and dtypes, other arguments' values, module identities
and their submodules' training flags), compile it in a Session, cache it, and run the
compiled graph from then on. A Python number whose value changes between calls is traced
once more as a value of the call (traced_numbers.py), rather than once per value.

Module parameters and buffers become graph Variables, copied in before each run and back out
when the function assigns them (batch norm's running statistics: the assigns it files under
`normalization.update_ops`); buffers are never differentiated. NumPy in, NumPy out; gj.Tensor
in, gj.Tensor out, and when gradients are wanted the call is one tape node
(`CompiledFunctionBackward`) whose backward is itself a gj.function: the vector-Jacobian
product, traced with `gj.gradients` and `grad_ys` placeholders, so `.backward()` flows
through compiled calls to any order.
"""

from __future__ import annotations

import functools
import inspect
import linecache
import logging
import os
import sys
import threading
import warnings
import weakref
from contextlib import contextmanager

import numpy as np

from graphjit import config
from graphjit.errors import GraphjitError, RetraceWarning
from graphjit.frontend import partition, random
from graphjit.frontend.convert import unwrap
from graphjit.frontend.eager.custom_function import Function as AutogradFunction
from graphjit.frontend.eager.grad_mode import is_grad_enabled, traced_grad_mode
from graphjit.frontend.eager.nn import Module
from graphjit.frontend.eager.tensor import Tensor, bump_version, wrap
from graphjit.frontend.gradients import gradients
from graphjit.frontend.graph import Graph, Variable, get_default_graph, placeholder
from graphjit.frontend.traced_numbers import TracedNumber, traced_arguments
from graphjit.ir.core import Value
from graphjit.ir.ops import STATE_UPDATE
from graphjit.ir.types import as_dtype
from graphjit.runtime.session import Session

_log = logging.getLogger("graphjit.function")
_TENSORS = (Tensor, np.ndarray, np.generic)
# The trace of one function at which it warns (once) that its arguments keep selecting new
# traces, each compiled: TF2's tf.function warns from its fifth frequent retrace.
RETRACE_WARNING_AT = 8
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def function(
    fn=None,
    *,
    backend: str = "llvm",
    check_numerics: bool = False,
    optimize=None,
    reduce_retracing: bool = False,
    flush_denormals: bool = True,
    held_buffer_bytes: int | None = None,
):
    """Decorator: trace `fn` on its first call per input signature, compile, cache, reuse.

    Works on functions, on methods (`@gj.function` in a class body), on bound methods and on
    `gj.nn.Module` instances (`gj.function(model)` compiles `model.forward`).

    `reduce_retracing` (TF2's name and meaning): when a call differs from earlier ones only
    in some dimensions of its tensors, trace once more with those dimensions unknown, and
    use that trace for every later call that differs from them only there. The llvm
    backend compiles such a trace once for all those sizes (a Session's unknown
    dimensions). The function then sees None for those dimensions while it traces
    (`x.shape[0]`): one that needs the number fails to trace so, and gets a trace per
    shape as without the option.

    `flush_denormals` and `held_buffer_bytes` are the Session's: True (the default) lets
    compiled code make subnormal values zero, False keeps them, as NumPy and PyTorch eager
    do; how much working memory each compiled program keeps between calls."""
    options = {
        "backend": backend,
        "check_numerics": check_numerics,
        "optimize": optimize,
        "flush_denormals": flush_denormals,
        "held_buffer_bytes": held_buffer_bytes,
    }
    if fn is None:
        return lambda f: function(f, **options, reduce_retracing=reduce_retracing)
    if isinstance(fn, Module):
        traced = TracedFunction(type(fn).forward, **options, reduce_retracing=reduce_retracing)
        return BoundFunction(traced, fn)
    if inspect.ismethod(fn):
        traced = TracedFunction(fn.__func__, **options, reduce_retracing=reduce_retracing)
        return BoundFunction(traced, fn.__self__)
    return TracedFunction(fn, **options, reduce_retracing=reduce_retracing)


class TracedFunction:
    """What `@gj.function` returns: call it like the function. `trace_count` counts traces;
    `concrete(*args)` gives the traced specialisation (its `.graph` and `.session`)."""

    def __init__(
        self,
        fn,
        backend="llvm",
        check_numerics=False,
        optimize=None,
        reduce_retracing=False,
        flush_denormals=True,
        held_buffer_bytes=None,
    ):
        self.__name__ = self.__qualname__ = type(fn).__name__  # (partials have no name)
        functools.update_wrapper(self, fn)
        self.fn = fn
        self.options = {
            "backend": backend,
            "check_numerics": check_numerics,
            "optimize": optimize,
            "flush_denormals": flush_denormals,  # (Session's: subnormal results made 0)
            "held_buffer_bytes": held_buffer_bytes,
        }
        self.signature = inspect.signature(fn)
        code = getattr(fn, "__code__", None)
        self.global_names = _global_names(code) if code is not None else set()
        self.trace_count = 0
        self.retrace_reasons: list[str] = []
        self._cache: dict = {}
        self._positional: dict = {}  # _positional_key -> ConcreteFunction: the fast calls
        self.reduce_retracing = reduce_retracing
        # (spec, keys without tensor sizes) -> the trace with unknown dimensions, or False
        # where the function could not be traced so
        self._relaxed: dict = {}
        # (spec, keys without the numbers' values) -> (the trace with some Python number
        # arguments traced as values of the call, those leaves' indices, its first call's
        # keys), or False where the function could not be traced so
        self._traced_numbers: dict = {}
        self._vjp: TracedFunction | None = None
        self.runs_assigns = True  # (False for a VJP: see `vjp`)

    def __get__(self, instance, owner=None):
        return self if instance is None else BoundFunction(self, instance)

    def __repr__(self) -> str:
        return f"<gj.function {self.__qualname__}: {self.trace_count} trace(s)>"

    def __call__(self, *args, **kwargs):
        flat = args + tuple(kwargs.values()) if kwargs else args
        key = _positional_key(flat)
        if key is not None and kwargs:
            key = (key, tuple(kwargs))  # (the names, in the call's order)
        if key is not None and self._positional:
            fast = self._positional.get(key) or self._positional.get((key, _values_of(flat)))
            if fast is not None:
                out = fast[0].run_positional(flat, *fast[1:])
                if out is not _NOT_TAKEN:
                    return out
        call = _Call(self, args, kwargs)
        if call.symbolic:  # called while tracing another function: inline it
            return self.call_python(call.bound.arguments)
        concrete = self._concrete(call)
        fast_key = _fast_key(call, flat, concrete, key) if key is not None else None
        if fast_key is not None and fast_key not in self._positional:
            self._positional[fast_key] = (concrete, *_layout(flat))
        as_tensors = any(isinstance(x, Tensor) for x in call.leaves)
        if as_tensors and concrete.fetches and _records_gradient(call, concrete):
            outs = CompiledFunction.apply(
                (self, concrete, call), *call.tensor_leaves(), *concrete.params
            )
            return concrete.assemble(list(outs))
        arrays = concrete.run(call)
        return concrete.assemble([wrap(a) for a in arrays] if as_tensors else arrays)

    def concrete(self, *args, **kwargs) -> ConcreteFunction:
        """The traced and compiled specialisation for these arguments (tracing if needed)."""
        return self._concrete(_Call(self, args, kwargs))

    def call_python(self, arguments: dict):
        """Run the Python function on (symbolic) arguments given by parameter name."""
        bound = inspect.BoundArguments(self.signature, dict(arguments))
        try:
            return self.fn(*bound.args, **bound.kwargs)
        except GraphjitError as e:
            _add_tracing_context(e, self.__name__)
            raise

    def _concrete(self, call: _Call) -> ConcreteFunction:
        concrete = self._cache.get(call.key)
        if concrete is None:
            concrete, tried = self._number_traced_concrete(call) if self._cache else (None, False)
            if concrete is not None:  # (not cached by key: one entry per value would pile up)
                return concrete
            if self.reduce_retracing and self._cache and not tried:
                concrete, tried = self._relaxed_concrete(call)
            if concrete is None:
                if self._cache and not tried:
                    self._explain_retrace(call)
                self.trace_count += 1
                concrete = ConcreteFunction(self, call)
            self._cache[call.key] = concrete
        return concrete

    def _number_traced_concrete(self, call: _Call) -> tuple[ConcreteFunction | None, bool]:
        """The trace that takes this call's Python number arguments as values of the call
        (traced_numbers.py), for a call that differs from earlier ones only in the values
        of some of them: those are traced so, now, unless its trace covers them already.
        None where there is none, or where this call's numbers do not fit that trace; and
        whether a trace failed (the function needs their values to trace: it is then
        traced per value)."""
        family = (call.spec, _numberless(call.keys))
        entry = self._traced_numbers.get(family)
        if entry is False:
            return None, False
        if entry is not None and _same_outside(entry[2], call.keys, entry[1]):
            return (entry[0], False) if entry[0].takes_numbers_of(call) else (None, False)
        seen = [
            c.signature[2] for c in self._cache.values() if _family_of(c, _numberless) == family
        ]
        if not seen:
            return None, False
        differing = {
            i
            for i, keys in enumerate(zip(*seen, call.keys))
            if _is_number_key(keys[0]) and len(set(keys)) > 1
        }
        numbers = tuple(sorted(differing.union(entry[1] if entry else ())))  # (never fewer)
        try:
            concrete = ConcreteFunction(self, call, numbers=numbers)
        except Exception as e:  # (`lr.is_integer()` too; a real error recurs per value)
            self._traced_numbers[family] = False  # (the trace per value that follows counts)
            self._explain_retrace(call, f"; traced per value: the function needs it ({e})")
            return None, True
        self._explain_retrace(call, "; traced once more, with it as a value of the call")
        self.trace_count += 1
        self._traced_numbers[family] = (concrete, numbers, call.keys)
        return (concrete, False) if concrete.takes_numbers_of(call) else (None, False)

    def _relaxed_concrete(self, call: _Call) -> tuple[ConcreteFunction | None, bool]:
        """reduce_retracing: the trace whose unknown dimensions cover this call, traced
        now (the dimensions where this call and the earlier ones of its family differ
        made unknown) when the one there is does not; None where there is none. And
        whether a trace failed (the function needs its dimensions to trace)."""
        family = (call.spec, _sizeless(call.keys))
        relaxed = self._relaxed.get(family)
        if relaxed is False:
            return None, False  # (it failed before)
        if relaxed is not None and _fits(relaxed.shapes, call):
            return relaxed, False
        seen = [c for c in self._cache.values() if _family(c) == family]
        if not seen:
            return None, False
        shapes = _generalised([c.shapes for c in seen] + [_tensor_shapes(call)])
        self._explain_retrace(call)
        self.trace_count += 1
        try:
            relaxed = ConcreteFunction(self, call, shapes)
        except (GraphjitError, TypeError, ValueError) as e:
            _log.info("gj.function '%s' cannot trace with unknown dimensions: %s", self.__name__, e)
            self._relaxed[family] = False
            return None, True
        self._relaxed[family] = relaxed
        return relaxed, False

    def _explain_retrace(self, call: _Call, how: str = "") -> None:
        diffs = min((_differences(c.signature, call) for c in self._cache.values()), key=len)
        message = (
            f"gj.function '{self.__name__}' traces again (trace {self.trace_count + 1}); "
            f"vs the closest cached signature: {'; '.join(diffs)}{how}"
        )
        self.retrace_reasons.append(message)
        _log.info(message)
        if config.explain_retrace():
            print(message, file=sys.stderr)
        if self.trace_count + 1 == RETRACE_WARNING_AT:
            warnings.warn(
                f"gj.function '{self.__name__}' is traced and compiled for the "
                f"{RETRACE_WARNING_AT}th time, the last because {'; '.join(diffs)}. A "
                "Python value that the function needs while tracing (a branch on it, a "
                "size, a string) makes one trace per value: pass a value that changes from "
                "call to call as an array or a NumPy scalar, and compute with it in the "
                "graph (gj.cond, gj.while_loop); for changing shapes, reduce_retracing=True. "
                "Every reason: .retrace_reasons",
                RetraceWarning,
                stacklevel=_stacklevel_outside_graphjit(),
            )

    @property
    def vjp(self) -> TracedFunction:
        """The vector-Jacobian product `vjp(arguments, captured, mask, cotangents)` (see
        `_vjp`); a gj.function itself, so its calls are taped too (higher order)."""
        if self._vjp is None:
            self._vjp = TracedFunction(functools.partial(_vjp, self), **self.options)
            self._vjp.__name__ = self._vjp.__qualname__ = f"vjp({self.__name__})"
            # It replays the forward to differentiate it: the forward's assigns (an
            # optimizer step, batch norm's running statistics) ran once already.
            self._vjp.runs_assigns = False
        return self._vjp


class BoundFunction:
    """A TracedFunction with its first argument (a module or `self`) bound."""

    def __init__(self, traced: TracedFunction, instance):
        self.traced, self.instance = traced, instance

    def __call__(self, *args, **kwargs):
        return self.traced(self.instance, *args, **kwargs)

    def concrete(self, *args, **kwargs) -> ConcreteFunction:
        return self.traced.concrete(self.instance, *args, **kwargs)

    def __getattr__(self, name: str):
        return getattr(self.traced, name)


def _stacklevel_outside_graphjit() -> int:
    """warnings.warn's stacklevel for the user's frame nearest to its caller."""
    frame, level = sys._getframe(2), 2
    while frame is not None and frame.f_code.co_filename.startswith(_PACKAGE_DIR):
        frame, level = frame.f_back, level + 1
    return level


# ---- the fast path: positional arrays in, nothing to record ------------------------------


def _positional_key(args) -> tuple | None:
    """What selects a trace for a call with arrays, NumPy scalars, tensors that need no
    gradient, Python numbers and modules as its only (positional) arguments: their shapes
    and dtypes, the numbers' types (a trace on this path takes their values as values of
    the call), the modules' keys (`_leaf_key`); None for any other call, and for a call
    with a module and a gj.Tensor while gradients are enabled (a training step's forward
    pass: it is taped, so its module's key would be computed for nothing)."""
    key, modules, wrapped = [], [], False
    for a in args:
        kind = type(a)
        if kind is Tensor:
            if a.requires_grad:
                return None
            a, wrapped = a._data, True
        elif kind is float or kind is int:
            key.append(kind)
            continue
        elif kind is not np.ndarray and not isinstance(a, np.generic):
            if not isinstance(a, Module):
                return None  # (a graph value too: a call while tracing, whose modules'
            modules.append(len(key))  # parameters are Variables -- so modules last)
            key.append(a)
            continue
        key.append((kind, a.shape, a.dtype))
    if modules and wrapped and is_grad_enabled():
        return None
    for i in modules:
        key[i] = _leaf_key(key[i], "")
    return tuple(key)


_NOT_TAKEN = object()  # run_positional's answer where the call needs the full path


def _layout(args) -> tuple:
    """What a positional key fixes about its calls' arguments, for run_positional: the
    positions of the tensor arguments (None: all of them), and whether some are gj.Tensors
    (results are gj.Tensors then, and the parameters may want the tape)."""
    positions = [i for i, a in enumerate(args) if isinstance(a, _TENSORS)]
    wrapped = any(type(a) is Tensor for a in args)
    return (None if len(positions) == len(args) else positions), wrapped


def _values_of(args) -> tuple:
    """The Python numbers among a call's arguments, keyed as `_leaf_key` keys them."""
    return tuple(a.hex() if type(a) is float else a for a in args if type(a) in (int, float))


def _fast_key(call: _Call, args: tuple, concrete: ConcreteFunction, key: tuple):
    """The key under which calls like this one skip binding and flattening, or None where
    they cannot: the positional key, or with the numbers' values beside it for a trace
    that has them as constants (a trace that takes only some of them as values of the
    call: none). Its arguments (the positional ones, then the keyword ones in the call's
    order) must be its leaves in that order (no nesting, no constants, keywords in the
    signature's order), and it must read no module from a global or closure (which could
    be rebound: jax.jit and tf.function do not see that either, but the full path does)
    and draw no random numbers. Whether a call records on the tape is decided per call
    (`run_positional`)."""
    if not (
        len(call.leaves) == len(args)
        and _keywords_in_order(call)
        and all(leaf is a for leaf, a in zip(call.leaves, args))
        and not call.captured
        and concrete.rng.base is None
    ):
        return None
    numbers = tuple(i for i, a in enumerate(args) if type(a) in (int, float))
    if concrete.numbers == numbers:
        return key
    return (key, _values_of(args)) if not concrete.numbers else None


def _keywords_in_order(call: _Call) -> bool:
    """Whether the call's keyword arguments bind, in the call's order, to the signature's
    last bound parameters (so that its leaves are its positional arguments, then its
    keyword ones; not so where a `**kwargs` parameter takes them)."""
    names = call.keywords
    return not names or tuple(call.bound.arguments)[-len(names) :] == names


# ---- the arguments of one call ------------------------------------------------------------


class _Call:
    """One call's arguments, flattened: leaves, their paths ("x", "xs[1]"), and the key that
    selects a trace. Modules the function reads from globals or closures (`model` in
    `lambda x: model(x)`) follow the arguments' leaves, as if passed too."""

    def __init__(self, traced: TracedFunction, args, kwargs):
        self.bound = traced.signature.bind(*args, **kwargs)
        self.keywords = tuple(kwargs)
        self.leaves, self.paths = [], []
        self.spec = _flatten(self.bound.arguments, "", self.leaves, self.paths)
        self.symbolic = any(isinstance(x, (Value, Variable, TracedNumber)) for x in self.leaves)
        self.captured = [] if self.symbolic else _captured_modules(traced)
        for name, module in self.captured:
            self.leaves.append(module)
            self.paths.append(name)
        self.keys = () if self.symbolic else tuple(map(_leaf_key, self.leaves, self.paths))
        self.key = (self.spec, self.keys)
        self.rng = None  # the (seed, step) its random ops drew from, once it has run
        self.number_feeds: list = []  # its traced numbers' values, where a trace takes them

    def tensor_leaves(self) -> list:
        return [x for x in self.leaves if isinstance(x, _TENSORS)]

    def named_modules(self) -> list:
        return [(p, x) for x, p in zip(self.leaves, self.paths) if isinstance(x, Module)]

    def arguments_with(self, tensors, replaced: dict | None = None) -> dict:
        """The arguments by name, with the tensor leaves replaced by `tensors`, and the
        leaves at the indices of `replaced` by its values."""
        it = iter(tensors)
        leaves = [next(it) if isinstance(x, _TENSORS) else x for x in self.leaves]
        for i, value in (replaced or {}).items():
            leaves[i] = value
        return _unflatten(self.spec, iter(leaves))  # (captured modules trail: not used)


def _captured_modules(traced: TracedFunction) -> list:
    """(name, module) for each Module among the closure cells and globals the function reads."""
    fn, found = traced.fn, {}
    if not hasattr(fn, "__code__"):  # (a partial, a callable object)
        return []
    for name, cell in zip(fn.__code__.co_freevars, fn.__closure__ or ()):
        try:
            found[name] = cell.cell_contents
        except ValueError:  # a cell not filled yet
            pass
    for name in traced.global_names:
        found.setdefault(name, fn.__globals__.get(name))
    return [(name, m) for name, m in found.items() if isinstance(m, Module)]


def _global_names(code) -> set:
    """Names a code object and the functions nested in it may read as globals (attribute
    names too: a false match only adds an unused module)."""
    names = set(code.co_names)
    for const in code.co_consts:
        if hasattr(const, "co_names"):
            names |= _global_names(const)
    return names


def _flatten(x, path: str, leaves: list, paths: list):
    """Leaves of nested dicts, lists and tuples, in order; returns a hashable spec."""
    if isinstance(x, dict):
        keys = tuple(x)
        subs = [_flatten(x[k], f"{path}[{k!r}]" if path else str(k), leaves, paths) for k in keys]
        return (dict, keys, tuple(subs))
    if isinstance(x, (list, tuple)):
        subs = [_flatten(v, f"{path}[{i}]", leaves, paths) for i, v in enumerate(x)]
        return (type(x), None, tuple(subs))
    leaves.append(x)
    paths.append(path)
    return None


def _unflatten(spec, leaves):
    if spec is None:
        return next(leaves)
    kind, keys, subs = spec
    items = [_unflatten(s, leaves) for s in subs]
    if kind is dict:
        return dict(zip(keys, items))
    return kind(*items) if hasattr(kind, "_fields") else kind(items)  # namedtuples


def _leaf_key(x, path: str) -> tuple:
    if isinstance(x, _TENSORS):
        dtype = np.asarray(x).dtype
        as_dtype(dtype)  # an unsupported dtype fails here, naming the supported ones
        return ("tensor", tuple(x.shape), dtype)  # (not dtype.name: NumPy computes it slowly)
    if isinstance(x, Module):
        return ("module", weakref.ref(x), _module_state_key(x))  # (dead: matches nothing)
    if isinstance(x, slice):  # unhashable before Python 3.12
        return ("constant", slice, (x.start, x.stop, x.step))
    if type(x) is float:  # (by its bits: -0.0 is not 0.0, and NaN is NaN)
        return ("constant", float, x.hex())
    try:
        hash(x)
    except TypeError:
        raise GraphjitError(
            f"gj.function: argument '{path}' ({type(x).__name__}) is neither a tensor nor a "
            "hashable constant; pass arrays, gj.Tensors, Python numbers or nested lists of them"
        ) from None
    return ("constant", type(x), x)  # the type too: f(1) and f(1.0) trace differently


def _tensor_shapes(call: _Call) -> list[tuple]:
    return [tuple(np.shape(x)) for x in call.leaves if isinstance(x, _TENSORS)]


def _family(concrete: ConcreteFunction) -> tuple:
    return _family_of(concrete, _sizeless)


def _family_of(concrete: ConcreteFunction, reduced) -> tuple:
    spec, _, keys = concrete.signature
    return spec, reduced(keys)


def _is_number_key(key: tuple) -> bool:
    """A Python int or float constant (not a bool: flags select code)."""
    return key[0] == "constant" and key[1] in (int, float)


def _numberless(keys: tuple) -> tuple:
    """A call's keys with the values of its Python numbers left out (traced numbers)."""
    return tuple(("constant", k[1]) if _is_number_key(k) else k for k in keys)


def _same_outside(keys: tuple, other: tuple, indices: tuple) -> bool:
    """Whether two calls' keys agree everywhere but at `indices`."""
    skip = set(indices)
    return all(a == b for i, (a, b) in enumerate(zip(keys, other)) if i not in skip)


def _sizeless(keys: tuple) -> tuple:
    """A call's keys with each tensor's shape reduced to its rank (reduce_retracing)."""
    return tuple((k[0], len(k[1]), k[2]) if k[0] == "tensor" else k for k in keys)


def _generalised(shape_lists: list) -> list[tuple]:
    """Per tensor, its shape with None where the lists' shapes differ."""
    return [
        tuple(dims[0] if len(set(dims)) == 1 else None for dims in zip(*shapes))
        for shapes in zip(*shape_lists)
    ]


def _fits(shapes: list, call: _Call) -> bool:
    return all(
        all(d is None or d == n for d, n in zip(shape, actual))
        for shape, actual in zip(shapes, _tensor_shapes(call), strict=True)
    )


def _module_state_key(module: Module) -> tuple:
    """What a module's trace depends on besides its identity: its training flag (`train()`
    and `eval()` change what dropout and batch norm build), its parameters' and buffers'
    shapes and dtypes, and the same for its submodules. A direct walk with list
    comprehensions (no names, no generators): this runs on every call."""
    children = module._modules
    return (
        module.training,
        _shapes_and_dtypes(module._parameters),
        _shapes_and_dtypes(module._buffers),
        tuple([_module_state_key(m) for m in children.values() if m is not None])
        if children
        else (),
    )


def _shapes_and_dtypes(tensors: dict) -> tuple:
    if not tensors:
        return ()
    return tuple([(t._data.shape, t._data.dtype) for t in tensors.values() if t is not None])


def _training_flags(state_key: tuple):
    yield state_key[0]
    for child in state_key[3]:
        yield from _training_flags(child)


def _describe(key: tuple) -> str:
    kind, a, b = key
    if kind == "tensor":
        return f"{b} tensor of shape {a}"
    if kind == "module":
        if a() is None:
            return "a deleted module"
        flags = set(_training_flags(b))
        mode = "mixed train/eval" if len(flags) > 1 else "train" if True in flags else "eval"
        return f"{type(a()).__name__} module at {id(a()):#x} in {mode} mode"
    return f"constant {float.fromhex(b) if a is float else b!r}"


def _describe_change(path: str, old: tuple, new: tuple) -> str:
    before, after = _describe(old), _describe(new)
    if before == after:  # (the same module, in the same mode)
        return f"argument '{path}' ({after}): its parameters' or buffers' shapes or dtypes changed"
    return f"argument '{path}' changed from {before} to {after}"


def _differences(old: tuple, new: _Call) -> list[str]:
    """What changed from an earlier call's (spec, paths, keys) to this call's."""
    spec, paths, keys = old
    if spec != new.spec:
        return [f"the arguments' structure changed ({paths} -> {new.paths})"]
    return [_describe_change(path, a, b) for path, a, b in zip(new.paths, keys, new.keys) if a != b]


# ---- one traced and compiled specialisation -----------------------------------------------


class ConcreteFunction:
    """The graph traced for one signature and the Session that runs it: placeholders for
    the tensor arguments, Variables for the modules' parameters and buffers (`state`: the
    (Variable, eager tensor) pairs, parameters first), the outputs to fetch, and the assigns
    the function made (run with every call)."""

    def __init__(self, traced: TracedFunction, call: _Call, shapes=None, numbers=()):
        self.signature = (call.spec, call.paths, call.keys)  # (not the arguments themselves)
        # the placeholders' shapes: the call's, or with unknown (None) dimensions
        self.shapes = shapes if shapes is not None else _tensor_shapes(call)
        self.numbers = numbers  # the leaves (Python numbers) traced as values of the call
        self.graph = Graph()
        modules = call.named_modules()
        param_members = _members(modules, "_parameters")
        buffer_members = _members(modules, "_buffers")
        self.param_members = [member for _, member in param_members]
        with self.graph.as_default():
            tensors = [(x, p) for x, p in zip(call.leaves, call.paths) if isinstance(x, _TENSORS)]
            self.placeholders = [
                placeholder(np.asarray(x).dtype, shape, name=path)
                for (x, path), shape in zip(tensors, self.shapes, strict=True)
            ]
            traced_numbers, self.sites = traced_arguments(call.leaves, call.paths, numbers)
            self.state = [(Variable(m.get()._data, name=name), m) for name, m in param_members]
            self.state += [(_BufferVariable(m.get()._data, name), m) for name, m in buffer_members]
            swap = {id(m.get()): var for var, m in self.state}
            with _state_replaced([m for _, m in modules], swap):
                with random.traced_rng(self.graph) as self.rng, traced_grad_mode():
                    arguments = call.arguments_with(self.placeholders, traced_numbers)
                    out = traced.call_python(arguments)  # (self.rng: fed per call in `run`)
        self.out_leaves: list = []
        self.out_spec = _flatten(out, "", self.out_leaves, [])
        if any(isinstance(x, TracedNumber) for x in self.out_leaves):
            raise TypeError("a traced number is returned: its value is the call's (per value)")
        self.fetch_index = [i for i, x in enumerate(self.out_leaves) if _is_graph(x)]
        self.fetches = [unwrap(self.out_leaves[i]) for i in self.fetch_index]
        self.assigns = _assigns(self.graph) if traced.runs_assigns else []
        assigned = {op.attrs["var"] for op in self.assigns}
        self.written_back = [(var, t) for var, t in self.state if var.name in assigned]
        # (a trace with unknown dimensions is for many sizes: compiled for all at once)
        self.options = {**traced.options, "dynamic": True if shapes else None}
        self.session = Session(self.graph, **self.options)
        fed = self.placeholders + self.sites.placeholders
        self.fed = fed + [self.rng.base] if self.rng.base is not None else fed
        self.run_session = self.session.make_callable(self.fetches + self.assigns, self.fed)
        self._splits: dict = {}  # mask -> partition.Split, or False where there is none
        self._splitting = threading.Lock()  # (a split adds the gradient's ops to the graph)

    @property
    def params(self) -> list:
        """The parameters of the trace's modules, as the modules hold them now."""
        return [member.get() for member in self.param_members]

    def takes_numbers_of(self, call: _Call) -> bool:
        """Whether this trace takes the call's traced numbers (their values converted as
        their constants would be), setting `call.number_feeds`: not where a call needs a
        trace of its own values (an int its dtype cannot hold, a value of another type)."""
        feeds = self.sites.feeds(tuple(call.leaves[i] for i in self.numbers))
        call.number_feeds = feeds or []
        return feeds is not None

    def run(self, call: _Call, split: partition.Split | None = None):
        """The fetched outputs as arrays; with `split` (see `split`), also the arrays its
        backward reads: (outputs, kept)."""
        inputs = [np.asarray(x) for x in call.tensor_leaves()]
        extra = call.number_feeds
        if self.rng.base is not None:  # random ops: this call's (seed, step), kept for its VJP
            if call.rng is None:
                call.rng = random.next_rng(self.rng.count)
            extra = [*extra, call.rng]
        return self._run_arrays(inputs, extra, split)

    def _run_arrays(self, inputs: list, extra: list, split: partition.Split | None = None):
        """The fetched outputs as arrays for these tensor arguments (then the traced
        numbers' and random ops' feeds): parameters and buffers are copied in first, and
        those the function assigned are written back after. With `split`, also what its
        backward reads (see `run`)."""
        state = [member.get()._data for _, member in self.state]  # (what the modules hold now)
        for (var, _), data in zip(self.state, state):
            # (not np.ascontiguousarray: it makes a 0-d count 1-d)
            self.session.variables[var.name] = np.asarray(data, order="C")
        results = (self.run_session if split is None else split.forward)(*inputs, *extra)
        for var, member in self.written_back:
            t, new = member.get(), self.session.variables[var.name]
            if new is not t._data:  # (the compiled code may have written t's array in place)
                np.copyto(t._data, new)
            bump_version(t)  # an in-place change, as optimizer.step() makes
        owned = inputs + state
        outputs = [_not_aliasing(a, owned) for a in results[: len(self.fetches)]]
        if split is None:
            return outputs
        # (a kept value that is also an output, or an input, must not change with it)
        kept = [_not_aliasing(a, owned + outputs) for a in results[len(self.fetches) :]]
        sources = inputs + extra + state
        return outputs, [sources[i] for i in split.kept_sources] + kept

    def split(self, mask: tuple) -> partition.Split | None:
        """The gradient of this trace with respect to the tensors `mask` selects (the
        tensor arguments, then the parameters: the tape node's inputs) as a backward
        program that reads what its forward keeps (partition.py), with that forward; None
        where the trace assigns (its forward runs them, once) or has control flow: the
        VJP then traces the forward again (`_vjp`)."""
        found = self._splits.get(mask)
        if found is None:
            with self._splitting:
                found = self._splits.get(mask)
                if found is None:
                    found = self._splits[mask] = self._split(mask) or False
        return found or None

    def _split(self, mask: tuple) -> partition.Split | None:
        if self.assigns:
            return None
        params = [var.value for var, _ in self.state[: len(self.param_members)]]
        xs = [x for x, wanted in zip(self.placeholders + params, mask, strict=True) if wanted]
        sources = self.fed + [var.value for var, _ in self.state]
        try:
            found = partition.split(self.graph, sources, self.fetches, xs, **self.options)
        except GraphjitError as e:  # (an op with no gradient: the VJP says so at backward)
            _log.info("gj.function: no split backward, the VJP instead: %s", e)
            return None
        if found is not None:
            found.forward = self.session.make_callable(self.fetches + found.kept_values, self.fed)
        return found

    def run_positional(self, args: tuple, positions: list | None, wrapped: bool):
        """A call on the fast path (see `_fast_key`; `_layout` gives `positions` and
        `wrapped`): the arrays straight to the session's callable, the results wrapped as
        tensors when tensors came in; `_NOT_TAKEN` where the call needs the full path (its
        Python numbers a trace of their own values, or its parameters the tape)."""
        number_feeds = []
        if self.numbers:
            number_feeds = self.sites.feeds(tuple(args[i] for i in self.numbers))
            if number_feeds is None:
                return _NOT_TAKEN
        tensors = list(args) if positions is None else [args[i] for i in positions]
        if not wrapped:
            return self.assemble(self._run_arrays(tensors, number_feeds))
        if self.params and self.fetches and _wants_gradient(self.params):
            return _NOT_TAKEN
        inputs = [a._data if type(a) is Tensor else a for a in tensors]
        return self.assemble([wrap(a) for a in self._run_arrays(inputs, number_feeds)])

    def assemble(self, fetched: list):
        """The function's output structure, with `fetched` for its graph tensors."""
        leaves = list(self.out_leaves)
        for i, value in zip(self.fetch_index, fetched):
            leaves[i] = value
        return _unflatten(self.out_spec, iter(leaves))


class _BufferVariable(Variable):
    """The Variable that stands for a module's buffer while tracing. Not trainable (an
    optimizer built in the function skips it), and a read after an assign sees the assigned
    value, as the module's eager code expects: batch norm applied twice in one call moves
    its running statistics twice, in order, instead of TF1's "every assign reads the value
    from the start of the run" (where the last would win)."""

    def __init__(self, initial_value, name: str):
        super().__init__(initial_value, name=name, trainable=False)

    def assign(self, value) -> Value:
        self.value = super().assign(value)
        return self.value


def _is_graph(x) -> bool:
    return isinstance(unwrap(x), Value)


def _not_aliasing(array, owned: list):
    """Results never share memory with the caller's inputs or parameters (an identity
    function's output is a copy), so changing one cannot change the other."""
    if not isinstance(array, np.ndarray):
        return array
    if array.base is None:  # it owns its memory: only it or views of it share that
        shared = any(o is array or getattr(o, "base", None) is array for o in owned)
    else:
        shared = any(np.may_share_memory(array, o) for o in owned)
    return array.copy() if shared else array


def _module_parameters(named_modules: list) -> list:
    """(name, parameter) for each parameter (or, while tracing, the Variable standing in for
    it) of (path, module) pairs, each once, in a fixed order: the VJP's inputs line up with
    the tape node's."""
    return _each_once(module.named_parameters(path) for path, module in named_modules)


class _Member:
    """Where a parameter or buffer of a module passed to (or read by) a traced function is
    found on each call: the module (weakly: a trace of a dead module is never run), the
    names of the submodules down to its owner, and its registry ("_parameters" or
    "_buffers") and name there. A module's attribute may be reassigned between calls
    (`m.mask = new_mask`, `m.fc.weight = Parameter(...)`); a run must read, write back
    and differentiate the tensor the module holds now, not the one it held when traced.
    (Its shape and dtype are in the call's key: another one selects another trace.)"""

    __slots__ = ("module", "path", "registry", "name")

    def __init__(self, module: Module, path: tuple, registry: str, name: str):
        self.module, self.path = weakref.ref(module), path
        self.registry, self.name = registry, name

    def get(self) -> Tensor:
        module = self.module()
        for child in self.path:
            module = module._modules[child]
        return module.__dict__[self.registry][self.name]


def _members(named_modules: list, registry: str) -> list:
    """(name, _Member) for each parameter or buffer (`registry`) of (path, module) pairs,
    each once (a shared one under its first name), in `_module_parameters`' order."""
    found: dict = {}
    for prefix, root in named_modules:
        for path, module in _submodules(root, ()):
            for name, t in module.__dict__[registry].items():
                if t is not None and id(t) not in found:
                    qualified = ".".join((prefix, *path, name) if prefix else (*path, name))
                    found[id(t)] = (qualified, _Member(root, path, registry, name))
    return list(found.values())


def _submodules(module: Module, path: tuple):
    """(path, module) for the module and its submodules, in named_modules' order."""
    yield path, module
    for name, child in module._modules.items():
        if child is not None:
            yield from _submodules(child, (*path, name))


def _each_once(named_groups) -> list:
    found: dict = {}
    for named in named_groups:
        for name, t in named:
            found.setdefault(id(t), (name, t))
    return list(found.values())


def _assigns(graph: Graph) -> list:
    """The assigns the traced code built: the user's and those batch_norm filed under
    `normalization.update_ops(graph)` (TF1 would need them grouped with the fetch; a
    gj.function runs them all, as eager execution would have made them)."""
    return [op for op in graph.block.ops if op.opdef.has(STATE_UPDATE)]


@contextmanager
def _state_replaced(modules: list, swap: dict):
    """While tracing, each module's parameters and buffers are the graph Variables that
    stand for them, so that `self.weight` or `self.running_mean` in `forward` reads the
    Variable."""
    replaced = []
    for module in modules:
        for m in module.modules():
            for entries in (m._parameters, m._buffers):
                for name, t in entries.items():
                    if id(t) in swap:
                        replaced.append((entries, name, t))
                        entries[name] = swap[id(t)]
    try:
        yield
    finally:
        for entries, name, t in reversed(replaced):
            entries[name] = t


def _add_tracing_context(error: GraphjitError, name: str) -> None:
    """Say that the error happened while tracing, and show the user's line."""
    if getattr(error, "_tracing_context", False):
        return  # (an inner gj.function added it already)
    error._tracing_context = True
    where = error.location
    source = linecache.getline(where.file, where.line).strip() if where else ""
    context = f"\n  while tracing gj.function '{name}', where tensor arguments are symbolic"
    if source:  # (the location itself is in the message already)
        context += f"\n  at {where}: {source}"
    if "truth value" in error.raw_message:
        context += (
            "\n  Python `if`/`while` cannot branch on a traced value: use gj.cond or "
            "gj.while_loop, or pass the value as a Python number (one trace per value)"
        )
    error.args = (str(error) + context, *error.args[1:])


# ---- gradients through compiled calls -----------------------------------------------------


def _wants_gradient(tensors: list) -> bool:
    return is_grad_enabled() and any(t.requires_grad for t in tensors)


def _records_gradient(call: _Call, concrete: ConcreteFunction) -> bool:
    return _wants_gradient([x for x in call.leaves if isinstance(x, Tensor)] + concrete.params)


class CompiledFunction(AutogradFunction):
    """One tape node for a compiled call; its backward runs the compiled VJP."""

    @staticmethod
    def forward(ctx, state, *tensors):
        traced, concrete, call = state
        ctx.state, ctx.inputs = state, len(tensors)
        mask = tuple(ctx.needs_input_grad[1:])
        ctx.split = concrete.split(mask) if any(mask) else None
        if ctx.split is None:
            ctx.save_for_backward(*tensors)
            return tuple(wrap(a) for a in concrete.run(call))
        outputs, kept = concrete.run(call, ctx.split)
        ctx.save_for_backward(*tensors, *[wrap(k) for k in kept])  # (freed with the node)
        return tuple(wrap(a) for a in outputs)

    @staticmethod
    def backward(ctx, *cotangents):
        traced, concrete, call = ctx.state
        saved = ctx.saved_tensors  # (raises if an input was changed in place since)
        if ctx.split is not None and not is_grad_enabled():  # (not create_graph)
            floats = [g._data for g, y in zip(cotangents, concrete.fetches) if y.dtype.is_floating]
            grads = iter(ctx.split.backward(*[k._data for k in saved[ctx.inputs :]], *floats))
            mask = ctx.needs_input_grad[1:]
            found = [next(grads) if needed else None for needed in mask]
            return (None, *[None if g is None else wrap(g) for g in found])
        saved = saved[: ctx.inputs]
        n = len(saved) - len(concrete.params)
        arguments = call.arguments_with(saved[:n])
        captured = tuple(m for _, m in call.captured)
        mask = tuple(ctx.needs_input_grad[1:])
        rng = call.rng if call.rng is not None else np.zeros(2, np.int64)
        grads = traced.vjp(arguments, captured, mask, list(cotangents), rng)
        return (None, *grads)


def _vjp(primal: TracedFunction, arguments: dict, captured: tuple, mask, cotangents, rng) -> list:
    """Traced by `primal.vjp`: the gradients of primal's float outputs, weighted by
    `cotangents` (one per tensor output), w.r.t. its tensor `arguments` and then the
    parameters of its modules (`captured`: those read from globals and closures), each None
    where `mask` says no gradient is needed or nothing depends on it. `rng`: the forward
    call's (seed, step), so that its random ops (dropout masks) are the forward's."""
    out: list = []
    with random.with_rng(get_default_graph(), unwrap(rng)):
        _flatten(primal.call_python(arguments), "", out, [])
    pairs = [
        (unwrap(y), ct)
        for y, ct in zip([y for y in out if _is_graph(y)], cotangents)
        if unwrap(y).dtype.is_floating
    ]
    leaves: list = []
    _flatten(arguments, "", leaves, [])
    modules = [("", x) for x in [*leaves, *captured] if isinstance(x, Module)]
    xs = [x for x in leaves if _is_graph(x)] + [p for _, p in _module_parameters(modules)]
    wanted = [x for x, needed in zip(xs, mask) if needed]
    grads = iter([None] * len(wanted))
    if pairs and wanted:
        grads = iter(gradients([y for y, _ in pairs], wanted, [ct for _, ct in pairs]))
    return [next(grads) if needed else None for needed in mask]
