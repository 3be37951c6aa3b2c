"""einsum, bmm and cat: contractions lowered to batched matmul plus transposes and reshapes.

`einsum` works on graph values and eager tensors alike, and is differentiable, because it
is made only of primitives that are (transpose, reshape, expand_dims, squeeze, matmul,
reduce_sum, mul). How an equation is evaluated:

1. Parse: each operand's subscripts become a list of labels, `...` expanding to one label
   per broadcast dimension (right-aligned across operands, as NumPy's).
2. A label repeated within one operand takes the diagonal (a mask of ones, then a sum).
3. Operands are contracted pairwise, left to right. Labels of one pair are classified:
   in both and still needed (batch), in both and not needed (contracted), in one only
   (left-free, right-free); a label needed nowhere later is summed out of its operand
   first, and a size-1 label the other operand broadcasts is squeezed away. The pair is then
   one batched matmul: (batch, left, contracted) @ (batch, contracted, right), groups of
   several labels merged by a reshape. Where a reshape cannot be expressed (more than one
   dimension unknown until the graph runs), the pair is a broadcast product and a sum.
4. The result's remaining labels are summed out or permuted into the output's order.
"""

from __future__ import annotations

import math
import string

import numpy as np

from graphjit.errors import DTypeError, GraphjitError, ShapeError
from graphjit.frontend import ops, shape_ops
from graphjit.frontend.convert import constant_like
from graphjit.ir.core import user_location

__all__ = ["bmm", "cat", "einsum"]

_LETTERS = set(string.ascii_letters)


def cat(tensors, dim: int = 0, *, axis: int | None = None):
    """Concatenate along `dim` (PyTorch's torch.cat; `axis=` as NumPy spells it): gj.concat."""
    return shape_ops.concat(list(tensors), axis=dim if axis is None else axis)


def bmm(a, b):
    """Batched matrix product of two rank-3 tensors, (b, n, m) @ (b, m, p) -> (b, n, p),
    with PyTorch's checks: no broadcasting of the batch (use matmul for that)."""
    a, b = ops.operands(a, b)
    for name, x in (("batch1", a), ("batch2", b)):
        if x.ndim != 3:
            raise ShapeError(
                f"bmm: {name} must be a 3-D tensor, got shape {_shape(x)}", location=user_location()
            )
    if not (_same(a.shape[0], b.shape[0]) and _same(a.shape[2], b.shape[1])):
        raise ShapeError(
            f"bmm: expected batch2 of shape ({a.shape[0]}, {a.shape[2]}, p), got {_shape(b)} "
            f"(batch1 is {_shape(a)})",
            location=user_location(),
        )
    return ops.matmul(a, b)


def _same(d1, d2) -> bool:
    return d1 is None or d2 is None or d1 == d2


def _shape(x) -> str:
    return "(" + ", ".join("?" if d is None else str(d) for d in x.shape) + ")"


def einsum(equation: str, *operands):
    """Einstein summation, NumPy's and PyTorch's `einsum(equation, *operands)`: e.g.
    `"ij,jk->ik"` (matmul), `"bij,bjk->bik"` (bmm), `"ij->ji"`, `"ii->"` (trace),
    `"...ij,...jk"` (implicit output: the labels seen once, sorted, after the broadcast
    dimensions). Any number of operands; operands are promoted to one dtype."""
    if len(operands) == 1 and isinstance(operands[0], (list, tuple)):
        operands = tuple(operands[0])  # torch.einsum(eq, [a, b]) too
    if not operands:
        raise GraphjitError("einsum needs at least one operand", location=user_location())
    xs = ops.operands(*operands)
    if xs[0].dtype.is_bool:
        raise DTypeError(
            "einsum of boolean tensors is not supported; cast them to a number type",
            location=user_location(),
        )
    terms, output = _parse(equation, [x.ndim for x in xs])
    _check_sizes(terms, xs)
    pairs = [_diagonals(x, labels) for x, labels in zip(xs, terms)]
    x, labels = pairs[0]
    for i in range(1, len(pairs)):
        needed = set(output).union(*(later for _, later in pairs[i + 1 :]))
        x, labels = _contract_pair((x, labels), pairs[i], needed)
    return _finish(x, labels, output)


# ---- parsing -----------------------------------------------------------------------------


def _parse(equation: str, ranks: list) -> tuple:
    """(one label list per operand, the output's label list)."""
    equation = equation.replace(" ", "")
    lhs, arrow, rhs = equation.partition("->")
    specs = lhs.split(",")
    if len(specs) != len(ranks):
        raise _syntax(equation, f"it has {len(specs)} operand terms for {len(ranks)} operands")
    tokens = [_tokens(spec, equation) for spec in specs]
    ellipsis_ranks = [
        _ellipsis_rank(t, r, equation, i) for i, (t, r) in enumerate(zip(tokens, ranks))
    ]
    broadcast = [f"...{k}" for k in range(max(ellipsis_ranks))]  # (labels no letter can be)
    terms = [_expand(t, broadcast, n) for t, n in zip(tokens, ellipsis_ranks)]
    if arrow:
        output = _expand(_tokens(rhs, equation), broadcast, len(broadcast))
        _check_output(output, terms, equation)
    else:
        counts = _counts(terms)
        output = broadcast + sorted(
            label for label, n in counts.items() if n == 1 and label not in broadcast
        )
    return terms, output


def _tokens(spec: str, equation: str) -> list:
    """Letters and "..." of one term, in order."""
    tokens, i = [], 0
    while i < len(spec):
        if spec.startswith("...", i):
            if "..." in tokens:
                raise _syntax(equation, "a term has more than one '...'")
            tokens.append("...")
            i += 3
        elif spec[i] in _LETTERS:
            tokens.append(spec[i])
            i += 1
        else:
            raise _syntax(equation, f"{spec[i]!r} is not a subscript (letters a-z, A-Z and ...)")
    return tokens


def _ellipsis_rank(tokens: list, rank: int, equation: str, index: int) -> int:
    letters = len(tokens) - ("..." in tokens)
    if letters > rank or ("..." not in tokens and letters != rank):
        raise ShapeError(
            f"einsum {equation!r}: operand {index} has rank {rank} but its term has "
            f"{letters} subscripts",
            location=user_location(),
        )
    return rank - letters if "..." in tokens else 0


def _expand(tokens: list, broadcast: list, count: int) -> list:
    """Replace "..." by the last `count` broadcast labels (right-aligned, as NumPy)."""
    if "..." not in tokens:
        return list(tokens)
    i = tokens.index("...")
    return tokens[:i] + broadcast[len(broadcast) - count :] + tokens[i + 1 :]


def _counts(terms: list) -> dict:
    counts: dict = {}
    for term in terms:
        for label in term:
            counts[label] = counts.get(label, 0) + 1
    return counts


def _check_output(output: list, terms: list, equation: str) -> None:
    seen = set().union(*terms)
    for label in output:
        if output.count(label) > 1:
            raise _syntax(equation, f"the output subscript {label!r} appears more than once")
        if label not in seen:
            raise _syntax(equation, f"the output subscript {label!r} appears in no operand")


def _syntax(equation: str, why: str) -> GraphjitError:
    return GraphjitError(f"einsum {equation!r}: {why}", location=user_location())


def _check_sizes(terms: list, xs: list) -> None:
    """Each label has one size across operands (or 1, which broadcasts; None: unknown)."""
    sizes: dict = {}
    for index, (term, x) in enumerate(zip(terms, xs)):
        for label, d in zip(term, x.shape):
            if d is None or d == 1:
                continue
            first = sizes.setdefault(label, (d, index))
            if first[0] != d:
                raise ShapeError(
                    f"einsum: subscript {_name(label)} has size {first[0]} in operand "
                    f"{first[1]} and {d} in operand {index}",
                    location=user_location(),
                )


def _name(label: str) -> str:
    return "..." if label.startswith("...") else repr(label)


# ---- one operand: diagonals, sums, permutations --------------------------------------------


def _diagonals(x, labels: list) -> tuple:
    """Take the diagonal over every label repeated in `labels` ("ii->i")."""
    labels = list(labels)
    while len(set(labels)) < len(labels):
        label = next(lb for lb in labels if labels.count(lb) > 1)
        first = labels.index(label)
        second = labels.index(label, first + 1)
        x = _diagonal(x, first, second, label)
        del labels[second]
    return x, labels


def _diagonal(x, first: int, second: int, label: str):
    """x's diagonal over axes first < second, kept at `first`: x times an identity mask
    on those axes, summed over `second` (no gather op needed; gradients come free)."""
    n = x.shape[first] if x.shape[first] is not None else x.shape[second]
    if n is None:
        raise ShapeError(
            f"einsum: the diagonal over subscript {_name(label)} needs its size known when "
            "the graph is built",
            location=user_location(),
        )
    shape = [1] * x.ndim
    shape[first] = shape[second] = n
    mask = constant_like(np.eye(n).reshape(shape), x.dtype, context=[x])
    return ops.sum(ops.mul(x, mask), axis=second)


def _sum_out(x, labels: list, keep) -> tuple:
    """Sum over the labels not in `keep`."""
    axes = tuple(i for i, label in enumerate(labels) if label not in keep)
    if not axes:
        return x, labels
    return ops.sum(x, axis=axes), [label for label in labels if label in keep]


def _permute(x, labels: list, order: list):
    perm = [labels.index(label) for label in order]
    return x if perm == sorted(perm) else shape_ops.transpose(x, perm)


def _finish(x, labels: list, output: list):
    x, labels = _sum_out(x, labels, set(output))
    return _permute(x, labels, output)


# ---- two operands ------------------------------------------------------------------------


def _contract_pair(left: tuple, right: tuple, needed: set) -> tuple:
    """Contract two (tensor, labels) pairs, keeping the labels in `needed`."""
    (a, la), (b, lb) = _squeeze_broadcast(left, right)
    a, la = _sum_out(a, la, needed | set(lb))
    b, lb = _sum_out(b, lb, needed | set(la))
    batch = [label for label in la if label in lb and label in needed]
    contracted = [label for label in la if label in lb and label not in needed]
    free_a = [label for label in la if label not in lb]
    free_b = [label for label in lb if label not in la]
    a = _permute(a, la, batch + free_a + contracted)
    b = _permute(b, lb, batch + contracted + free_b)
    plan = _MatmulPlan(a, b, len(batch), (free_a, contracted, free_b))
    if plan.possible():
        return plan.run(), batch + free_a + free_b
    return _broadcast_product(
        a, batch + free_a + contracted, b, batch + contracted + free_b, contracted
    )


def _squeeze_broadcast(left: tuple, right: tuple) -> tuple:
    """A label of size 1 in one operand and not (known to be) 1 in the other broadcasts:
    drop it from the size-1 operand. It is then a label of the other operand alone, kept
    or summed out as any other, which is what broadcasting means."""
    (a, la), (b, lb) = left, right
    size_a = dict(zip(la, a.shape))
    size_b = dict(zip(lb, b.shape))
    ones_a = [lb_ for lb_ in la if lb_ in size_b and size_a[lb_] == 1 and size_b[lb_] != 1]
    ones_b = [lb_ for lb_ in lb if lb_ in size_a and size_b[lb_] == 1 and size_a[lb_] != 1]
    return _squeeze_labels(a, la, ones_a), _squeeze_labels(b, lb, ones_b)


def _squeeze_labels(x, labels: list, drop: list) -> tuple:
    if not drop:
        return x, labels
    axes = tuple(labels.index(label) for label in drop)
    return shape_ops.squeeze(x, axis=axes), [label for label in labels if label not in drop]


class _MatmulPlan:
    """a: (batch..., M-group, K-group), b: (batch..., K-group, N-group) as one matmul of
    (batch..., M, K) @ (batch..., K, N). A group of one axis is used as it is; an empty
    group becomes a size-1 axis; a group of several axes is merged by a reshape, which
    (with the reshape back) is possible when each target shape has at most one unknown
    dimension (it is then -1)."""

    def __init__(self, a, b, n_batch: int, groups: tuple):
        self.a, self.b, self.n_batch = a, b, n_batch
        self.n_m, self.n_k, self.n_n = (len(g) for g in groups)
        self.batch = list(a.shape[:n_batch])
        self.m_dims = list(a.shape[n_batch : n_batch + self.n_m])
        self.k_dims = list(a.shape[n_batch + self.n_m :])
        self.n_dims = list(b.shape[n_batch + self.n_k :])

    def possible(self) -> bool:
        targets = [self.a_target(), self.b_target(), self.out_target()]
        return all(t is None or _reshape_dims(t) is not None for t in targets)

    def a_target(self):
        if self.n_m <= 1 and self.n_k <= 1:
            return None  # (no reshape: at most a size-1 axis inserted)
        return self.batch + [_product(self.m_dims), _product(self.k_dims)]

    def b_target(self):
        if self.n_k <= 1 and self.n_n <= 1:
            return None
        return self.batch + [_product(self.k_dims), _product(self.n_dims)]

    def out_target(self):
        if self.n_m <= 1 and self.n_n <= 1:
            return None
        return self.batch + self.m_dims + self.n_dims

    def run(self):
        a = self.as_matrices(self.a, self.a_target(), self.n_m, self.n_k)
        b = self.as_matrices(self.b, self.b_target(), self.n_k, self.n_n)
        out = ops.matmul(a, b)
        target = self.out_target()
        if target is not None:
            return shape_ops.reshape(out, _reshape_dims(target))
        empty = [axis for axis, n in ((-2, self.n_m), (-1, self.n_n)) if n == 0]
        return shape_ops.squeeze(out, axis=[out.ndim + axis for axis in empty]) if empty else out

    def as_matrices(self, x, target, n_rows: int, n_cols: int):
        """x's two trailing groups as the two trailing axes of a (batched) matrix."""
        if target is not None:
            return shape_ops.reshape(x, _reshape_dims(target))
        if n_rows == 0 and n_cols == 0:
            return shape_ops.expand_dims(x, [x.ndim, x.ndim + 1])
        if n_rows == 0:
            return shape_ops.expand_dims(x, x.ndim - 1)
        if n_cols == 0:
            return shape_ops.expand_dims(x, x.ndim)
        return x


def _product(dims: list):
    """The size of merged dimensions (1 for none); None if one of them is unknown."""
    return None if None in dims else math.prod(dims)


def _reshape_dims(dims: list):
    """`dims` as a reshape target, its one unknown dimension as -1; None if more than one is
    unknown (the reshape cannot be written down)."""
    if dims.count(None) > 1:
        return None
    return tuple(-1 if d is None else d for d in dims)


def _broadcast_product(a, la: list, b, lb: list, contracted: list) -> tuple:
    """The pair as an elementwise product over the union of their labels and a sum over the
    contracted ones: always expressible (no reshape), at the cost of the full product's
    memory. Used when dimensions unknown until run time rule out the matmul's reshapes."""
    union = la + [label for label in lb if label not in la]
    product = ops.mul(_aligned(a, la, union), _aligned(b, lb, union))
    return _sum_out(product, union, set(union) - set(contracted))


def _aligned(x, labels: list, union: list):
    """x with its axes in `union`'s order and a size-1 axis for each label it lacks."""
    x = _permute(x, labels, [label for label in union if label in labels])
    missing = [i for i, label in enumerate(union) if label not in labels]
    return shape_ops.expand_dims(x, missing) if missing else x
