"""Tensor lists (the tapes of while-loop gradients) on the host: a list value is the
interpreter's TensorList (value semantics, amortised O(1) pushes onto the newest version)
holding device arrays, or lists of them for gradients of gradients.

A push stores a private copy of the pushed tensor (its buffer is scratch that the next
iteration overwrites); list_get copies the element into the result's planned buffer;
zeros and sums of list elements are made by small fill and add kernels."""

from __future__ import annotations

from graphjit.codegen.cuda.compiler import compiled
from graphjit.codegen.cuda.copies import add, fill
from graphjit.codegen.cuda.source import storage_np
from graphjit.codegen.layout import size_of
from graphjit.ir.core import Operation
from graphjit.ir.ops.lists import TensorList
from graphjit.ir.types import ListType, TensorType


class ListOps:
    def __init__(self, lowering):
        self.low = lowering

    def _kernel(self, source, n: int):
        kernel, config = compiled(self.low.cuda, source), (self.low.cfg.grid(n), self.low.cfg.block)
        return lambda *arrays: kernel[config](*arrays)

    def _empty(self, t: TensorType):
        return self.low.cuda.device_array(size_of(t.shape), storage_np(t.dtype))

    def copy_of(self, t: TensorType):
        """A function returning a private device copy of an array of type t."""

        def copy(array):
            fresh = self._empty(t)
            if fresh.size:
                fresh.copy_to_device(array)
            return fresh

        return copy

    def zeros(self, elem):
        """A function making the zero cotangent of a list with elements of type `elem`."""
        if isinstance(elem, ListType):
            inner = self.zeros(elem.elem)
            return lambda lst: TensorList([inner(x) for x in lst.elements()], lst.length)
        n = size_of(elem.shape)
        zero = self._kernel(fill(elem.dtype, n, 0), n)

        def zeros(lst):
            arrays = [self._empty(elem) for _ in range(lst.length)]
            for a in arrays:
                zero(a)
            return TensorList(arrays, lst.length)

        return zeros

    def adder(self, elem):
        """A function adding two elements (arrays, or lists of them) of type `elem`."""
        if isinstance(elem, ListType):
            inner = self.adder(elem.elem)
            return lambda a, b: TensorList(
                [inner(x, y) for x, y in zip(a.elements(), b.elements(), strict=True)], a.length
            )
        n = size_of(elem.shape)
        kernel = self._kernel(add(elem.dtype, n), n)

        def add_arrays(a, b):
            out = self._empty(elem)
            kernel(a, b, out)
            return out

        return add_arrays

    # -- ops ----------------------------------------------------------------------------
    def op_new(self, op: Operation) -> list:
        result = op.result
        return [lambda frame: frame.__setitem__(result, TensorList([], 0))]

    def op_push(self, op: Operation) -> list:
        (lst, x), result = op.operands, op.result
        keep = self.copy_of(x.type) if isinstance(x.type, TensorType) else (lambda a: a)

        def push(frame):
            frame[result] = frame[lst].push(keep(frame[x]))

        return [push]

    def op_get(self, op: Operation) -> list:
        (lst, index), result = op.operands, op.result
        read = self.low.read_index

        def get(frame):
            item = frame[lst].get(read(frame[index]))
            if isinstance(result.type, ListType):
                frame[result] = item
            elif item.size:
                frame[result].copy_to_device(item)

        return [get]

    def op_zeros_like(self, op: Operation) -> list:
        lst, result = op.operands[0], op.result
        zeros = self.zeros(lst.type.elem)
        return [lambda frame: frame.__setitem__(result, zeros(frame[lst]))]

    def op_add_at(self, op: Operation) -> list:
        (lst, index, x), result = op.operands, op.result
        plus, read = self.adder(lst.type.elem), self.low.read_index

        def add_at(frame):
            old = frame[lst]
            i = read(frame[index])
            frame[result] = old.replaced(i, plus(old.get(i), frame[x]))

        return [add_at]

    def op_add(self, op: Operation) -> list:
        (a, b), result = op.operands, op.result
        plus = self.adder(a.type)
        return [lambda frame: frame.__setitem__(result, plus(frame[a], frame[b]))]
