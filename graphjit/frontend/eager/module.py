"""`gj.nn.Module`, `Parameter` and the containers (Sequential, ModuleList, ModuleDict), with
PyTorch's registration rules: parameters, buffers and submodules assigned as attributes are
found by `parameters()`, `buffers()`, `state_dict()` and `train()`/`eval()`."""

from __future__ import annotations

import itertools
import weakref
from collections import OrderedDict, namedtuple
from collections.abc import Iterable, Iterator, Mapping
from contextlib import contextmanager

import numpy as np

from graphjit.errors import GraphjitError, ShapeError
from graphjit.frontend.convert import building_graph
from graphjit.frontend.eager import nn_utils as utils
from graphjit.frontend.eager.tensor import Tensor, bump_version, init_tensor, to_array
from graphjit.frontend.graph import Variable, get_default_graph

_REGISTRIES = ("_parameters", "_buffers", "_modules")

IncompatibleKeys = namedtuple("IncompatibleKeys", ["missing_keys", "unexpected_keys"])

# graph -> {id(tensor): (tensor, the Variable standing for it in that graph)}
_GRAPH_VARIABLES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


class Parameter(Tensor):
    """A tensor that a Module registers as a parameter; requires grad by default. Made from a
    tensor it shares that tensor's array, as in PyTorch."""

    __slots__ = ()

    def __init__(self, data=None, requires_grad: bool = True):
        array = (
            data._data
            if isinstance(data, Tensor)
            else to_array(np.zeros(0) if data is None else data)
        )
        init_tensor(self, array)
        if requires_grad:
            self.requires_grad_(True)

    def __repr__(self) -> str:
        return "Parameter containing:\n" + super().__repr__()


class Module:
    """Base class: parameters, buffers and submodules assigned as attributes are registered;
    `__call__` runs `forward`."""

    def __init__(self):
        for registry in _REGISTRIES:
            object.__setattr__(self, registry, {})
        object.__setattr__(self, "_non_persistent_buffers", set())
        object.__setattr__(self, "training", True)

    # ---- registration --------------------------------------------------------------------

    def __setattr__(self, name: str, value) -> None:
        if "_parameters" not in self.__dict__:
            raise GraphjitError(
                f"{type(self).__name__}: call super().__init__() before assigning attributes"
            )
        if name in self._buffers and (value is None or isinstance(value, Tensor)):
            if isinstance(value, Parameter):
                raise GraphjitError(f"cannot assign a Parameter to buffer '{name}'")
            self._buffers[name] = value  # (a buffer stays a buffer when reassigned, as torch)
            return
        if isinstance(value, Parameter):
            into = "_parameters"
        elif isinstance(value, Module):
            into = "_modules"
        else:
            into = None
        for registry in _REGISTRIES:
            if registry != into:  # (a reassigned member keeps its place in order, as torch)
                self.__dict__[registry].pop(name, None)
        if into is None:
            object.__setattr__(self, name, value)
            return
        self.__dict__[into][name] = value
        self.__dict__.pop(name, None)

    def __getattr__(self, name: str):
        # Only called when normal lookup fails: parameters, buffers and submodules live in
        # their dicts.
        for registry in _REGISTRIES:
            entries = self.__dict__.get(registry, {})
            if name in entries:
                return entries[name]
        raise AttributeError(f"'{type(self).__name__}' object has no attribute '{name}'")

    def __delattr__(self, name: str) -> None:
        for registry in _REGISTRIES:
            if name in self.__dict__[registry]:
                del self.__dict__[registry][name]
                self._non_persistent_buffers.discard(name)
                return
        object.__delattr__(self, name)

    def register_parameter(self, name: str, param: Parameter | None) -> None:
        if param is not None and not isinstance(param, Parameter):
            raise GraphjitError(f"register_parameter: '{name}' must be a Parameter or None")
        self.__dict__.pop(name, None)
        self._parameters[name] = param

    def register_buffer(self, name: str, tensor: Tensor | None, persistent: bool = True) -> None:
        """State that is not trained (batch norm's running statistics): moved by
        `state_dict()` unless `persistent=False`, never returned by `parameters()`."""
        if tensor is not None and not isinstance(tensor, Tensor):
            raise GraphjitError(f"register_buffer: '{name}' must be a gj.Tensor or None")
        if name in self._parameters or name in self._modules:
            raise GraphjitError(f"register_buffer: attribute '{name}' already exists")
        self.__dict__.pop(name, None)
        self._buffers[name] = tensor
        if persistent:
            self._non_persistent_buffers.discard(name)
        else:
            self._non_persistent_buffers.add(name)

    def add_module(self, name: str, module: Module | None) -> None:
        if module is not None and not isinstance(module, Module):
            raise GraphjitError(f"add_module: '{name}' must be a Module or None")
        self.__dict__.pop(name, None)
        self._modules[name] = module

    register_module = add_module

    # ---- traversal -----------------------------------------------------------------------

    def named_modules(self, prefix: str = "") -> Iterator[tuple[str, Module]]:
        yield prefix, self
        for name, child in self._modules.items():
            if child is not None:
                yield from child.named_modules(f"{prefix}.{name}" if prefix else name)

    def modules(self) -> Iterator[Module]:
        return (m for _, m in self.named_modules())

    def named_children(self) -> Iterator[tuple[str, Module]]:
        return ((n, m) for n, m in self._modules.items() if m is not None)

    def children(self) -> Iterator[Module]:
        return (m for _, m in self.named_children())

    def _named_members(self, registry: str, prefix: str, recurse: bool):
        """Each member once (a shared one under its first name), submodules included."""
        seen = set()
        modules = self.named_modules(prefix) if recurse else [(prefix, self)]
        for module_name, module in modules:
            for name, member in module.__dict__[registry].items():
                if member is not None and id(member) not in seen:
                    seen.add(id(member))
                    yield (f"{module_name}.{name}" if module_name else name), member

    def named_parameters(self, prefix: str = "", recurse: bool = True):
        return self._named_members("_parameters", prefix, recurse)

    def parameters(self, recurse: bool = True) -> Iterator[Parameter]:
        return (p for _, p in self.named_parameters(recurse=recurse))

    def named_buffers(self, prefix: str = "", recurse: bool = True):
        return self._named_members("_buffers", prefix, recurse)

    def buffers(self, recurse: bool = True) -> Iterator[Tensor]:
        return (b for _, b in self.named_buffers(recurse=recurse))

    # ---- modes and gradients -------------------------------------------------------------

    def zero_grad(self, set_to_none: bool = True) -> None:
        utils.zero_grads(self.parameters(), set_to_none)

    def train(self, mode: bool = True) -> Module:
        for m in self.modules():
            object.__setattr__(m, "training", bool(mode))
        return self

    def eval(self) -> Module:
        return self.train(False)

    def requires_grad_(self, requires_grad: bool = True) -> Module:
        for p in self.parameters():
            p.requires_grad_(requires_grad)
        return self

    def apply(self, fn) -> Module:
        """fn(module) on every submodule, children first, then on self (PyTorch's order)."""
        for child in self.children():
            child.apply(fn)
        fn(self)
        return self

    # ---- state ---------------------------------------------------------------------------

    def _state_entries(self) -> Iterator[tuple[str, Tensor]]:
        """(name, tensor) in PyTorch's state_dict order: each module's parameters, then its
        persistent buffers, then its children's."""
        for module_name, module in self.named_modules():
            members = [*module._parameters.items()]
            members += [
                (n, b) for n, b in module._buffers.items()
                if n not in module._non_persistent_buffers
            ]  # fmt: skip
            for name, t in members:
                if t is not None:
                    yield (f"{module_name}.{name}" if module_name else name), t

    def state_dict(self) -> OrderedDict:
        """Parameters and persistent buffers by dotted name, as NumPy copies (arrays are
        what gj.Variable, np.savez and torch.tensor take)."""
        return OrderedDict((name, t._data.copy()) for name, t in self._state_entries())

    def load_state_dict(self, state_dict: Mapping, strict: bool = True) -> IncompatibleKeys:
        """Copy arrays (or gj/torch tensors) into the parameters and buffers in place; with
        `strict`, missing or unexpected keys are an error. Shapes must match."""
        own = dict(self._state_entries())
        missing = [k for k in own if k not in state_dict]
        unexpected = [k for k in state_dict if k not in own]
        if strict and (missing or unexpected):
            raise GraphjitError(
                f"load_state_dict: missing keys {missing}, unexpected keys {unexpected}"
            )
        for name, t in own.items():
            if name in state_dict:
                _copy_into(t, state_dict[name], name)
        return IncompatibleKeys(missing, unexpected)

    # ---- calling and printing ------------------------------------------------------------

    def forward(self, *args, **kwargs):
        raise NotImplementedError(f"{type(self).__name__} must define forward()")

    def __call__(self, *args, **kwargs):
        if building_graph() and self._holds_eager_state():
            with _state_as_graph_variables(self):
                return self.forward(*args, **kwargs)
        return self.forward(*args, **kwargs)

    def _holds_eager_state(self) -> bool:
        """True unless gj.function already put graph Variables in the place of the
        parameters and buffers (a module may have buffers alone: BatchNorm without affine)."""
        return any(
            isinstance(t, Tensor) for t in itertools.chain(self.parameters(), self.buffers())
        )

    def graph_variables(self, graph=None) -> dict:
        """{state_dict name: gj.Variable} for the parameters and buffers that calling the
        module while building `graph` (default: the default graph) turned into Variables;
        `sess.run` them (or read `sess.variables[v.name]`) to get their trained values."""
        made = _GRAPH_VARIABLES.get(graph if graph is not None else get_default_graph(), {})
        return {name: made[id(t)][1] for name, t in self._state_entries() if id(t) in made}

    def extra_repr(self) -> str:
        return ""

    def __repr__(self) -> str:
        lines = [
            f"  ({name}): " + repr(m).replace("\n", "\n  ") for name, m in self.named_children()
        ]
        if not lines:
            return f"{type(self).__name__}({self.extra_repr()})"
        return f"{type(self).__name__}(\n" + "\n".join(lines) + "\n)"


@contextmanager
def _state_as_graph_variables(module: Module):
    """While a graph is built (TF1 style), the module's parameters and buffers are graph
    Variables holding their current values: one per tensor and graph, made at the first
    call, so a model called twice shares its weights and gj.train optimizers find them."""
    graph = get_default_graph()
    made = _GRAPH_VARIABLES.setdefault(graph, {})
    replaced = []
    for prefix, m in module.named_modules():
        for registry in ("_parameters", "_buffers"):
            entries = m.__dict__[registry]
            for name, t in entries.items():
                if not isinstance(t, Tensor):
                    continue
                if id(t) not in made:
                    trainable = registry == "_parameters" and t.requires_grad
                    full_name = f"{prefix}.{name}" if prefix else name
                    made[id(t)] = (t, Variable(t._data.copy(), name=full_name,
                                               trainable=trainable))  # fmt: skip
                replaced.append((entries, name, t))
                entries[name] = made[id(t)][1]
    try:
        yield
    finally:
        for entries, name, t in reversed(replaced):
            entries[name] = t


def _copy_into(target: Tensor, value, name: str) -> None:
    """Write `value` into `target`'s array (views of it and optimizers keep seeing it)."""
    source = value._data if isinstance(value, Tensor) else np.asarray(value)
    if tuple(source.shape) != tuple(target.shape):
        raise ShapeError(
            f"load_state_dict: '{name}' has shape {tuple(source.shape)}, "
            f"the module's has {tuple(target.shape)}"
        )
    target._data[...] = source.astype(target._data.dtype, copy=False)
    bump_version(target)


# ---- containers ----------------------------------------------------------------------------


class Sequential(Module):
    """Modules applied in order; they are registered as "0", "1", ... (or by the names of an
    OrderedDict)."""

    def __init__(self, *modules):
        super().__init__()
        if len(modules) == 1 and isinstance(modules[0], OrderedDict):
            for name, m in modules[0].items():
                self.add_module(name, m)
        else:
            for i, m in enumerate(modules):
                self.add_module(str(i), m)

    def forward(self, x):
        for m in self.children():
            x = m(x)
        return x

    def __getitem__(self, index):
        modules = list(self._modules.values())
        return Sequential(*modules[index]) if isinstance(index, slice) else modules[index]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> Sequential:
        self.add_module(str(len(self)), module)
        return self


class ModuleList(Module):
    """A list of modules, registered as "0", "1", ... so their parameters are found."""

    def __init__(self, modules: Iterable[Module] | None = None):
        super().__init__()
        if modules is not None:
            self.extend(modules)

    def _index(self, index: int) -> str:
        if not -len(self) <= index < len(self):
            raise IndexError(f"index {index} is out of range for a ModuleList of {len(self)}")
        return str(index % len(self))

    def __getitem__(self, index):
        if isinstance(index, slice):
            return ModuleList(list(self._modules.values())[index])
        return self._modules[self._index(index)]

    def __setitem__(self, index: int, module: Module) -> None:
        self.add_module(self._index(index), module)

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[Module]:
        return iter(self._modules.values())

    def append(self, module: Module) -> ModuleList:
        self.add_module(str(len(self)), module)
        return self

    def extend(self, modules: Iterable[Module]) -> ModuleList:
        for m in modules:
            self.append(m)
        return self

    def insert(self, index: int, module: Module) -> None:
        modules = list(self._modules.values())
        modules.insert(index, module)
        self._modules.clear()
        self.extend(modules)


class ModuleDict(Module):
    """A dict of modules by name, in insertion order."""

    def __init__(self, modules: Mapping | Iterable | None = None):
        super().__init__()
        if modules is not None:
            self.update(modules)

    def __getitem__(self, key: str) -> Module:
        return self._modules[key]

    def __setitem__(self, key: str, module: Module) -> None:
        self.add_module(key, module)

    def __delitem__(self, key: str) -> None:
        del self._modules[key]

    def __len__(self) -> int:
        return len(self._modules)

    def __iter__(self) -> Iterator[str]:
        return iter(self._modules)

    def __contains__(self, key: str) -> bool:
        return key in self._modules

    def keys(self):
        return self._modules.keys()

    def values(self):
        return self._modules.values()

    def items(self):
        return self._modules.items()

    def pop(self, key: str) -> Module:
        return self._modules.pop(key)

    def clear(self) -> None:
        self._modules.clear()

    def update(self, modules: Mapping | Iterable) -> None:
        pairs = modules.items() if isinstance(modules, Mapping) else modules
        for key, module in pairs:
            self.add_module(key, module)
