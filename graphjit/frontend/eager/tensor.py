"""`gj.Tensor`: a NumPy array plus what autograd needs (requires_grad, grad, grad_fn, version).

Ops on tensors go through the op registry (`graphjit.ir.ops.bind`) and the eager handler in
dispatch.py; the operators and op-mirroring methods are installed on the class by
tensor_methods.py. Semantics follow PyTorch.

A view (`x[1:]`, `x.T`, `x.view(...)`, see views.py) holds a NumPy view of its base's array,
shares its base's version cell, and knows its base (`_base`, never itself a view) and the
view ops that lead there (`_view_chain`). Its grad_fn is brought up to date lazily: when the
shared version has moved since `_view_seen`, the base may have a new history.
"""

from __future__ import annotations

import weakref

import numpy as np

from graphjit.errors import DTypeError, GradientError, ShapeError
from graphjit.frontend.eager.formatting import format_tensor
from graphjit.ir.types import BY_NP, DType, TensorType, array_of, as_dtype, is_float_array

DTYPE_OF = BY_NP  # (the table itself: bfloat16 joins it when ml_dtypes is imported)
# Python data follows PyTorch's defaults (floats -> float32, ints -> int64); arrays keep theirs.
_PYTHON_DEFAULTS = {"f": np.float32, "i": np.int64, "u": np.int64, "b": np.bool_}


def to_array(data, dtype=None) -> np.ndarray:
    """A fresh array from tensors, arrays, Python numbers or nested lists of them."""
    if isinstance(data, Tensor):
        array = data._data.copy()
    else:
        array = np.array(data)
        default = _PYTHON_DEFAULTS.get(array.dtype.kind)
        if dtype is None and default is not None and not isinstance(data, (np.ndarray, np.generic)):
            dtype = default
        if dtype is None and array.dtype.kind == "O":  # Python ints beyond int64, say
            dtype = np.int64
    if dtype is not None:  # (refusing integers the dtype cannot hold, not wrapping them)
        array = array_of(array, as_dtype(dtype), copy=False)
    as_dtype(array.dtype)  # raises DTypeError naming the supported dtypes
    return array


class Tensor:
    """An eager tensor. `Tensor(data, dtype=None, requires_grad=False)` is `gj.tensor(...)`."""

    __slots__ = ("_data", "_requires_grad", "_grad", "_grad_fn", "_output_nr", "_version",
                 "_base", "_view_chain", "_view_seen", "_hooks", "__weakref__")  # fmt: skip

    def __init__(self, data, dtype=None, requires_grad: bool = False):
        init_tensor(self, to_array(data, dtype))
        if requires_grad:
            self.requires_grad_(True)

    # ---- the array and its description ----------------------------------------------------

    @property
    def data(self) -> Tensor:
        """The same array as a tensor outside autograd (changes through it are not tracked)."""
        return wrap(self._data)

    @data.setter
    def data(self, value) -> None:
        self._data = value._data if isinstance(value, Tensor) else np.asarray(value)
        self._base = self._view_chain = None  # (its own array now, as in PyTorch)
        MUTATIONS[0] += 1  # (tapes recorded before look again: compiled_backward.py)

    @property
    def shape(self) -> tuple:
        return self._data.shape

    @property
    def dtype(self) -> DType:
        try:
            return DTYPE_OF[self._data.dtype]
        except KeyError:  # (bfloat16 before anything asked for it, or unsupported)
            return as_dtype(self._data.dtype)

    @property
    def ndim(self) -> int:
        return self._data.ndim

    @property
    def type(self) -> TensorType:
        """The IR type, so that the registry's shape rules can describe a failed op."""
        return TensorType(self.shape, self.dtype)

    def size(self, dim: int | None = None):
        return self.shape if dim is None else self.shape[dim]

    def dim(self) -> int:
        return self.ndim

    def numel(self) -> int:
        return int(self._data.size)

    def numpy(self) -> np.ndarray:
        return self._data

    def item(self):
        if self._data.size != 1:
            raise ShapeError(f"item() needs a one-element tensor, got shape {self.shape}")
        return self._data.item()

    def tolist(self):
        return self._data.tolist()

    def __array__(self, dtype=None, copy=None):
        array = self._data if dtype is None else self._data.astype(dtype, copy=False)
        return array.copy() if copy and array is self._data else array

    # ---- autograd state --------------------------------------------------------------------

    @property
    def requires_grad(self) -> bool:
        if self._base is not None and self._version[0] != self._view_seen:
            SYNC_VIEW[0](self)
        return self._requires_grad

    @requires_grad.setter
    def requires_grad(self, flag: bool) -> None:
        self.requires_grad_(flag)

    def requires_grad_(self, flag: bool = True) -> Tensor:
        if self.grad_fn is not None:
            if not flag:
                raise GradientError(
                    "requires_grad can only be changed on leaf tensors; use detach() instead"
                )
            return self
        if flag and not is_float_array(self._data):
            raise GradientError(
                f"only floating-point tensors can require gradients, got {self.dtype.name}"
            )
        self._requires_grad = bool(flag)
        return self

    @property
    def grad_fn(self):
        """The tape node that made this tensor (None for leaves)."""
        if self._base is not None and self._version[0] != self._view_seen:
            SYNC_VIEW[0](self)
        return self._grad_fn

    @grad_fn.setter
    def grad_fn(self, node) -> None:
        self._grad_fn = node

    @property
    def is_leaf(self) -> bool:
        return self.grad_fn is None

    def _is_view(self) -> bool:
        """Whether this tensor shares its storage with a base as a view (PyTorch's name)."""
        return self._base is not None

    @property
    def grad(self) -> Tensor | None:
        return self._grad

    @grad.setter
    def grad(self, value) -> None:
        if value is not None and not isinstance(value, Tensor):
            value = wrap(to_array(value, self.dtype))
        if value is not None and value.shape != self.shape:
            raise ShapeError(f"assigned grad has shape {value.shape}, tensor has {self.shape}")
        self._grad = value

    def retain_grad(self) -> None:
        """Keep the gradient of a non-leaf tensor in `.grad` during backward."""
        if not self._requires_grad:
            raise GradientError("retain_grad() on a tensor that does not require grad")
        if self.grad_fn is None:
            return  # leaves keep their gradient anyway
        # A weak reference: the node must not keep its output alive (see node.py).
        if self.grad_fn.retained is None:
            self.grad_fn.retained = {}
        self.grad_fn.retained[self._output_nr] = weakref.ref(self)

    def register_hook(self, hook):
        """Call `hook(grad)` with this tensor's gradient whenever backward computes it; a
        tensor it returns replaces the gradient (for `.grad`, for what flows on and for
        autograd.grad). Returns a handle whose `.remove()` unregisters it (PyTorch's
        Tensor.register_hook). A leaf's hook sees its whole gradient, once per backward."""
        from graphjit.frontend.eager.node import add_hook, node_hooks

        if not self.requires_grad:
            raise GradientError("cannot register a hook on a tensor that does not require grad")
        if self.grad_fn is not None:
            return add_hook(node_hooks(self.grad_fn, self._output_nr), hook)
        try:
            table = self._hooks
        except AttributeError:  # (the slot is unset until the first hook)
            table = self._hooks = {}
        return add_hook(table, hook)

    @property
    def retains_grad(self) -> bool:
        retained = self.grad_fn.retained if self.grad_fn is not None else None
        return bool(retained) and retained.get(self._output_nr, lambda: None)() is self

    def detach(self) -> Tensor:
        """The same array and version counter, outside the tape (not a view: in-place
        changes to it are not recorded anywhere, but do bump the shared version)."""
        out = wrap(self._data)
        out._version = self._version
        return out

    def backward(self, gradient=None, retain_graph=None, create_graph: bool = False) -> None:
        from graphjit.frontend.eager.engine import backward

        backward([self], None if gradient is None else [gradient], retain_graph, create_graph)

    # ---- Python protocol -------------------------------------------------------------------

    def __repr__(self) -> str:
        extras = []
        if self.grad_fn is not None:
            extras.append(f"grad_fn=<{self.grad_fn.name}>")
        elif self._requires_grad:
            extras.append("requires_grad=True")
        return format_tensor(self._data, extras)

    __hash__ = object.__hash__  # `==` is elementwise, as in PyTorch; identity hashing

    def _one_element(self, what: str):
        if self._data.size != 1:
            raise ShapeError(
                f"{what} of a tensor with {self._data.size} elements is ambiguous; "
                "use .any(), .all() or index one element"
            )
        return self._data.item()

    def __bool__(self) -> bool:
        return bool(self._one_element("the truth value"))

    def __float__(self) -> float:
        return float(self._one_element("float()"))

    def __int__(self) -> int:
        return int(self._one_element("int()"))

    def __index__(self) -> int:
        if self._data.dtype.kind not in "iu":
            raise DTypeError(f"only integer tensors can be used as an index, got {self.dtype}")
        return int(self._one_element("an index"))

    def __len__(self) -> int:
        if self.ndim == 0:
            raise TypeError("len() of a 0-d tensor")
        return self.shape[0]

    def __iter__(self):
        if self.ndim == 0:
            raise TypeError("iteration over a 0-d tensor")
        return (self[i] for i in range(self.shape[0]))

    def __reduce_ex__(self, protocol):
        # pickle and copy.deepcopy: the array and requires_grad, as a fresh leaf.
        return (_rebuild, (self._data, self._requires_grad, type(self)))


def _rebuild(array, requires_grad, cls):
    out = cls.__new__(cls)
    init_tensor(out, array.copy())
    out._requires_grad = requires_grad
    return out


def init_tensor(t: Tensor, array: np.ndarray) -> None:
    t._data = array
    t._requires_grad = False
    t._grad = None
    t._grad_fn = None
    t._output_nr = 0
    t._version = _zeros(1, _INT64)  # see VERSION CELLS below
    t._base = t._view_chain = None
    t._view_seen = 0


# views.py's `sync_view(t)`: brings a view's grad_fn up to date with its base's history.
SYNC_VIEW: list = [None]


_new = object.__new__

# VERSION CELLS. A tensor's version is `t._version[0]`, in a cell shared with its views and
# detach() aliases and bumped by in-place ops. The cell is a one-element int64 array, not a
# list: tape nodes keep the cells of what they saved, and the cycle collector does not track
# arrays, so a long tape does not make its collections longer (see node.py).
_zeros, _INT64 = np.zeros, np.dtype(np.int64)

# Counts every in-place change to any tensor. A tape node notes the count when recorded; if it
# is unchanged at backward time, none of its saved tensors can have changed, and the
# per-tensor version checks are skipped (in-place ops are rare; backward is hot).
MUTATIONS = [0]


def bump_version(t: Tensor) -> None:
    """Record an in-place change of t: its version cell is shared with its base, every view
    of that base and detach() aliases, so all of them see the change."""
    t._version[0] += 1
    MUTATIONS[0] += 1


def wrap(array: np.ndarray) -> Tensor:
    """A leaf tensor around `array` (no copy): the fast constructor the op handler uses
    (init_tensor inlined: this runs for every op result)."""
    t = _new(Tensor)
    t._data = array
    t._requires_grad = False
    t._grad = None
    t._grad_fn = None
    t._output_nr = 0
    t._version = _zeros(1, _INT64)
    t._base = None
    t._view_chain = None
    t._view_seen = 0
    return t


def wrap_output(array: np.ndarray, version: np.ndarray, node, index: int) -> Tensor:
    """Output `index` of tape node `node`, rebuilt from its saved array and version cell
    (wrap inlined, without making a cell: this runs for every saved tensor in backward)."""
    t = _new(Tensor)
    t._data = array
    t._requires_grad = True
    t._grad = None
    t._grad_fn = node
    t._output_nr = index
    t._version = version
    t._base = None
    t._view_chain = None
    t._view_seen = 0
    return t


def wrap_saved(array: np.ndarray, version: np.ndarray) -> Tensor:
    """A tensor outside autograd rebuilt from a saved array and version cell (inlined as
    wrap_output is)."""
    t = _new(Tensor)
    t._data = array
    t._requires_grad = False
    t._grad = None
    t._grad_fn = None
    t._output_nr = 0
    t._version = version
    t._base = None
    t._view_chain = None
    t._view_seen = 0
    return t
