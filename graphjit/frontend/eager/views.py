"""Views: eager shape ops that share their operand's storage, as PyTorch's do.

`reshape` (when no copy is needed), `transpose`, `slice`, `squeeze`, `expand_dims` and
`broadcast_to` (read-only, as PyTorch's expand) applied to a `gj.Tensor` give a tensor over a
NumPy view of the operand's array (the registry's kernels copy: they serve the static graph
and the reference interpreter). A view shares its base's version cell, so an in-place change
through any of them bumps the version every other one sees, and tape nodes that saved one of
them notice. The op is recorded on the tape as usual (SliceBackward, ...).

In-place changes through a view (tensor_inplace.py) write the base's storage and rebase the
autograd history as PyTorch's CopySlices does: the base gets a `CopySlices` node (the old
base with the view's region replaced by the in-place result), and the view (and, lazily,
every other view of that base: `sync_view`) is re-derived from the base's new history.
"""

from __future__ import annotations

import numpy as np

from graphjit.errors import GradientError, ShapeError
from graphjit.frontend.eager import grad_mode
from graphjit.frontend.eager.node import STALE, Node, next_sequence_nr
from graphjit.frontend.eager.tensor import SYNC_VIEW, Tensor, wrap
from graphjit.ir.core import user_location
from graphjit.ir.ops import bind
from graphjit.ir.ops.shape import expand_dims_view


def _reshape(x: np.ndarray, shape) -> np.ndarray | None:
    if any(d < -1 for d in shape) or list(shape).count(-1) > 1:
        return None  # NumPy takes any negative as -1: the kernel's rule refuses it
    try:
        return np.reshape(x, shape, copy=False)
    except ValueError:  # a copy is needed (or the shape is wrong): not a view
        return None


def _slice(x: np.ndarray, spec) -> np.ndarray:
    return x[tuple([slice(*t) for t in spec])]


def _squeeze(x: np.ndarray, axes) -> np.ndarray | None:
    """np.squeeze(x, axes) as a reshape (NumPy's function costs a microsecond of Python; a
    reshape that drops axes of size 1 never copies). Any axis out of range, named twice or
    not of size 1: None (the kernel explains)."""
    shape, rank = x.shape, x.ndim
    dropped = set()
    for axis in axes:
        if type(axis) is bool or not isinstance(axis, (int, np.integer)):
            return None
        if not -rank <= axis < rank:
            return None
        if shape[axis] != 1:
            return None
        dropped.add(int(axis) % rank)
    if len(dropped) != len(axes):  # (an axis named twice: NumPy refuses it)
        return None
    return x.reshape([d for i, d in enumerate(shape) if i not in dropped])


# op name -> f(array, **attrs) giving a NumPy view of the array (None: no view possible)
VIEW_KERNELS = {
    "reshape": _reshape,
    "transpose": lambda x, perm: np.transpose(x, perm),
    "slice": _slice,
    "squeeze": _squeeze,
    "expand_dims": expand_dims_view,
    "broadcast_to": lambda x, shape: np.broadcast_to(x, shape),
}


def run_view(opdef, operands: list, attrs: dict, kernel) -> list | None:
    """Apply a view op to an eager tensor; None where it cannot be a view (the caller then
    runs the copying kernel, which also diagnoses bad arguments)."""
    x = operands[0]
    if len(operands) != 1 or type(x) is not Tensor and not isinstance(x, Tensor):
        return None
    try:
        array = kernel(x._data, **attrs)
    except Exception:
        return None
    if array is None:
        return None
    out = wrap(array)
    base = x._base
    out._base = x if base is None else base
    out._view_chain = (
        ((opdef.name, attrs),) if base is None else (*x._view_chain, (opdef.name, attrs))
    )
    out._version = x._version
    out._view_seen = x._version[0]
    if grad_mode._MODE.enabled:
        if base is not None and x._version[0] != x._view_seen:
            sync_view(x)
        if x._requires_grad:
            from graphjit.frontend.eager.dispatch import record

            record(opdef, operands, attrs, [out])
    return [out]


def basic_index_view(x: Tensor, key: tuple, spec: list, drop: list) -> Tensor:
    """x[key] for a key of ints and slices (`spec`, `drop`: shape_ops.basic_index's) of a
    base tensor nothing will differentiate (`xs[t]` of a batch): the view the slice and
    squeeze views make, in one NumPy indexing (their two binds took 4.9 us of `xs[t]`), with
    the chain they would record, so in-place changes through it rebase as theirs do."""
    chain = []
    if any(t != (None, None, None) for t in spec):
        chain.append(("slice", {"spec": tuple(spec)}))
    if drop:
        chain.append(("squeeze", {"axes": tuple(drop)}))
    if not chain:
        return x
    out = wrap(x._data[(*key, Ellipsis)])  # (the Ellipsis: a 0-d view, never a NumPy scalar)
    out._base, out._view_chain = x, tuple(chain)
    out._version, out._view_seen = x._version, x._version[0]
    return out


def apply_chain(t, chain):
    """The view ops of `chain` applied to t (a Tensor: recorded; an array: NumPy views)."""
    for name, attrs in chain:
        if isinstance(t, np.ndarray):
            t = VIEW_KERNELS[name](t, **attrs)
        else:
            t = bind(name, t, **attrs)
    return t


def sync_view(t: Tensor) -> None:
    """Re-derive a view's grad_fn from its base's current history (its base changed in
    place since the view's grad_fn was set). A view of a base outside autograd keeps its own
    state (it may be a leaf the user made require grad)."""
    base = t._base
    t._view_seen = t._version[0]
    if not base._requires_grad:
        return
    mode = grad_mode._MODE
    previous, mode.enabled = mode.enabled, True
    saved_stale = dict(STALE)
    STALE.clear()  # (a VJP rule may ask a saved view whether it requires grad)
    try:
        out = apply_chain(base, t._view_chain)
    finally:
        mode.enabled = previous
        STALE.update(saved_stale)
    t._grad_fn, t._output_nr, t._requires_grad = out._grad_fn, out._output_nr, True


SYNC_VIEW[0] = sync_view


# ---- in-place changes through a view ------------------------------------------------------


def check_writable(t: Tensor) -> None:
    if not t._data.flags.writeable:
        raise ShapeError(
            "unsupported operation: more than one element of the written-to tensor refers to "
            "a single memory location (it is an expand/broadcast_to view); clone() it before "
            "changing it in place",
            location=user_location(),
        )


def check_view_of_leaf(t: Tensor) -> None:
    """In grad mode, a view of a leaf that requires grad cannot change in place."""
    base = t._base
    if base is not None and base._requires_grad and base._grad_fn is None:
        raise GradientError(
            "a view of a leaf Variable that requires grad is being used in an in-place "
            "operation; do it under `with gj.no_grad():` or on a clone()",
            location=user_location(),
        )


def region_mask(base: Tensor, chain) -> np.ndarray:
    """Booleans shaped like the base, True where the view made by `chain` reads it."""
    index = np.arange(base._data.size).reshape(base.shape)
    for name, attrs in chain:  # logical (C-order) indices: the layout does not matter
        if name == "reshape":
            index = np.reshape(index, attrs["shape"])
        else:
            index = VIEW_KERNELS[name](index, **attrs)
    mask = np.zeros(base._data.size, dtype=np.bool_)
    mask[index.ravel()] = True
    return mask.reshape(base.shape)


class CopySlices(Node):
    """The base after an in-place op on one of its views: the old base with the view's
    region replaced by the op's result. Cotangents: the base's outside the region to the
    old base; the region, taken by the same view ops, to the result."""

    __slots__ = ("mask", "chain")

    def __init__(self, base_edge, result_edge, mask: np.ndarray, chain: tuple):
        self.set_edges((base_edge, result_edge))
        self.num_outputs, self.retained = 1, None
        self.sequence_nr = next_sequence_nr()
        self.mask, self.chain = mask, chain

    def apply(self, cts: list) -> list:
        ct = cts[0]
        if self.mask is None:
            from graphjit.frontend.eager.node import freed_error

            raise freed_error(self.name)
        outside = None
        if self.edge_targets[0] is not None:
            outside = bind("select", wrap(self.mask), 0, ct)
        inside = apply_chain(ct, self.chain) if self.edge_targets[1] is not None else None
        return [outside, inside]

    def release(self) -> None:
        self.mask = None


def _edge(t: Tensor):
    if not t._requires_grad:
        return None
    return (t, -1) if t._grad_fn is None else (t._grad_fn, t._output_nr)


def rebase(view: Tensor, result: Tensor) -> None:
    """After `view` was overwritten in place with `result` (recorded), give its base the
    CopySlices history and re-derive the view from it."""
    base, chain = view._base, view._view_chain
    node = CopySlices(_edge(base), _edge(result), region_mask(base, chain), chain)
    base._grad_fn, base._output_nr, base._requires_grad = node, 0, True
    sync_view(view)
