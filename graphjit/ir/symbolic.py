"""Sizes known only when the program runs: one compile for every batch size.

A Session that compiles for the llvm backend gives each unknown dimension of a feed (a
`None` in its placeholder's shape) a symbol instead of the fed size. Shape rules, passes
and the lowering then compute with `SymInt`s, integer polynomials in those symbols, as
they would with ints: sums and products stay symbolic, so loop bounds, buffer sizes and
arena offsets become expressions the native code evaluates from the sizes of the run.

Every *decision* the compiler takes on a size -- a comparison, a branch, a conversion to
a Python int -- is taken with the size the symbol had when it was made (its hint), and
recorded as a guard, as PyTorch's dynamo does. The compiled program is valid for every
assignment of sizes that satisfies its guards (`ShapeEnv.admits`); one that does not
gets a compile of its own. Correctness never depends on code knowing about symbols: code
that needs an int gets one (`__index__`), and the guard `s == hint` it leaves restricts
the program to that size. What stays symbolic is what is worth the effort: the extents
and offsets that change with the batch size, in code that asks for them (`is_symbolic`).

Decisions that hold for every admissible size need no guard: symbols stand for sizes of
at least 2 (0 and 1 are kept as ints, as dynamo does: they change broadcasting and
emptiness), so a polynomial whose coefficients are all of one sign is decided by its
value at the least sizes. Besides the symbols, a polynomial may hold sizes derived from
them that no polynomial says (floor(P / d): a count of blocks), each an atom of its own.
Feeds whose unknown dimensions have equal sizes share one symbol ("duck sizing"; the
Session's size class records which were equal), so `x + y` of two [B, n] feeds needs no
guard at all."""

from __future__ import annotations

import numbers
import operator
import threading

import numpy as np

from graphjit.errors import BackendError

MIN_SIZE = 2  # the least value a symbol stands for
MAX_FLOOR_STEPS = 8  # floor atoms a sign decision replaces by their bounds, at most

_COMPARE = {"<": operator.lt, "<=": operator.le, "==": operator.eq, "!=": operator.ne}


class ShapeEnv:
    """The symbols of one compile, the sizes derived from them, their hints and the
    guards taken on them. Polynomials are over *atoms*: the symbols (the sizes of the run,
    in the order of the entry's `dims`), then sizes derived from them that no polynomial
    can say, floor(P / d) of a polynomial P with no negative coefficient (a count of
    blocks, ceil(n / d) = floor((n + d - 1) / d)). Every atom never decreases as a size
    grows, which is what lets `sign_bounds` decide from each atom's least value."""

    def __init__(self):
        self.atoms: list = []  # None for a symbol; (P's terms, d) for floor(P / d)
        self.hints: list[int] = []  # each atom's value at the compile's sizes
        self.least: list[int] = []  # each atom's least value over the admissible sizes
        self.symbols = 0
        self.guards: dict[tuple, bool] = {}  # (polynomial terms, relation) -> outcome
        self.lock = threading.Lock()
        self.frozen = False  # compiled: no decision may be taken any more

    def freeze(self) -> None:
        """The compile is over: its guards are final. A later decision on a size would
        hold only for the hints, so it is an error (what reports on the compiled program
        reads, it evaluates at the sizes of a run: SymInt.evaluate)."""
        self.frozen = True

    def symbol(self, hint: int) -> SymInt:
        if hint < MIN_SIZE:
            raise ValueError(f"a symbol stands for a size of at least {MIN_SIZE}, not {hint}")
        if self.symbols != len(self.atoms):
            raise ValueError("symbols are made before any size derived from them")
        self.symbols += 1
        return self._atom(None, int(hint), MIN_SIZE)

    def floor_div(self, poly: dict, d: int) -> SymInt | None:
        """floor(poly / d) as an atom of its own; None where poly has a negative
        coefficient (it could decrease as a size grows). A negative constant c = q*d + r
        (0 <= r < d) is taken out whole: floor((P + c) / d) = floor((P + r) / d) + q."""
        constant = poly.get((), 0)
        if constant < 0 < d:  # (a window's output count: (H - 2) // 2 + 1)
            q, r = divmod(constant, d)
            rest = {m: c for m, c in poly.items() if m != ()} | ({(): r} if r else {})
            quotient = self.floor_div(rest, d) if rest else 0
            return None if quotient is None else quotient + q
        if d <= 0 or any(c < 0 for c in poly.values()):
            return None
        key = (_key(poly), d)
        with self.lock:
            for k, atom in enumerate(self.atoms):
                if atom == key:
                    return SymInt(self, {(k,): 1})
            hint, least = _evaluate(poly, self.hints) // d, _evaluate(poly, self.least) // d
            return self._atom(key, hint, least)

    def _atom(self, definition, hint: int, least: int) -> SymInt:
        self.atoms.append(definition)
        self.hints.append(hint)
        self.least.append(least)
        return SymInt(self, {(len(self.atoms) - 1,): 1})

    def values(self, sizes) -> list[int]:
        """Every atom's value when the symbols are `sizes`."""
        out = list(sizes)
        for terms, d in self.atoms[len(out) :]:
            out.append(_evaluate(terms, out) // d)
        return out

    def admits(self, sizes) -> bool:
        """Whether a program compiled under these guards is valid for these symbol values."""
        if any(v < MIN_SIZE for v in sizes):
            return False
        values = self.values(sizes)
        return all(
            _COMPARE[rel](_evaluate(terms, values), 0) == outcome
            for (terms, rel), outcome in list(self.guards.items())
        )

    def pinned(self) -> list[int]:
        """The symbols whose guards admit no other value, the others at their hints (tried:
        one and two more, twice as many, and one more than that): sizes a lowering took
        as numbers, so that the compile serves only their own value."""
        hints = self.hints[: self.symbols]
        return [
            k
            for k, n in enumerate(hints)
            if not any(
                self.admits([*hints[:k], m, *hints[k + 1 :]])
                for m in (n + 1, n + 2, 2 * n, 2 * n + 1)
            )
        ]

    def fixes_every_symbol(self) -> bool:
        """Whether every symbol is pinned: a compile for every size that serves its own
        sizes alone. A guess either way costs speed only (Session: later sizes compile
        static code)."""
        return self.symbols > 0 and len(self.pinned()) == self.symbols

    def describe(self) -> list[str]:
        """The guards as conditions on the symbols (s0, s1, ...), each as it must hold."""
        held = {"<": ">=", "<=": ">", "==": "!=", "!=": "=="}
        out = []
        for (terms, rel), outcome in list(self.guards.items()):
            constant = dict(terms).get((), 0)
            left = repr(SymInt(self, {m: c for m, c in terms if m}))
            out.append(f"{left} {rel if outcome else held[rel]} {-constant}")
        return out

    def name(self, atom: int) -> str:
        if self.atoms[atom] is None:
            return f"s{atom}"
        terms, d = self.atoms[atom]
        return f"(({SymInt(self, dict(terms))!r}) // {d})"

    def sign_bounds(self, poly: dict) -> tuple[int, int]:
        """(lo, hi): bounds on the sign of `poly` that hold at every admissible size."""
        return (
            _bound_by_floors(poly, self.atoms, self.least, lower=True),
            _bound_by_floors(poly, self.atoms, self.least, lower=False),
        )

    def _decide(self, poly: dict, rel: str) -> bool:
        """`poly rel 0`, for the hints, recorded as a guard unless it holds for all sizes."""
        known = _decided(self.sign_bounds(poly), rel)
        if known is not None:
            return known
        if self.frozen:
            raise BackendError(
                "a decision on a size known only when the program runs was taken after "
                "its compile (evaluate the size at the run's sizes instead)"
            )
        outcome = _COMPARE[rel](_evaluate(_key(poly), self.hints), 0)
        with self.lock:
            self.guards[(_key(poly), rel)] = outcome
        return outcome


def _key(poly: dict) -> tuple:
    return tuple(sorted(poly.items()))


def _evaluate(terms, values) -> int:
    total = 0
    for monomial, coefficient in terms.items() if isinstance(terms, dict) else terms:
        for s in monomial:
            coefficient *= values[s]
        total += coefficient
    return total


def _monotone_bounds(poly: dict, least: list[int]) -> tuple[int, int]:
    """(lo, hi): bounds on the sign of `poly` at every admissible size. Every atom grows
    with the sizes, so where no coefficient but the constant is negative the polynomial
    is least at the atoms' least values (and where none is positive, greatest)."""
    signs = {c > 0 for m, c in poly.items() if m}
    if not signs:
        constant = poly.get((), 0)
        return (constant > 0) - (constant < 0), (constant > 0) - (constant < 0)
    if len(signs) > 1:
        return -1, 1
    at_least = _evaluate(poly, least)
    sign = (at_least > 0) - (at_least < 0)
    return (sign, 1) if signs == {True} else (-1, sign)


def _bound_by_floors(poly: dict, atoms: list, least: list[int], lower: bool) -> int:
    """A bound on the sign of `poly` (from below if `lower`, else from above), tightened by
    replacing its floor(P / d) atoms that stand alone in a term by their bounds, d *
    floor(P / d) within [P - d + 1, P], the latest atom first (a later atom's P may hold an
    earlier one, which then cancels). Decides 64 * ceil(4 s0 / 64) - 4 s0 >= 0, and the
    offsets of buffers rounded up to cache lines one above the other, without guards."""
    side = 0 if lower else 1
    best = _monotone_bounds(poly, least)[side]
    for _ in range(MAX_FLOOR_STEPS):
        in_products = {a for m in poly if len(m) > 1 for a in m}
        alone = [m[0] for m in poly if len(m) == 1 and atoms[m[0]] is not None]
        alone = [a for a in alone if a not in in_products]
        if not alone or best == (1 if lower else -1):
            break
        atom = max(alone)
        terms, d = atoms[atom]
        c = poly[(atom,)]
        scaled = {m: k * d for m, k in poly.items() if m != (atom,)}
        for m, k in terms:
            scaled[m] = scaled.get(m, 0) + c * k
        if (c > 0) == lower:  # this side takes d * floor(P / d) at its least, P - d + 1
            scaled[()] = scaled.get((), 0) - c * (d - 1)
        poly = {m: k for m, k in scaled.items() if k}
        bound = _monotone_bounds(poly, least)[side]
        best = max(best, bound) if lower else min(best, bound)
    return best


def _decided(bounds: tuple[int, int], rel: str) -> bool | None:
    """`poly rel 0` where the sign of poly lies within `bounds` for every size, or None
    where that depends on the sizes."""
    lo, hi = bounds
    if rel == "<":
        return True if hi < 0 else False if lo >= 0 else None
    if rel == "<=":
        return True if hi <= 0 else False if lo > 0 else None
    equal = True if lo == hi == 0 else False if lo > 0 or hi < 0 else None
    return equal if rel == "==" or equal is None else not equal


def _poly(x):
    if isinstance(x, SymInt):
        return x.poly
    if isinstance(x, (int, np.integer)) and not isinstance(x, bool):
        return {(): int(x)} if x else {}
    return None


def _exact_quotient(poly, divisor):
    """poly / divisor as a polynomial when the divisor is one term that divides each of
    poly's terms (4096*s0 // s0, 40*s0 // 8) or poly is a multiple of it, else None."""
    if poly is None or divisor is None or not divisor:
        return None
    if len(divisor) > 1:  # (8*s0 - 8) / (s0 - 1): a constant multiple only
        m, c = max(divisor.items())
        ratio, rest = divmod(poly.get(m, 0), c)
        multiple = {k: ratio * v for k, v in divisor.items()}
        return {(): ratio} if not rest and multiple == poly else None
    ((dm, dc),) = divisor.items()
    quotient = {}
    for m, c in poly.items():
        rest = list(m)
        for s in dm:
            if s not in rest:
                return None
            rest.remove(s)
        if c % dc:
            return None
        quotient[tuple(rest)] = c // dc
    return quotient


def _on_hint(n: SymInt, other, op):
    """`op(n, other)` for a float (or another number): on the hint, guarded."""
    if isinstance(other, numbers.Number) and not isinstance(other, bool):
        return op(operator.index(n), other)
    return NotImplemented


def _make(env, poly: dict):
    poly = {m: c for m, c in poly.items() if c}
    if all(m == () for m in poly):
        return poly.get((), 0)
    return SymInt(env, poly)


class SymInt:
    """An integer polynomial in a ShapeEnv's symbols (see the module docstring)."""

    __slots__ = ("env", "poly")

    def __init__(self, env: ShapeEnv, poly: dict):
        self.env, self.poly = env, poly

    @property
    def hint(self) -> int:
        return _evaluate(self.poly, self.env.hints)

    def evaluate(self, sizes) -> int:
        """Its value when the symbols are `sizes` (the run's)."""
        return _evaluate(self.poly, self.env.values(sizes))

    # -- arithmetic: exact, stays symbolic ----------------------------------------------
    def __add__(self, other):
        q = _poly(other)
        if q is None:
            return _on_hint(self, other, operator.add)
        out = dict(self.poly)
        for m, c in q.items():
            out[m] = out.get(m, 0) + c
        return _make(self.env, out)

    __radd__ = __add__

    def __neg__(self):
        return _make(self.env, {m: -c for m, c in self.poly.items()})

    def __sub__(self, other):
        q = _poly(other)
        if q is None:
            return _on_hint(self, other, operator.sub)
        return self + _make(self.env, {m: -c for m, c in q.items()})

    def __rsub__(self, other):
        return (-self) + other

    def __mul__(self, other):
        q = _poly(other)
        if q is None:
            return _on_hint(self, other, operator.mul)
        out: dict = {}
        for m1, c1 in self.poly.items():
            for m2, c2 in q.items():
                m = tuple(sorted(m1 + m2))
                out[m] = out.get(m, 0) + c1 * c2
        return _make(self.env, out)

    __rmul__ = __mul__

    def __floordiv__(self, other):
        """Exact when `other` divides every term; by a positive int, an atom of its own
        (ShapeEnv.floor_div); else decided at the hint."""
        quotient = _exact_quotient(self.poly, _poly(other))
        if quotient is not None:
            return _make(self.env, quotient)
        if isinstance(other, (int, np.integer)) and not isinstance(other, bool):
            derived = self.env.floor_div(self.poly, int(other))
            if derived is not None:
                return derived
        return operator.index(self) // _concrete(other)

    def __rfloordiv__(self, other):
        quotient = _exact_quotient(_poly(other), self.poly)
        if quotient is not None:
            return _make(self.env, quotient)
        return _concrete(other) // operator.index(self)

    def __mod__(self, other):
        if _exact_quotient(self.poly, _poly(other)) is not None:
            return 0
        quotient = self // other
        if is_symbolic(quotient) and isinstance(other, (int, np.integer)):
            return self - quotient * int(other)
        return operator.index(self) % _concrete(other)

    def __rmod__(self, other):
        if _exact_quotient(_poly(other), self.poly) is not None:
            return 0
        return _concrete(other) % operator.index(self)

    def __divmod__(self, other):
        return self // other, self % other

    def __rdivmod__(self, other):
        return other // self, other % self

    def __truediv__(self, other):
        return operator.index(self) / other

    def __rtruediv__(self, other):
        return other / operator.index(self)

    def __pow__(self, other):
        if isinstance(other, int) and other >= 0:
            out = 1
            for _ in range(other):
                out = out * self
            return out
        return operator.index(self) ** other

    # -- decisions: guarded -------------------------------------------------------------
    def _compare(self, other, rel: str, reverse: bool = False):
        """`self rel other` (`other rel self` if reverse), guarded."""
        q = _poly(other)
        if q is None:
            compare = _COMPARE[rel]
            return _on_hint(self, other, lambda a, b: compare(b, a) if reverse else compare(a, b))
        sign = -1 if reverse else 1
        diff = {m: sign * c for m, c in self.poly.items()}
        for m, c in q.items():
            diff[m] = diff.get(m, 0) - sign * c
        return self.env._decide({m: c for m, c in diff.items() if c}, rel)

    def __lt__(self, other):
        return self._compare(other, "<")

    def __le__(self, other):
        return self._compare(other, "<=")

    def __gt__(self, other):
        return self._compare(other, "<", reverse=True)

    def __ge__(self, other):
        return self._compare(other, "<=", reverse=True)

    def __eq__(self, other):
        if other is None:
            return False
        return self._compare(other, "==")

    def __ne__(self, other):
        if other is None:
            return True
        return self._compare(other, "!=")

    def __bool__(self):
        return self._compare(0, "!=")

    def __hash__(self):
        """The hint's hash, as equal values must hash alike: in a set or as a dict key a
        SymInt then meets the ints and SymInts its hint equals, and their `==` is
        guarded, so sets of sizes decide as they would on the hints. Tables of generated
        code keyed by a size use `size_key` (structural) instead."""
        return hash(self.hint)

    def __index__(self):
        """A Python int: the hint, with the guard that pins this expression to it."""
        value = self.hint
        self._compare(value, "==")
        return value

    __int__ = __index__

    def __float__(self):
        return float(operator.index(self))

    def __getattr__(self, name: str):
        """int's other methods (bit_length, to_bytes, ...) on the hint, guarded."""
        if name.startswith("__") or not hasattr(int, name):
            raise AttributeError(name)
        return getattr(operator.index(self), name)

    def __abs__(self):
        return self if self >= 0 else -self

    def __repr__(self):
        parts = []
        for m, c in sorted(self.poly.items()):
            factors = [self.env.name(s) for s in m]
            if c != 1 or not factors:
                factors.insert(0, str(c))
            parts.append("*".join(factors))
        return " + ".join(parts) or "0"

    def __str__(self):
        """The hint's digits, guarded: text is for code that wants the number (a size
        formatted into generated code must never be a polynomial). repr is symbolic."""
        return str(operator.index(self))


def _concrete(x):
    return operator.index(x) if isinstance(x, SymInt) else x


def round_up(n, multiple: int):
    """The least multiple of `multiple` at least `n`. For a SymInt whose terms are all
    multiples already, only the constant is rounded; else `multiple` * floor((n +
    multiple - 1) / multiple), exact at every size (an atom: sign_bounds still decides
    that it is at least n). A polynomial with a negative coefficient has no such atom:
    each coefficient is rounded up, a multiple at least n for every size."""
    if not isinstance(n, SymInt):
        return -(-n // multiple) * multiple
    terms = {m: c for m, c in n.poly.items() if m}
    if all(c % multiple == 0 for c in terms.values()):
        return _make(n.env, {**terms, (): round_up(n.poly.get((), 0), multiple)})
    blocks = n.env.floor_div(_poly(n + (multiple - 1)), multiple)
    if blocks is not None:
        return blocks * multiple
    return _make(n.env, {m: -(-c // multiple) * multiple for m, c in n.poly.items()})


def known_at_least(a, b) -> bool | None:
    """Whether a >= b for every admissible size, without a guard: True or False where
    that is so for all of them, None where it depends on the sizes."""
    diff = a - b
    if not isinstance(diff, SymInt):
        return diff >= 0
    lo, hi = diff.env.sign_bounds(diff.poly)
    return True if lo >= 0 else False if hi < 0 else None


def at_least_both(a, b):
    """max(a, b) where which is larger holds for every size, else a + b (>= both when
    neither is negative): a bound on sizes of the run that takes no guard."""
    larger = known_at_least(a, b)
    if larger is None:
        return a + b
    return a if larger else b


def known_multiple(n, d) -> bool:
    """Whether n is a multiple of d at every size (an exact quotient of polynomials), with
    no guard: False where that is not so, or not known."""
    if not (is_symbolic(n) or is_symbolic(d)):
        return n % d == 0
    return _exact_quotient(_poly(n), _poly(d)) is not None


def size_key(n):
    """A dict key for an int or SymInt by what it is, not by its value at the hints."""
    return ("symbolic", _key(n.poly)) if isinstance(n, SymInt) else n


def is_symbolic(x) -> bool:
    return isinstance(x, SymInt)


def slice_indices(start, stop, step, d) -> tuple:
    """`slice(start, stop, step).indices(d)`, and the slice's length, for a size of the
    run too: Python's clamping by comparisons (guarded where a bound's side depends on the
    size) and the length ceil((last - first) / step) as an exact expression (a floor atom
    for a step other than +-1)."""
    if not isinstance(d, SymInt):
        first, last, step = slice(start, stop, step).indices(operator.index(d))
        return first, last, step, len(range(first, last, step))
    step = 1 if step is None else step
    low, high = (0, d) if step > 0 else (-1, d - 1)  # where an index clamps to

    def clamp(i, default):
        if i is None:
            return default
        i = d + i if i < 0 else i
        return low if i < low else high if i > high else i

    first = clamp(start, 0 if step > 0 else d - 1)
    last = clamp(stop, d if step > 0 else -1)
    span = last - first if step > 0 else first - last
    if not span > 0:
        return first, last, step, 0
    size = span if abs(step) == 1 else (span + abs(step) - 1) // abs(step)
    return first, last, step, size


def elsewhere_value(n) -> int:
    """The value of a size with every symbol at other sizes than its hint (2 * hint + 1;
    no guard): a probe whether a result depends on the sizes of the run at all."""
    if not isinstance(n, SymInt):
        return n
    env = n.env
    return n.evaluate([2 * h + 1 for h in env.hints[: env.symbols]])


def has_symbolic_dims(t) -> bool:
    """Whether tensor type `t` has a dimension known only when the program runs."""
    return t.shape is not None and any(isinstance(d, SymInt) for d in t.shape)


def hint(x) -> int:
    """The value of a size at the compile's hints (no guard): for estimates only."""
    return x.hint if isinstance(x, SymInt) else x
