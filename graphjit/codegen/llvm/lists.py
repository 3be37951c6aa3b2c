"""Tensor lists in native code: growable buffers behind a heap-allocated header.

    struct list { i8* data; i64 length; i64 capacity; i64 element_bytes; list* next }

A list value is a handle (a header pointer) kept in an 8-byte stack slot per IR value.
The IR gives lists value semantics; autodiff uses each list version once, so the ops
that make a new version (push, add_at, add) update their operand in place, unless other
ops read that version too: then they update a copy. Every header is chained into one list
that the entry point frees on its way out, error exits included."""

from __future__ import annotations

from llvmlite import ir

from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.errors import BackendError, ResourceError
from graphjit.ir.core import Operation, Value
from graphjit.ir.symbolic import is_symbolic
from graphjit.ir.types import ListType

HEADER = ir.LiteralStructType([T.I8P, T.I64, T.I64, T.I64, T.I8P])
DATA, LENGTH, CAPACITY, ELEMENT_BYTES, NEXT = range(5)


class ListLowering:
    def __init__(self, lowering):
        self.low = lowering
        self.shared = shared_versions(lowering.fn)
        self.slots: dict[Value, ir.Value] = {}
        self.same_slot: dict[Value, Value] = {}  # a loop's region args and results share one
        self.chain = None  # i8** slot holding the newest header (for freeing)

    @property
    def b(self) -> ir.IRBuilder:
        return self.low.b

    # -- handles --------------------------------------------------------------------------
    def slot(self, v: Value) -> ir.Value:
        root = self._root(v)
        if root not in self.slots:
            self.slots[root] = self.low.local(T.I8P)
        return self.slots[root]

    def share_slot(self, v: Value, carried: Value) -> None:
        self.same_slot[v] = carried

    def _root(self, v: Value) -> Value:
        return self.same_slot.get(v, v)

    def load_handle(self, v: Value) -> ir.Value:
        return self.b.load(self.slot(v))

    def store_handle(self, v: Value, handle: ir.Value) -> None:
        self.b.store(handle, self.slot(v))

    def copy_handle(self, dst: Value, src: Value) -> None:
        if self.slot(dst) is not self.slot(src):
            self.store_handle(dst, self.load_handle(src))

    def writable_handle(self, v: Value) -> ir.Value:
        """The handle an update may change in place: v's own, or a copy if v is shared."""
        handle = self.load_handle(v)
        if v not in self.shared:
            return handle
        length = self._get(handle, LENGTH)
        copy = self._new(self.element_bytes(v), length)
        size = self.b.mul(length, self._get(handle, ELEMENT_BYTES))
        fn = self.low.module.declare_intrinsic("llvm.memcpy", [T.I8P, T.I8P, T.I64])
        self.b.call(
            fn, [self._get(copy, DATA), self._get(handle, DATA), size, ir.Constant(T.I1, 0)]
        )
        return copy

    def _field(self, handle, index):
        header = self.b.bitcast(handle, HEADER.as_pointer())
        return self.b.gep(header, [ir.Constant(T.I32, 0), ir.Constant(T.I32, index)])

    def _get(self, handle, index):
        return self.b.load(self._field(handle, index))

    def _element(self, handle, i):
        offset = self.b.mul(i, self._get(handle, ELEMENT_BYTES))
        return self.b.gep(self._get(handle, DATA), [offset])

    # -- allocation -----------------------------------------------------------------------
    def _new(self, element_bytes, length, zeroed_copy_of=None) -> ir.Value:
        b, module = self.b, self.low.module
        if self.chain is None:
            with b.goto_entry_block():
                self.chain = b.alloca(T.I8P)
                b.store(ir.Constant(T.I8P, None), self.chain)
        malloc = T.external_function(module, "malloc", T.I8P, [T.I64])
        calloc = T.external_function(module, "calloc", T.I8P, [T.I64, T.I64])
        handle = b.call(malloc, [ir.Constant(T.I64, 40)])
        self._fail_if_null(handle)
        # calloc checks count x size for overflow; never 0 bytes (empty elements), whose
        # result may be NULL and would read as a failure
        data = b.call(
            calloc,
            [b.add(length, ir.Constant(T.I64, 1)), self._at_least_one(element_bytes)],
        )
        self._fail_if_null(data)
        for index, value in (
            (DATA, data),
            (LENGTH, length),
            (CAPACITY, length),
            (ELEMENT_BYTES, self.low.i64(element_bytes)),
            (NEXT, b.load(self.chain)),
        ):
            b.store(value, self._field(handle, index))
        b.store(handle, self.chain)
        return handle

    def _checked_bytes(self, count, element_bytes, op) -> ir.Value:
        """count x element_bytes for an allocation, at least 1 (realloc(p, 0) frees p,
        which the chain would free again), and a ResourceError if it overflows."""
        b = self.b
        with_flag = ir.LiteralStructType([T.I64, T.I1])
        mul = T.external_function(
            self.low.module, "llvm.umul.with.overflow.i64", with_flag, [T.I64, T.I64]
        )
        product = b.call(mul, [count, self._at_least_one(element_bytes)])
        self.low.fail(
            "a tensor list would need more bytes than the address space holds",
            b.extract_value(product, 1),
            ResourceError,
            op,
        )
        return b.extract_value(product, 0)

    def _fail_if_null(self, pointer, op=None) -> None:
        """An allocation that failed stops the run with a ResourceError, not a crash."""
        null = self.b.icmp_unsigned("==", pointer, ir.Constant(T.I8P, None))
        self.low.fail("out of memory growing a tensor list", null, ResourceError, op)

    def free_all(self) -> None:
        if self.chain is None:
            return
        b, free = self.b, T.external_function(self.low.module, "free", ir.VoidType(), [T.I8P])
        loop, body, done = (
            self.low.entry.append_basic_block(f"free.{s}") for s in ("loop", "body", "done")
        )
        b.branch(loop)
        b.position_at_end(loop)
        handle = b.load(self.chain)
        b.cbranch(b.icmp_unsigned("!=", handle, ir.Constant(T.I8P, None)), body, done)
        b.position_at_end(body)
        b.store(self._get(handle, NEXT), self.chain)
        b.call(free, [self._get(handle, DATA)])
        b.call(free, [handle])
        b.branch(loop)
        b.position_at_end(done)

    # -- ops ----------------------------------------------------------------------------
    def element_bytes(self, list_value: Value) -> int:
        elem = list_value.type.elem
        if isinstance(elem, ListType):
            raise BackendError(
                "lists of lists (third-order gradients through loops) are not supported by the "
                "llvm backend; run that graph with backend='interpreter'",
                op=list_value.op,
            )
        return elem.size * elem.dtype.np.itemsize  # (a size of the run, where it is one)

    def _at_least_one(self, element_bytes) -> ir.Value:
        """An element's bytes as an i64 of at least 1 (empty elements: see _new); one of a
        size of the run is at least 2 elements' worth (symbolic.MIN_SIZE)."""
        if is_symbolic(element_bytes):
            return self.low.i64(element_bytes)
        return ir.Constant(T.I64, max(element_bytes, 1))

    def op_new(self, op: Operation) -> None:
        handle = self._new(self.element_bytes(op.result), ir.Constant(T.I64, 0))
        self.store_handle(op.result, handle)

    def op_push(self, op: Operation) -> None:
        b = self.b
        lst, x = op.operands
        handle = self.writable_handle(lst)
        length, capacity = self._get(handle, LENGTH), self._get(handle, CAPACITY)
        with b.if_then(b.icmp_unsigned("==", length, capacity)):
            grown = b.add(b.shl(capacity, ir.Constant(T.I64, 1)), ir.Constant(T.I64, 4))
            size = self._checked_bytes(grown, self.element_bytes(lst), op)
            realloc = T.external_function(self.low.module, "realloc", T.I8P, [T.I8P, T.I64])
            data = b.call(realloc, [self._get(handle, DATA), size])
            self._fail_if_null(data, op)  # the old buffer stays on the chain, to be freed
            b.store(data, self._field(handle, DATA))
            b.store(grown, self._field(handle, CAPACITY))
        self.low.memcpy(self._element(handle, length), self.low.ptr(x), self.element_bytes(lst))
        b.store(b.add(length, ir.Constant(T.I64, 1)), self._field(handle, LENGTH))
        self.store_handle(op.result, handle)

    def _index(self, op: Operation, handle, index_value: Value):
        b = self.b
        i = T.load(b, self.low.typed(index_value), index_value.type.dtype)
        if i.type != T.I64:
            i = b.sext(i, T.I64)
        out_of_range = b.or_(
            b.icmp_signed("<", i, ir.Constant(T.I64, 0)),
            b.icmp_signed(">=", i, self._get(handle, LENGTH)),
        )
        where = f" (built at {op.loc})" if op.loc else ""
        self.low.fail(f"tensor list index out of range in '{op.name}'{where}", out_of_range)
        return i

    def op_get(self, op: Operation) -> None:
        lst, index = op.operands
        handle = self.load_handle(lst)
        i = self._index(op, handle, index)
        self.low.memcpy(self.low.ptr(op.result), self._element(handle, i), self.element_bytes(lst))

    def op_zeros_like(self, op: Operation) -> None:
        lst = op.operands[0]
        length = self._get(self.load_handle(lst), LENGTH)
        self.store_handle(op.result, self._new(self.element_bytes(lst), length))

    def _accumulate(self, dst_ptr, src_ptr, dtype, count) -> None:
        """dst[k] += src[k] for k < count (elements of dtype), as the reference's `a + b`:
        float16/bfloat16 widened, added in float32 and rounded once; booleans or-ed."""
        b = self.b
        dp, sp = (T.typed_pointer(b, p, dtype) for p in (dst_ptr, src_ptr))
        with for_range(b, count, "acc") as k:
            x, y = T.load(b, b.gep(dp, [k]), dtype), T.load(b, b.gep(sp, [k]), dtype)
            if dtype.is_floating:
                total = b.fadd(x, y)
            else:
                total = b.or_(x, y) if dtype.is_bool else b.add(x, y)
            T.store(b, total, b.gep(dp, [k]), dtype)

    def op_add_at(self, op: Operation) -> None:
        lst, index, x = op.operands
        handle = self.writable_handle(lst)
        i = self._index(op, handle, index)
        elem = lst.type.elem
        self._accumulate(self._element(handle, i), self.low.ptr(x), elem.dtype, elem.size)
        self.store_handle(op.result, handle)

    def op_add(self, op: Operation) -> None:
        a, other = op.operands
        ha, hb = self.writable_handle(a), self.load_handle(other)
        elem = a.type.elem
        total = self.b.mul(self._get(ha, LENGTH), self.low.i64(elem.size))
        self._accumulate(self._get(ha, DATA), self._get(hb, DATA), elem.dtype, total)
        self.store_handle(op.result, ha)


def shared_versions(fn) -> set:
    """List values read by more than one op: an update of such a version must work on a
    copy, so the other readers still see it unchanged (value semantics)."""
    uses: dict[Value, int] = {}
    for op in fn.walk():
        for v in op.operands:
            if isinstance(v.type, ListType):
                uses[v] = uses.get(v, 0) + 1
    return {v for v, n in uses.items() if n > 1}
