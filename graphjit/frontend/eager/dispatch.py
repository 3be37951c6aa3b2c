"""The eager handler: how registry ops apply to `gj.Tensor` operands.

`apply` runs the op's NumPy reference kernel at once and, when grad mode is on and an
operand requires grad, records a tape node. This is the per-op hot path of eager mode, so it
does no stack inspection and no shape inference: a failing kernel is diagnosed afterwards,
through the op's shape rule and the user's source line. Shape ops that can share their
operand's storage make views instead (views.py).
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ResourceError, ShapeError
from graphjit.frontend.eager.anomaly import ANOMALY
from graphjit.frontend.eager.grad_mode import _MODE
from graphjit.frontend.eager.node import STALE, check_stale, node_class
from graphjit.frontend.eager.tensor import DTYPE_OF, Tensor, wrap
from graphjit.frontend.eager.views import VIEW_KERNELS, run_view, sync_view
from graphjit.frontend.eager_compiled import native_kernel, native_matmul
from graphjit.ir.core import Value, user_location
from graphjit.ir.ops import NONDIFF, WINDOWED, Handler, OpDef, all_ops, get_op
from graphjit.ir.ops.indexing import checked_indices
from graphjit.ir.types import NARROW_NP, constant_array, ieee_results, is_float_array

_asarray = np.asarray


def _select(c, a, b):
    """np.where(c, a, b), bit for bit, faster for the float selects backward is made of.

    NumPy's where branches per element, so a mask with no pattern (relu's, half its
    elements set) costs it ~0.5 ms per 128x1024 float32 array, 12x an elementwise multiply;
    each relu backward is such a select (`select(x > 0, g, 0)`). Here the selection is a
    bitwise AND of each element's bits with a mask of all ones or all zeros (the bool mask
    as int8, negated, sign-extended by the AND): no branch, and exactly the bits np.where
    gives, NaNs and signed zeros included. Anything else (broadcasting, other layouts or
    dtypes, a nonzero constant, a non-bool condition) is np.where's."""
    if (
        type(c) is np.ndarray
        and c.size >= 2048  # (below, np.where is faster than the four NumPy calls here)
        and type(a) is np.ndarray
        and type(b) is np.ndarray
        and c.dtype == np.bool_
        and a.dtype == b.dtype
        and a.dtype.kind == "f"
        and c.flags.c_contiguous
    ):
        bits = _SAME_SIZE_INTEGERS.get(a.dtype.itemsize)
        if b.ndim == 0 and a.shape == c.shape and a.flags.c_contiguous:  # select(c, g, 0)
            if bits is not None and not b.view(bits):  # (+0.0 only: its bits are all zero)
                return np.bitwise_and(a.view(bits), _all_ones_where(c)).view(a.dtype)
        elif a.ndim == 0 and b.shape == c.shape and b.flags.c_contiguous:  # select(c, 0, g)
            if bits is not None and not a.view(bits):
                mask = _all_ones_where(c)
                np.invert(mask, out=mask)  # (all ones where c is False: b's bits kept there)
                return np.bitwise_and(b.view(bits), mask).view(b.dtype)
    return np.where(c, a, b)


def _all_ones_where(c: np.ndarray) -> np.ndarray:
    """int8 -1 (all bits set) where c is True, 0 elsewhere. (astype, not a view as int8: a
    bool array made by viewing bytes may hold values other than 0 and 1.)"""
    mask = c.astype(np.int8)
    return np.negative(mask, out=mask)


_SAME_SIZE_INTEGERS = {2: np.dtype(np.int16), 4: np.dtype(np.int32), 8: np.dtype(np.int64)}


def _scatter_indices(updates, indices, like, axis, wrap_negative) -> None:
    """scatter_add's index check, the registry kernel's (its error), before compiled code:
    eager scatter_add runs as the llvm backend's once hot, since NumPy's np.add.at takes
    its slow path for the kernel's (rows, index) form: 2048 rows of 128 floats into 96,
    the embedding gradient of the bench's transformer, 1.75 ms against 35 us, added in the
    same order (the same bits)."""
    checked_indices(indices, like.shape[axis], axis, wrap_negative)


# Kernels eager mode runs in place of the registry's, faster (the registry's serve the
# reference interpreter and constant folding as well): select's gives the same bits, the
# WINDOWED ops' compiled code the same results up to rounding (eager_compiled.py).
EAGER_KERNELS = {
    get_op("select"): _select,
    **{op: native_kernel(op) for op in all_ops().values() if op.has(WINDOWED)},
    get_op("scatter_add"): native_kernel(
        get_op("scatter_add"), index_operands=frozenset({1}), check=_scatter_indices
    ),
}
# The same, for two operands neither of which is a narrow float, with attributes (in place
# of the registry's float_kernel): large matmuls on graphjit's threads (eager_compiled.py).
EAGER_FLOAT_KERNELS = {get_op("matmul"): native_matmul(get_op("matmul"))}


def run_op(opdef: OpDef, operands: list, attrs: dict) -> list:
    try:
        raw = ieee_results(_run_kernel, opdef, operands, attrs)  # (x / 0: inf, never an error)
    except MemoryError:
        raise ResourceError(
            f"out of memory computing '{opdef.name}'", location=user_location()
        ) from None
    except GraphjitError as e:
        if e.op is None and e.location is None:  # a kernel's own value check: say where
            raise type(e)(f"{opdef.name}: {e.raw_message}", location=user_location()) from None
        raise
    except Exception as e:
        raise _kernel_error(opdef, operands, attrs, e) from None
    if type(raw) is np.ndarray:  # (most kernels: no asarray to call)
        results = [wrap(raw)]
    elif type(raw) is tuple:
        results = [wrap(_asarray(r)) for r in raw]
    else:
        results = [wrap(_asarray(raw))]
    if _MODE.enabled and opdef.vjp != NONDIFF and _any_requires_grad(operands):
        record(opdef, operands, attrs, results)
    return results


def _run_kernel(opdef: OpDef, operands: list, attrs: dict):
    """The op's eager kernel on the operands' arrays: its raw result."""
    count = len(operands)
    # (the common cases first, without building a list of arrays)
    if count == 2 and opdef not in EAGER_KERNELS:
        x, y = operands[0]._data, operands[1]._data
        if x.dtype in NARROW_NP or y.dtype in NARROW_NP:
            return opdef.kernel(x, y, **attrs)
        if attrs:
            return EAGER_FLOAT_KERNELS.get(opdef, opdef.float_kernel)(x, y, **attrs)
        return opdef.float_kernel(x, y)
    if count == 1 and not attrs and operands[0]._data.dtype not in NARROW_NP:
        return opdef.float_kernel(operands[0]._data)
    kernel = EAGER_KERNELS.get(opdef, opdef.kernel)
    return kernel(*[t._data for t in operands], **attrs)


def run_float_op(opdef: OpDef, kernel, operands: list) -> Tensor:
    """run_op for the fast paths (the operators', tensor_methods.py, and bind's): a unary
    or binary differentiable elementwise op without attributes on tensors none of which is
    a narrow float, `kernel` the op's own without the narrow-float wrapper (a third of the
    Python a tiny tensor's op costs). A kernel that fails is run again by run_op, which
    explains the failure."""
    try:  # (one or two operands: no list of arrays to build)
        if len(operands) == 2:
            raw = kernel(operands[0]._data, operands[1]._data)
        else:
            raw = kernel(operands[0]._data)
    except Exception:
        return run_op(opdef, operands, {})[0]
    result = wrap(raw if type(raw) is np.ndarray else _asarray(raw))
    if _MODE.enabled and _any_requires_grad(operands):
        record_one(opdef, operands, result)
    return result


def _any_requires_grad(operands: list) -> bool:
    """Whether an operand requires grad, each view whose base changed in place brought up
    to date first (its grad_fn, and whether it requires grad, follow the base's history)."""
    wanted = False
    for t in operands:
        if t._base is not None and t._version[0] != t._view_seen:
            sync_view(t)
        if t._requires_grad:
            wanted = True
    return wanted


def record(opdef: OpDef, inputs: list, attrs: dict, results: list) -> None:
    """Put a node for this op on the tape; float results get it as their grad_fn (integer
    and boolean results never carry gradients)."""
    node = None
    for index, r in enumerate(results):
        if is_float_array(r._data):
            if node is None:
                node = _new_node(opdef, attrs, inputs, results)
            r._grad_fn = node
            r._output_nr = index
            r._requires_grad = True


def record_one(opdef: OpDef, inputs: list, result: Tensor) -> None:
    """record, for one result of an op without attributes (the operators' fast path)."""
    data = result._data
    if data.dtype.kind == "f" or data.dtype in NARROW_NP:  # (is_float_array, inlined)
        result._grad_fn = _new_node(opdef, {}, inputs, [result])
        result._requires_grad = True


def _new_node(opdef: OpDef, attrs: dict, inputs: list, results: list):
    cls = _NODE_CLASSES.get(opdef)
    if cls is None:
        cls = _NODE_CLASSES[opdef] = node_class(opdef.name)
    node = cls(opdef, attrs, inputs, results)
    if ANOMALY[0]:
        node.location = user_location()
    return node


_NODE_CLASSES: dict = {}  # OpDef -> its grad_fn class (node_class, without the name's hash)


def _kernel_error(opdef: OpDef, operands: list, attrs: dict, error: Exception) -> GraphjitError:
    """The op's shape/dtype rule usually explains a kernel failure better than NumPy does."""
    location = user_location()
    if not all(isinstance(t, Tensor) for t in operands):
        kinds = ", ".join(type(t).__name__ for t in operands)
        if any(isinstance(t, Value) for t in operands):
            return GraphjitError(
                f"op '{opdef.name}' mixes eager and graph tensors ({kinds}); turn the eager "
                "ones into graph constants with gj.constant(t.numpy())",
                location=location,
            )
        return GraphjitError(
            f"op '{opdef.name}' got operands that are not tensors ({kinds})", location=location
        )
    if opdef.kernel is None:
        return GraphjitError(
            f"op '{opdef.name}' has no kernel and cannot run eagerly", location=location
        )
    try:
        opdef.infer_types(operands, attrs, loc=location)
    except GraphjitError as explained:
        return explained
    except Exception:  # the rule itself choked: report the kernel's error
        pass
    kind = DTypeError if isinstance(error, TypeError) else ShapeError
    return kind(f"{opdef.name}: {error}", location=location)


# Python numbers in ops on tensors (`x * 0.5`, a VJP rule's `1 - y * y`), as constant
# tensors by (type, value, dtype). They are never handed to the user, so sharing them
# between ops is safe; nan keys never match, so the cache is cleared when it grows. A float
# zero is not cached: -0.0 == 0.0, and the sign is part of the value.
_CONSTANTS: dict = {}


def scalar_constant(value, dtype: np.dtype) -> Tensor:
    """The constant tensor of Python number `value` as NumPy `dtype`, made as the handler's
    lift makes it (integers the dtype cannot hold are refused)."""
    key = (type(value), value, dtype)
    constant = _CONSTANTS.get(key)
    if constant is None:
        array = constant_array(value, DTYPE_OF[dtype])
        array.flags.writeable = False  # (shared: nothing may write it through a view)
        constant = wrap(array)
        if value or type(value) is not float:
            if len(_CONSTANTS) > 512:
                _CONSTANTS.clear()
            _CONSTANTS[key] = constant
    return constant


class EagerHandler(Handler):
    def bind(self, opdef: OpDef, operands, attrs: dict):
        """Handler.bind; a differentiable elementwise op of one or two operands, none a
        narrow float, and no attributes (a VJP rule's `P.mul(g, y)`) goes straight to its
        kernel. (Not a NONDIFF op: run_float_op records any float result.)"""
        if (
            opdef.elementwise
            and not attrs
            and not opdef.attr_names
            and not STALE
            and opdef.vjp != NONDIFF
        ):
            if len(operands) == 2:
                x, y = operands  # (x is a Tensor: this handler is x's)
                if (
                    type(y) is Tensor
                    and x._data.dtype not in NARROW_NP
                    and y._data.dtype not in NARROW_NP
                ):
                    return run_float_op(opdef, opdef.float_kernel, [x, y])
            elif len(operands) == 1 and operands[0]._data.dtype not in NARROW_NP:
                return run_float_op(opdef, opdef.float_kernel, [operands[0]])
        return Handler.bind(self, opdef, operands, attrs)

    def apply(self, opdef: OpDef, operands: list, attrs: dict) -> list:
        if STALE:  # (only while a VJP rule runs with a saved tensor changed in place)
            check_stale(opdef, operands)
        view = VIEW_KERNELS.get(opdef.name)
        if view is not None:
            results = run_view(opdef, operands, attrs, view)
            if results is not None:
                return results
        return run_op(opdef, operands, attrs)

    def lift(self, value, dtype) -> Tensor:
        if type(value) in (int, float):  # (nobody else holds a Python number: shared)
            return scalar_constant(value, dtype.np)
        # A copy: a tape node may save this constant, and the user may change their array.
        return wrap(constant_array(value, dtype))


HANDLER = EagerHandler()
