"""The llvm backend's code model (graphjit/codegen/llvm/target.py): position-independent
code in the small code model, loaded by llvmlite's memory manager, which allocates only
what RuntimeDyld reserved for an object. So no object may need what RuntimeDyld does not
reserve: a PLT call to a symbol outside the object (its stub's GOT entry is not counted:
a CNN's BLAS calls aborted the process), a 32-bit offset to one (another object may lie
beyond reach), or a 32-bit absolute address (out of range for code mapped anywhere). Read from the relocations of every part's object of programs that
call BLAS, libc, the thread pool and each other's parts."""

from __future__ import annotations

import platform
import struct
import sys

import numpy as np
import pytest
from llvm_helpers import record_llvm_ir

import graphjit as gj
from graphjit.bench.workloads import cnn
from graphjit.codegen.llvm import jit, mathlib, target

SHT_RELA = 4
R_X86_64_PC32, R_X86_64_PLT32, R_X86_64_32, R_X86_64_32S = 2, 4, 10, 11


def relocations(obj: bytes) -> list[tuple[int, str, bool]]:
    """(type, symbol name, symbol undefined in the object) of each relocation of an ELF64
    little-endian object."""
    (shoff,) = struct.unpack_from("<Q", obj, 0x28)
    shentsize, shnum = struct.unpack_from("<HH", obj, 0x3A)
    sections = [struct.unpack_from("<IIQQQQIIQQ", obj, shoff + i * shentsize) for i in range(shnum)]
    found = []
    for _, kind, _, _, offset, size, link, _, _, entsize in sections:
        if kind != SHT_RELA:
            continue
        symtab = sections[link]
        strtab = sections[symtab[6]]
        for at in range(offset, offset + size, entsize):
            _, info, _ = struct.unpack_from("<QQq", obj, at)
            symbol = symtab[4] + (info >> 32) * symtab[9]
            name_at, _, _, section = struct.unpack_from("<IBBH", obj, symbol)
            start = strtab[4] + name_at
            name = obj[start : obj.index(b"\0", start)].decode()
            found.append((info & 0xFFFFFFFF, name, section == 0))
    return found


def objects(ir_text: str, max_parts: int = 4) -> list[bytes]:
    tm = jit.target_machine()
    parts, first = target.compile_object(ir_text, tm, 0, max_parts)
    return [first] + [target.compile_object(ir_text, tm, p, max_parts)[1] for p in range(1, parts)]


def tanh_chain(monkeypatch) -> None:
    """Kernels in parts that call tanh's vector variants, which part 0 defines."""
    monkeypatch.setattr(mathlib, "OUT_OF_LINE_CALLS", 8)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[None], name="x")
        y = x
        for segment in range(24):  # kernels that differ (their constants): none merge
            for _ in range(40):
                y = gj.tanh(y * (0.9 - 0.001 * segment) + 0.1)
    gj.Session(g).run(y, {x: np.linspace(-2, 2, 1000, dtype=np.float32)})


def cnn_step(monkeypatch) -> None:
    """Parts calling BLAS, memset, the thread pool and each other's kernels."""
    data = cnn.TRAIN_STEP.make_data(cnn.TRAIN_STEP.sizes["tiny"])
    cnn.TRAIN_STEP.builders["gj-llvm"](data).run()


@pytest.mark.skipif(
    sys.platform != "linux" or platform.machine() != "x86_64",
    reason="reads x86-64 ELF relocations",
)
@pytest.mark.parametrize("program", [tanh_chain, cnn_step])
def test_no_object_needs_room_that_runtime_dyld_does_not_reserve(program, monkeypatch):
    texts = record_llvm_ir(monkeypatch)
    program(monkeypatch)
    outside, split = set(), False
    for text in texts:
        parts = objects(text)
        split |= len(parts) > 1
        for obj in parts:
            for kind, name, undefined in relocations(obj):
                assert kind not in (R_X86_64_32, R_X86_64_32S), (kind, name)
                assert not (kind in (R_X86_64_PC32, R_X86_64_PLT32) and undefined), name
                if undefined:
                    outside.add(name)
    assert split  # (parts that call each other's kernels)
    assert outside  # (and calls out of the object that the check saw)


@pytest.mark.skipif(platform.machine() != "x86_64", reason="reads x86-64 assembly")
def test_vector_constants_are_operands_of_the_instructions_using_them(monkeypatch):
    """The elementwise chain's sigmoid and tanh use ~20 constants: each is addressed
    relative to the code, not through a 64-bit address loaded first (the large code
    model's `movabsq`, which LLVM redid inside the loop when registers ran short)."""
    texts = record_llvm_ir(monkeypatch)
    g = gj.Graph()
    with g.as_default():
        x = gj.placeholder(gj.float32, shape=[None], name="x")
        y = gj.relu(x * 2 + 1) * gj.sigmoid(x) + gj.tanh(x)
    data = np.linspace(-30, 30, 4099, dtype=np.float32)
    got = gj.Session(g).run(y, {x: data})
    expected = np.maximum(data * 2 + 1, 0) / (1 + np.exp(-data)) + np.tanh(data)
    np.testing.assert_allclose(got, expected, rtol=1e-6, atol=1e-6)
    tm = jit.target_machine()
    module = target.parse(texts[-1])
    target.prepare(module, tm)
    target.optimise(module, tm)
    assembly = tm.emit_assembly(module)
    assert "vbroadcastss\t.LCPI" in assembly and "(%rip)" in assembly
    assert "movabs" not in assembly
