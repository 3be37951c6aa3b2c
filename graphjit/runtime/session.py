"""Session: runs fetches of a graph on a backend, holding the variables between runs."""

from __future__ import annotations

import functools
import numbers
import threading
from collections import OrderedDict
from contextlib import contextmanager
from dataclasses import dataclass

import numpy as np

from graphjit.errors import (
    BackendError,
    DTypeError,
    FeedDTypeError,
    FeedError,
    FeedShapeError,
    FetchError,
    ShapeError,
)
from graphjit.ir.core import Operation, Value, user_location
from graphjit.ir.ops import FEED
from graphjit.ir.types import ieee_results, integer_out_of_range, number_array, shape_str
from graphjit.nest import flatten, unflatten
from graphjit.runtime import checkpoint
from graphjit.runtime.executable import BACKENDS, Executable, compile_program
from graphjit.runtime.inspect import CompileReport
from graphjit.runtime.program import (
    build_program,
    needed_ops,
    size_class,
    size_sources,
    symbolic_feed_types,
)

# () -> the graph a Session uses when it is given none. The frontend, which owns the user's
# default graph, registers it (`set_default_graph_provider`): the runtime sits below the
# frontend and never imports it. A graph is anything with `block`, `placeholders` and
# `variables` (see runtime/program.py).
_default_graph_provider = None


def set_default_graph_provider(provider) -> None:
    global _default_graph_provider
    _default_graph_provider = provider


# The sessions entered with `with Session(...)` or `sess.as_default()`, innermost last, per
# thread: `tensor.eval()` and `Variable.load` without a session use the innermost (TF1).
_sessions = threading.local()


def _session_stack() -> list:
    if not hasattr(_sessions, "stack"):
        _sessions.stack = []
    return _sessions.stack


def get_default_session():
    """The innermost session entered in this thread (`with Session(...)`), or None."""
    stack = _session_stack()
    return stack[-1] if stack else None


def _default_graph():
    if _default_graph_provider is None:
        raise FetchError(
            "Session() needs a graph: no default graph is registered", location=user_location()
        )
    return _default_graph_provider()


class Session:
    """`Session(graph, backend=...)`: `run(fetches, feed_dict)` returns NumPy arrays in the
    structure of `fetches`. Variables are initialised when the session opens.

    `check_numerics`: a run whose ops produce NaN or ±inf raises NumericsError naming the
    first such op and its line. `cache_size`: how many compiled signatures (fetches and
    feed shapes) the session keeps; the least recently used is dropped beyond that, and
    its native code freed once nothing else uses it. `max_tensor_bytes`: a specialised
    tensor bigger than this is a ResourceError before anything is allocated (default:
    physical memory, or GRAPHJIT_MAX_TENSOR_BYTES). `flush_denormals`: the llvm backend's
    native code runs with subnormal floats flushed to zero (x86 FTZ and DAZ, as XLA and
    TensorFlow do), because arithmetic on them is up to 100x slower (vanishing gradients
    through a long loop end there); False keeps IEEE gradual underflow, as the interpreter
    and eager mode always do. `dynamic` (llvm; torch.compile's name and default): None
    compiles the first run of a feed's unknown dimensions for the fed sizes, and from the
    second size on compiles them as sizes of the run (ir/symbolic.py), one compile for
    every size its guards admit; True does so from the first run, False never.
    `held_buffer_bytes` (llvm): how much working memory (scratch arena, spare output
    arrays) each compiled program keeps between runs; default GRAPHJIT_HELD_BUFFER_BYTES.

    Threads: one Session may be used from several threads at once. Each `run` sees its
    own feeds and returns its own result arrays; runs of one compiled signature take turns
    on its scratch arena, runs of different signatures overlap; concurrent first calls may
    each compile, and all of them get correct results. Runs that assign variables from
    several threads apply their updates in some order, each run reading the values as
    they were when it started (as in TF1). `close()` must not race with `run`."""

    def __init__(
        self,
        graph=None,
        backend: str = "llvm",
        check_numerics: bool = False,
        optimize: bool | None = None,
        cache_size: int = 64,
        max_tensor_bytes: int | None = None,
        flush_denormals: bool = True,
        dynamic: bool | None = None,
        held_buffer_bytes: int | None = None,
    ):
        if graph is None:
            graph = _default_graph()
        if backend not in BACKENDS:
            raise BackendError(
                f"unknown backend {backend!r}; choose one of {sorted(BACKENDS)}",
                location=user_location(),
            )
        if BACKENDS[backend].require is not None:
            BACKENDS[backend].require()  # an optional backend names the extra it needs
        self.graph = graph
        self.backend = backend
        self.check_numerics = check_numerics
        self.optimize = optimize
        if cache_size < 1:
            raise BackendError(
                f"cache_size must be at least 1, got {cache_size}", location=user_location()
            )
        self.cache_size = cache_size
        self.max_tensor_bytes = max_tensor_bytes
        self.flush_denormals = flush_denormals
        self.dynamic = dynamic
        if held_buffer_bytes is not None and (
            isinstance(held_buffer_bytes, bool)
            or not isinstance(held_buffer_bytes, numbers.Integral)
            or held_buffer_bytes < 0
        ):
            raise BackendError(
                f"held_buffer_bytes must be a whole number of bytes >= 0 (or None), got "
                f"{held_buffer_bytes!r}",
                location=user_location(),
            )
        self.held_buffer_bytes = held_buffer_bytes
        self.variables: dict[str, np.ndarray] = {}
        self._cache: OrderedDict = OrderedDict()  # signature -> Executable, oldest first
        self._valid_fetches: dict = {}  # fetch object -> validated Value or Operation
        self._valid_feed_keys: dict = {}  # feed_dict key -> validated placeholder
        self._run_plans: dict = {}  # _fast_key(...) -> _RunPlan: runs seen before
        # size_class(...) -> executables compiled for every batch size, newest first (an
        # empty list: the class was compiled for its fed shapes once)
        self._any_size: dict = {}
        self._per_shape: set = set()  # size classes compiled for their fed shapes from now on
        self._lock = threading.Lock()
        self.closed = False
        self._initialise_new_variables()

    # -- context manager ----------------------------------------------------------------
    def __enter__(self) -> Session:
        _session_stack().append(self)  # the default session inside the block, as in TF1
        return self

    def __exit__(self, *exc) -> None:
        _leave(self)
        self.close()

    @contextmanager
    def as_default(self):
        """Make this the default session inside the block, without closing it after."""
        _session_stack().append(self)
        try:
            yield self
        finally:
            _leave(self)

    def close(self) -> None:
        """Free what the session holds: compiled executables (and with them their arenas
        and, unless another session shares it, their native code) and variable storage."""
        self.closed = True
        with self._lock:
            self._cache.clear()
            self._run_plans = {}
            self._any_size = {}
            self._per_shape = set()
            self._valid_fetches.clear()
            self._valid_feed_keys.clear()
            self.variables = {}

    def _check_open(self) -> None:
        if self.closed:
            raise FetchError("this Session is closed", location=user_location())

    # -- running ------------------------------------------------------------------------
    def run(self, fetches, feed_dict=None):
        if self.closed:
            self._check_open()
        key = _fast_key(fetches, feed_dict)
        plan = self._run_plans.get(key) if key is not None else None
        if plan is None:
            return self._run_checked(fetches, feed_dict, key)
        try:  # keep the signature's executable recent in the LRU order
            self._cache.move_to_end(plan.signature)
        except KeyError:  # evicted by another thread meanwhile: the plan still works
            pass
        values = list(feed_dict.values()) if feed_dict else []
        args = [values[i] for i in plan.feed_order]
        if plan.converted:  # scalars (and arrays of another dtype): `run`'s conversion
            args = [a if f is None else f(a) for a, f in zip(args, plan.converted)]
        return self._execute(plan.executable, args, plan.fetched)

    def make_callable(self, fetches, feed_list=None):
        """TF1's `Session.make_callable`: a function of the values for `feed_list` (in that
        order) that runs `fetches`. Each new signature of fed shapes and dtypes takes the
        checked path of `run` once; later calls with it go straight to the executable."""
        feed_list = list(feed_list or [])
        plans: dict = {}

        def call(*feed_values):
            if len(feed_values) != len(feed_list):
                raise FeedError(
                    f"this callable takes {len(feed_list)} feed values, got {len(feed_values)}",
                    location=user_location(),
                )
            # (a list's part is None: its run keeps no plan, so no such key is kept)
            key = tuple(map(_callable_key, feed_values))
            plan = plans.get(key)
            if plan is None or self.closed:
                return self._first_call(fetches, feed_list, feed_values, key, plans)
            args = [feed_values[i] for i in plan.feed_order]
            if plan.converted:
                args = [a if f is None else f(a) for a, f in zip(args, plan.converted)]
            return self._execute(plan.executable, args, plan.fetched)

        return call

    def _first_call(self, fetches, feed_list, feed_values, key, plans):
        """A callable's run of a new signature: `run`'s checks, and its plan kept for the
        calls that follow."""
        feed_dict = dict(zip(feed_list, feed_values))
        out = self.run(fetches, feed_dict)
        plan = self._run_plans.get(_fast_key(fetches, feed_dict))
        if plan is not None and len(feed_dict) == len(feed_list):  # (no key fed twice)
            if len(plans) >= self.cache_size:
                plans.clear()  # (the Session's own cache bounds how many it compiles)
            plans[key] = plan
        return out

    def _run_checked(self, fetches, feed_dict, key):
        """The full path: validate fetches and feeds, compile if needed, and remember how
        to repeat this run without the checks when nothing about it changes."""
        leaves, spec = flatten(fetches)
        values, ops = self._classify_fetches(leaves)
        fetched = _Fetched.of(leaves, spec)
        feeds = self._validate_feeds(feed_dict or {})
        self._initialise_new_variables()
        signature = _signature(values, ops, feeds)
        executable = self._executable(values, ops, feeds)
        placeholders = executable.program.placeholders
        given = list((feed_dict or {}).values())
        if key is not None and len(feeds) == len(given):  # (not with a placeholder fed twice)
            order = [list(feeds).index(p) for p in placeholders]
            converted = [
                None if feeds[p] is given[i] else _reconversion(p, given[i])
                for p, i in zip(placeholders, order)
            ]
            if all(c is None for c in converted):
                converted = None
            plan = _RunPlan(executable, order, fetched, signature, converted)
            with self._lock:  # not for a signature another thread evicted meanwhile
                if signature in self._cache:
                    self._run_plans[key] = plan
        return self._execute(executable, [feeds[p] for p in placeholders], fetched)

    def _execute(self, executable: Executable, feed_args: list, fetched: _Fetched):
        program = executable.program
        outs = executable.run(feed_args + [self.variables[name] for name in program.variables])
        n = len(program.fetches)
        if program.assigned:
            with self._lock:
                for name, new in zip(program.assigned, outs[n:], strict=True):
                    self.variables[name] = new
        return fetched.build(outs[:n])

    def inspect(self, fetches, feed_dict=None) -> CompileReport:
        """Compile (or reuse) what `run` would, and report on it: kernels, planned memory,
        the IR after each pipeline stage, compile time."""
        self._check_open()
        leaves, _ = flatten(fetches)
        values, ops = self._classify_fetches(leaves)
        feeds = self._validate_feeds(feed_dict or {})
        self._initialise_new_variables()
        executable = self._executable(values, ops, feeds, keep_ir=True)
        return CompileReport.of(executable, [feeds[p] for p in executable.program.placeholders])

    def _executable(self, values, ops, feeds, keep_ir=False) -> Executable:
        key = _signature(values, ops, feeds)
        with self._lock:
            executable = self._cache.get(key)
            if executable is not None:
                self._cache.move_to_end(key)
        if executable is not None and (executable.report.ir or not keep_ir):
            return executable  # (compiled for these shapes: no size class to work out)
        sized = self._size_class(values, ops, feeds)
        if executable is None and sized is not None:
            executable = self._any_size_executable(*sized[:2])
            if executable is not None:  # (under these shapes too: run plans need the key)
                self._remember(key, executable)
        if executable is None or (keep_ir and not executable.report.ir):
            if executable is not None and executable.program.shape_env is None:
                sized = None  # (inspect: again the static code that runs at these shapes)
            executable = self._compile(values, ops, feeds, keep_ir, sized)
            self._remember(key, executable)
        return executable

    def _size_class(self, values, ops, feeds):
        """(its key, the symbols' values, their sources) of a run whose unknown dimensions
        the backend can compile as sizes of the run (runtime/program.size_class), or None."""
        if not BACKENDS[self.backend].symbolic_sizes or self.dynamic is False:
            return None
        shapes, sizes, sources = size_class(feeds)
        return ((tuple(values), tuple(ops), shapes), sizes, sources) if sizes else None

    def _compile(self, values, ops, feeds, keep_ir, sized) -> Executable:
        self._check_feeds_present(values, ops, feeds)
        # dynamic=None: a size class's first compile is for its fed shapes (static code,
        # for a program only ever run at one size); the next one for every size, unless
        # one such compile served its own sizes alone (_per_shape)
        symbolic = (
            sized is not None
            and sized[0] not in self._per_shape
            and (self.dynamic or sized[0] in self._any_size)
        )
        if symbolic:
            feed_types, env = symbolic_feed_types(feeds, sized[1])
        else:
            feed_types, env = {p: p.type.with_shape(a.shape) for p, a in feeds.items()}, None
        program = build_program(self.graph, values, ops, feed_types, self.max_tensor_bytes)
        program.held_buffer_bytes = self.held_buffer_bytes
        if env is not None:
            program.shape_env = env
            program.sizes = size_sources(program.placeholders, sized[2], sized[1])
        executable = compile_program(
            program,
            self.backend,
            self.check_numerics,
            self.optimize,
            keep_ir,
            self.flush_denormals,
        )
        if sized is not None:
            with self._lock:
                compiled = self._any_size.setdefault(sized[0], [])
                if env is not None:
                    env.freeze()  # (its guards are final: see symbolic.ShapeEnv.freeze)
                    compiled.insert(0, executable)
                    del compiled[self.cache_size :]
                    if env.fixes_every_symbol():  # (static code compiles faster, runs as fast)
                        self._per_shape.add(sized[0])
        return executable

    def _any_size_executable(self, size_key, sizes):
        """An executable compiled for these fetches and shapes up to the sizes of their
        unknown dimensions whose guards admit these sizes (symbolic.py), or None."""
        for executable in self._any_size.get(size_key, ()):
            if executable.program.shape_env.admits(sizes):
                return executable
        return None

    def _remember(self, key, executable: Executable) -> None:
        """Cache `executable`, dropping the least recently used beyond `cache_size` (and
        the run plans that refer to them, so that nothing keeps them alive)."""
        with self._lock:
            self._cache[key] = executable
            self._cache.move_to_end(key)
            evicted = set()
            while len(self._cache) > self.cache_size:
                evicted.add(self._cache.popitem(last=False)[0])
            if evicted:  # a new dict, so that lock-free readers never see one changing
                self._run_plans = {
                    k: plan for k, plan in self._run_plans.items() if plan.signature not in evicted
                }

    def _classify_fetches(self, leaves):
        values, ops = [], []
        memo = self._valid_fetches
        for leaf in leaves:
            known = memo.get(leaf) if _hashable(leaf) else None
            if known is not None:  # validated before: the hot path of repeated runs
                (values if isinstance(known, Value) else ops).append(known)
                continue
            original = leaf
            leaf = self._fetch_by_name(leaf) if isinstance(leaf, str) else _unwrap(leaf)
            if isinstance(leaf, Value):
                values.append(leaf)
            elif isinstance(leaf, Operation):
                ops.append(leaf)
            else:
                raise FetchError(
                    f"cannot fetch {leaf!r}: fetches are graph tensors or ops",
                    location=user_location(),
                )
            op = leaf.op if isinstance(leaf, Value) else leaf
            if op is None or op.parent is not self.graph.block:
                raise FetchError(
                    f"cannot fetch {leaf!r}: it does not belong to this session's graph"
                    " (or is inside a cond/while region)",
                    op=op,
                    location=_where(op),
                )
            memo[original] = leaf
        return values, ops

    def _fetch_by_name(self, name: str) -> Value:
        """The tensor that `name` names: "w" or "w:0" for a variable or placeholder, else the
        top-level value built under that name ("loss:0" for `identity(x, name="loss")`)."""
        base, _, index = name.partition(":")
        if not base or (index and not index.isdigit()):
            raise FetchError(
                f"cannot fetch {name!r}: a tensor name is 'name' or 'name:index'",
                location=user_location(),
            )
        index = int(index or 0)
        graph = self.graph
        if index == 0 and base in graph.variables:
            return _unwrap(graph.variables[base])
        if index == 0 and base in graph.placeholders:
            return graph.placeholders[base]
        found = [
            r
            for op in graph.block.ops
            for r in op.results
            if (r.name_hint, r.index) == (base, index)
        ]
        if len(found) != 1:
            why = "no tensor has" if not found else f"{len(found)} tensors have"
            raise FetchError(
                f"cannot fetch {name!r}: {why} that name in this session's graph (name a tensor "
                "with identity(x, name=...) or an op's name= argument)",
                location=user_location(),
            )
        return found[0]

    def _validate_feeds(self, feed_dict) -> dict:
        feeds = {}
        for key, value in feed_dict.items():
            placeholder = self._valid_feed_keys.get(key) if _hashable(key) else None
            if placeholder is None:
                placeholder = self._feed_key(key)
                if _hashable(key):
                    self._valid_feed_keys[key] = placeholder
            feeds[placeholder] = _convert_feed(placeholder, value)
        return feeds

    def _feed_key(self, key) -> Value:
        """The placeholder that a feed_dict key names, or a FeedError saying why not."""
        key = _unwrap(key)
        if isinstance(key, str):
            if key.split(":")[0] not in self.graph.placeholders:
                raise FeedError(
                    f"cannot feed {key!r}: this graph has no placeholder of that name",
                    location=user_location(),
                )
            key = self.graph.placeholders[key.split(":")[0]]
        if not isinstance(key, Value) or key.op is None or not key.op.opdef.has(FEED):
            op = key.op if isinstance(key, Value) else None
            raise FeedError(
                f"cannot feed {key!r}: only placeholders can be fed", op=op, location=_where(op)
            )
        if key.op.parent is not self.graph.block:
            raise FeedError(f"placeholder '{key.op.attrs['name']}' is not in this graph", op=key.op)
        return key

    def _check_feeds_present(self, values, ops, feeds) -> None:
        roots = [v.op for v in values] + list(ops)
        for op in needed_ops(self.graph.block, roots):
            if op.opdef.has(FEED) and op.result not in feeds:
                raise FeedError(
                    f"placeholder '{op.attrs['name']}' needs a value in feed_dict", op=op
                )

    def _initialise_new_variables(self) -> None:
        if len(self.variables) == len(self.graph.variables):
            return
        for name, var in self.graph.variables.items():
            if name not in self.variables:
                self.variables[name] = np.array(var.initial_value)

    def load_variable(self, name: str, value) -> None:
        """Set variable `name` to `value` in this session (TF1's `Variable.load`): the value
        must have the variable's shape and a dtype that converts to its dtype by same-kind
        casting, integers within its range."""
        self._check_open()
        var = self.graph.variables.get(name)
        if var is None:
            raise FetchError(
                f"this session's graph has no variable {name!r}", location=user_location()
            )
        array = np.asarray(value)
        target = np.dtype(var.dtype.np)
        if array.dtype != target and (
            integer_out_of_range(array, target) is not None
            or not np.can_cast(array.dtype, target, casting="same_kind")
        ):
            raise DTypeError(
                f"cannot load {array.dtype} data into variable '{name}' of dtype {target}",
                location=user_location(),
            )
        if array.shape != tuple(var.shape):
            raise ShapeError(
                f"cannot load shape {shape_str(array.shape)} into variable '{name}' of shape "
                f"{shape_str(tuple(var.shape))}",
                location=user_location(),
            )
        with self._lock:
            self.variables[name] = np.array(array, dtype=target)  # a copy the caller cannot change

    # -- checkpoints --------------------------------------------------------------------
    def save(self, path: str) -> str:
        """Write every variable to `path` atomically; returns the path."""
        self._check_open()
        self._initialise_new_variables()
        return checkpoint.save(path, self.variables)

    def restore(self, path: str) -> None:
        """Load the graph's variables from a checkpoint written by `save`: each must be there
        with its shape and dtype; variables the file has beyond the graph's (an optimizer's
        slots, when an inference graph restores a training checkpoint) are not read."""
        self._check_open()
        expected = {n: (v.shape, v.dtype.np) for n, v in self.graph.variables.items()}
        loaded = checkpoint.load(path, expected)
        with self._lock:
            self.variables.update(loaded)


def _leave(session) -> None:
    """Pop `session` from this thread's default-session stack (its innermost entry)."""
    stack = _session_stack()
    for i in range(len(stack) - 1, -1, -1):
        if stack[i] is session:
            del stack[i]
            return


@dataclass(frozen=True)
class _Fetched:
    """How a run gives its fetched arrays back: in the fetches' structure (`spec`), with
    None for each leaf that is an op (`tensors`: per leaf, whether it is a tensor). `flat`:
    the structure is a plain list or tuple of leaves (`[train_op, loss]`), built directly."""

    spec: object
    tensors: tuple
    flat: type | None

    @classmethod
    def of(cls, leaves: list, spec) -> _Fetched:
        flat = None
        if spec is not None and spec[0] in (list, tuple) and all(s == (1, None) for s in spec[2]):
            flat = spec[0]
        return cls(spec, tuple(map(_is_value, leaves)), flat)

    def build(self, outs: list):
        if self.spec is None:  # one tensor or op
            return outs[0] if outs else None
        fetched = iter(outs)
        leaves = [next(fetched) if tensor else None for tensor in self.tensors]
        return self.flat(leaves) if self.flat is not None else unflatten(self.spec, leaves)


@dataclass
class _RunPlan:
    """How to repeat a validated run: the executable, and which feed_dict value (by
    position) feeds each of its placeholders."""

    executable: Executable
    feed_order: list[int]
    fetched: _Fetched
    signature: tuple  # the executable's key in the session's cache
    # Per placeholder, None where its feed is taken as it is given (an array of its dtype
    # and a shape it fits), else how to convert and check the feed (a scalar, an array of
    # another dtype) on each run as the first run did (`_reconversion`). None: every feed
    # as given.
    converted: list | None = None


def _signature(values, ops, feeds) -> tuple:
    """What a compiled executable is specialised on: fetches and fed shapes."""
    return (tuple(values), tuple(ops), tuple((p, a.shape) for p, a in feeds.items()))


def _fast_key(fetches, feed_dict):
    """A key that identifies a run completely (fetches, feed keys, feed shapes and dtypes,
    a Python number's type), or None when the run must take the checked path (nested
    fetches, feeds that are lists or other objects)."""
    if type(fetches) in (list, tuple):
        if not all(_hashable(f) and not isinstance(f, (list, tuple, dict)) for f in fetches):
            return None
        head = (type(fetches), *fetches)
    elif _hashable(fetches) and not isinstance(fetches, str):
        head = (fetches,)
    else:
        return None
    if not feed_dict:
        return head
    parts = [head]
    for k, v in feed_dict.items():
        if not _hashable(k):
            return None
        if type(v) is np.ndarray:
            parts.append((k, v.shape, v.dtype))
        elif isinstance(v, np.generic):  # (np.int32(n), np.float32(lr): TF1's scalar feeds)
            parts.append((k, v.dtype))
        elif type(v) in _NUMBERS:  # (TF1's `{lr: 0.01, keep_prob: 0.5}`)
            parts.append((k, type(v)))
        else:
            return None
    return tuple(parts)


_NUMBERS = (float, int, bool)


def _callable_key(v):
    """A make_callable feed's part of its key, as in _fast_key (None: checked each call)."""
    if type(v) is np.ndarray:
        return v.shape, v.dtype
    if isinstance(v, np.generic):
        return (v.dtype,)
    return (type(v),) if type(v) in _NUMBERS else None


def _reconversion(placeholder: Value, given):
    """How a repeated run converts a feed that its first run converted: what
    `_convert_feed` does, by the shortest way for the feeds TF1 programs repeat (the
    run's key fixes the feed's type: a Python number, a NumPy scalar or array dtype)."""
    dtype = placeholder.type.dtype.np
    if isinstance(given, np.generic) and given.dtype == dtype:
        return np.asarray
    if type(given) in (float, bool):  # (the placeholder's kind takes it: the first run did)
        return functools.partial(np.array, dtype=dtype)
    if type(given) is int:
        return functools.partial(_int_feed, placeholder, dtype)
    return functools.partial(_convert_feed, placeholder)


def _int_feed(placeholder: Value, dtype, value: int) -> np.ndarray:
    array = number_array(value, dtype)  # (None: `_convert_feed` raises, or takes a huge int)
    return array if array is not None else _convert_feed(placeholder, value)


def _hashable(x) -> bool:
    return getattr(type(x), "__hash__", None) is not None


def _is_value(x) -> bool:
    return isinstance(x, str) or isinstance(_unwrap(x), Value)  # a name names a tensor


def _where(op):
    """Where an error about `op` points: the line that built it, else the user's current line."""
    return op.loc if op is not None and op.loc is not None else user_location()


def _unwrap(x):
    hook = getattr(x, "__graphjit_value__", None)
    return hook() if hook is not None else x


def _convert_feed(placeholder: Value, value) -> np.ndarray:
    t = placeholder.type
    if type(value) is np.ndarray and value.dtype == t.dtype.np and _shape_fits(value.shape, t):
        return value  # the common case, checked without conversion
    name = placeholder.op.attrs["name"]
    try:
        array = np.asarray(value)
    except (TypeError, ValueError, OverflowError) as e:
        raise FeedError(
            f"cannot feed {type(value).__name__} to placeholder '{name}': {e}", op=placeholder.op
        ) from None
    if array.dtype != t.dtype.np:
        _check_integer_range(array, placeholder)
        if not np.can_cast(array.dtype, t.dtype.np, casting="same_kind"):
            raise FeedDTypeError(
                f"cannot feed {array.dtype} data to placeholder '{name}' of dtype {t.dtype.name}",
                op=placeholder.op,
            )
        array = ieee_results(array.astype, t.dtype.np)  # (1e40 fed as float32: inf)
    if not _shape_fits(array.shape, t):
        raise FeedShapeError(
            f"cannot feed shape {shape_str(array.shape)} to placeholder '{name}' of shape "
            f"{shape_str(t.shape)}",
            op=placeholder.op,
        )
    return array


def _shape_fits(shape, t) -> bool:
    if t.shape is None:
        return True  # any rank
    return len(shape) == len(t.shape) and all(
        d is None or d == a for d, a in zip(t.shape, shape, strict=True)
    )


def _check_integer_range(array: np.ndarray, placeholder: Value) -> None:
    """Integers fed to an integer placeholder of another dtype must fit it (a cast would
    wrap them around)."""
    target = placeholder.type.dtype
    bad = integer_out_of_range(array, target.np)
    if bad is not None:
        info = np.iinfo(target.np)
        raise FeedError(
            f"cannot feed {bad} to placeholder '{placeholder.op.attrs['name']}' of dtype "
            f"{target.name}: its values must lie in [{info.min}, {info.max}]",
            op=placeholder.op,
        )
