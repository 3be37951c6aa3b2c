"""Nested structures of tensors (lists, tuples, namedtuples, dicts): flatten and rebuild."""

from __future__ import annotations


def flatten(structure) -> tuple[list, object]:
    """The leaves of `structure` in order, and a spec that `unflatten` rebuilds it from."""
    if isinstance(structure, dict):
        keys = list(structure)
        leaves, spec = flatten([structure[k] for k in keys])
        return leaves, (dict, keys, spec)
    if isinstance(structure, (tuple, list)):
        leaves, specs = [], []
        for item in structure:
            sub_leaves, sub_spec = flatten(item)
            leaves += sub_leaves
            specs.append((len(sub_leaves), sub_spec))
        return leaves, (type(structure), None, specs)
    return [structure], None


def unflatten(spec, leaves):
    if spec is None:
        return leaves[0]
    kind, keys, specs = spec
    if kind is dict:
        return dict(zip(keys, unflatten(specs, leaves)))
    out, i = [], 0
    for n, sub in specs:
        out.append(unflatten(sub, leaves[i : i + n]))
        i += n
    if hasattr(kind, "_fields"):  # namedtuple
        return kind(*out)
    return kind(out)


def describe(spec) -> str:
    if spec is None:
        return "a tensor"
    kind, keys, specs = spec
    return f"a {kind.__name__} of {len(keys) if kind is dict else len(specs)}"
