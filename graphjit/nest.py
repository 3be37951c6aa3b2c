"""Nested structures of tensors (lists, tuples, namedtuples, dicts, and nest nodes such as
TensorArray): flatten and rebuild.

Dicts flatten in sorted key order, as TensorFlow's `tf.nest` does, so two dicts with the
same keys have the same spec whatever order they were built in; rebuilt, a dict has the
key order of the dict its spec came from (a fetched dict comes back as it was written). A class becomes a nest node
by defining `_nest_flatten(self) -> (leaves, meta)` and a classmethod
`_nest_unflatten(meta, leaves)`; two nodes have the same spec when their `meta`s are equal.
"""

from __future__ import annotations


class DictKeys(tuple):
    """A dict's keys in flattening (sorted) order, compared as such; `written` remembers
    the order the dict had, for rebuilding it."""

    written: tuple

    def __new__(cls, d: dict):
        try:
            keys = super().__new__(cls, sorted(d))
        except TypeError:  # keys of mixed types: keep the dict's own order
            keys = super().__new__(cls, d)
        keys.written = tuple(d)
        return keys


def _dict_keys(d: dict) -> DictKeys:
    return DictKeys(d)


def flatten(structure) -> tuple[list, object]:
    """The leaves of `structure` in order, and a spec that `unflatten` rebuilds it from."""
    if isinstance(structure, dict):
        keys = _dict_keys(structure)
        leaves, spec = flatten([structure[k] for k in keys])
        return leaves, (dict, keys, spec)
    if isinstance(structure, (tuple, list)):
        leaves, specs = [], []
        for item in structure:
            sub_leaves, sub_spec = flatten(item)
            leaves += sub_leaves
            specs.append((len(sub_leaves), sub_spec))
        return leaves, (type(structure), None, specs)
    if hasattr(type(structure), "_nest_unflatten"):
        leaves, meta = structure._nest_flatten()
        return list(leaves), (type(structure), meta, len(leaves))
    return [structure], None


def unflatten(spec, leaves):
    if spec is None:
        return leaves[0]
    kind, keys, specs = spec
    if kind is dict:
        values = dict(zip(keys, unflatten(specs, leaves)))
        return {k: values[k] for k in getattr(keys, "written", keys)}
    if not issubclass(kind, (tuple, list)):  # a nest node
        return kind._nest_unflatten(keys, list(leaves))
    out, i = [], 0
    for n, sub in specs:
        out.append(unflatten(sub, leaves[i : i + n]))
        i += n
    if hasattr(kind, "_fields"):  # namedtuple
        return kind(*out)
    return kind(out)


def flatten_up_to(spec, structure) -> list:
    """`structure` flattened to the depth of `spec` (a spec of another structure): one item
    per leaf of spec, whatever that item is (TensorFlow's shape_invariants pair a list of
    dimensions with each tensor). A nest node takes one item, repeated for its leaves."""
    if spec is None:
        return [structure]
    kind, keys, specs = spec
    if kind is dict:
        return flatten_up_to(specs, [structure[k] for k in keys])
    if not issubclass(kind, (tuple, list)):
        return [structure] * specs
    if not isinstance(structure, (tuple, list)) or len(structure) != len(specs):
        raise ValueError(f"{structure!r} does not have the structure of {describe(spec)}")
    out = []
    for (_, sub), item in zip(specs, structure):
        out += flatten_up_to(sub, item)
    return out


def leaf_count(spec) -> int:
    if spec is None:
        return 1
    kind, keys, specs = spec
    if kind is dict:
        return leaf_count(specs)
    if not issubclass(kind, (tuple, list)):
        return specs
    return sum(n for n, _ in specs)


def describe(spec) -> str:
    if spec is None:
        return "a tensor"
    kind, keys, specs = spec
    if kind is dict:
        return "a dict with keys " + ", ".join(repr(k) for k in keys)
    if not issubclass(kind, (tuple, list)):
        return f"a {kind.__name__}"
    inner = ", ".join(describe(sub) for _, sub in specs)
    return f"a {kind.__name__} of {len(specs)} ({inner})"
