"""The host target machine and the O3 pipeline of the LLVM backend: the one configuration
that both the parent process (jit.py) and the compile worker (compile_worker.py, which
loads this file by its path) use, so an object made by either is the same code.

Large modules (issue 18: a chain of thousands of elementwise ops is dozens of kernels of
~2000 instructions each once their math functions are inlined) are compiled so that the
cost stays linear in their size, and can be compiled in parts, in parallel:

- Before O3, identical functions are merged (a model that repeats a layer repeats its
  kernels) after interprocedural constant propagation has put each kernel's constant
  bounds into its body (so kernels that differ only in their bounds stay apart and each
  keeps its constant trip count).
- A module with two or more big local functions (kernels of OUT_OF_LINE_SIZE
  instructions or more) keeps them out of line (`noinline`): inlined into the entry, they
  made one function of tens of thousands of instructions, on which O3 cost 1.5 times as
  much (the chain of N = 1000: 1.05 s against 0.72 s), to save a call per kernel. Even
  kernels of a few dozen instructions are worth keeping apart: the transformer's training
  step (~200 kernels, most of them small) compiled in 1.7 s against 2.4 s with only
  kernels of 1000 instructions or more kept out of line, the CNN's in 0.5 s against 0.9 s,
  and no bench workload ran slower for the calls.
- Such a module can be split into parts (plan()), each compiled to its own object, in its
  own worker process; the objects are loaded together into one engine. A part defines its
  share of the big functions; the module's external definitions and its global variables
  belong to part 0; every other definition a part uses is `available_externally` there
  (optimised against, not emitted, and `optnone` so that no pass spends time on it).
  Small local functions (helpers, thread-pool task wrappers) are copied into each part
  that calls them.

Imports nothing but llvmlite and the standard library: the worker loads it without the
graphjit package."""

from __future__ import annotations

import functools
import re

import llvmlite.binding as llvm

# The pipeline's version, part of the compile caches' key: objects made by an earlier
# pipeline (or stored in a format an earlier one cannot read) are never loaded.
PIPELINE = "o3-merged-parts-pic-3"

# A local function at least this large (instructions, counting those of the always-inline
# functions it calls) is compiled out of line when the module has two or more of them, and
# is what a module is split by. (Kernels of the compile_scaling chain with their tanh
# inlined are ~2000, 128 ops.)
OUT_OF_LINE_SIZE = 50
# A part holds at least this much of the big functions (about 0.1 s of O3 and code
# generation): a smaller one costs more in its worker round trip than it saves.
PART_MIN_SIZE = 1500


@functools.cache
def features() -> str:
    """The host's features; on AVX-512 CPUs also lift LLVM's preference for 256-bit vectors
    (a heuristic against clock throttling that halves our kernels' throughput)."""
    features = llvm.get_host_cpu_features().flatten()
    if "+avx512f" in features:
        features += ",-prefer-256-bit"
    return features


def cpu_name() -> str:
    return llvm.get_host_cpu_name()


# Code addresses its constants relative to the instruction pointer (the small code model,
# position-independent), so that a vector constant is an operand of the instruction using
# it (`vfmadd231ps .LCPI0_4(%rip){1to16}, ...`). MCJIT's default, the large code model,
# first loaded each constant's 64-bit address into a register and then broadcast it, and
# LLVM redid both inside loops whenever registers ran short: the elementwise chain's loop
# (sigmoid and tanh) was 92 instructions a vector, 72 this way, 8.1-9.4 -> 6.7-7.1 ms on
# 16M floats.
# A rip-relative operand reaches +-2 GiB only, so every engine loads code through
# llvmlite's memory manager, which allocates an object's sections in one block (without
# it, RuntimeDyld could place a constant pool beyond a 32-bit offset of its code); symbols
# outside the object are reached through its GOT (_calls_through_the_got, _not_local).
CODE_MODEL, RELOCATION = "small", "pic"


def new_target_machine():
    """A target machine for the host CPU. An MCJIT engine takes ownership of (and frees) the
    one it is given, so each engine gets its own."""
    llvm.initialize_native_target()
    llvm.initialize_native_asmprinter()
    target = llvm.Target.from_default_triple()
    return target.create_target_machine(
        cpu=cpu_name(),
        features=features(),
        opt=3,
        codemodel=CODE_MODEL,
        reloc=RELOCATION,
    )


def new_engine(module):
    """An MCJIT engine for `module` (which it takes ownership of), its code within reach of
    its constants (see CODE_MODEL)."""
    return llvm.create_mcjit_compiler(module, new_target_machine(), use_lmm=True)


class InvalidIR(RuntimeError):
    """The module's text does not parse, or the module does not verify."""


def parse(ir_text: str):
    """The module, parsed and verified (InvalidIR if it does not)."""
    try:
        module = llvm.parse_assembly(ir_text)
        module.verify()
    except RuntimeError as e:
        raise InvalidIR(str(e)) from None
    return module


def prepare(module, tm) -> None:
    """Target the module at the machine: its triple and data layout, and calls that leave
    the object through the GOT (see _calls_through_the_got)."""
    module.triple = tm.triple
    module.data_layout = str(tm.target_data)
    _calls_through_the_got(module)


# llvmlite's memory manager allocates only what RuntimeDyld reserved for an object, and
# RuntimeDyld counts a GOT entry for each GOT-relative relocation but not the one it adds
# for the stub of a PLT call to a symbol outside the object: a part calling BLAS and another
# part's kernels ran out of room and aborted. Calls marked `nonlazybind`, and the calls
# codegen makes itself (memset, memcpy) with RtLibUseGOT, load their target from the GOT
# instead (`call *sgemm_@GOTPCREL(%rip)`), which RuntimeDyld counts.
_GOT_FLAG = '!llvm.module.flags = !{!0}\n!0 = !{i32 7, !"RtLibUseGOT", i32 1}\n'


def _calls_through_the_got(module) -> None:
    for fn in module.functions:
        if not fn.name.startswith("llvm."):  # (intrinsics are never called)
            fn.add_function_attribute("nonlazybind")
    flag = llvm.parse_assembly(_GOT_FLAG)
    flag.triple, flag.data_layout = module.triple, module.data_layout
    module.link_in(flag)


def _pass_builder(tm):
    pto = llvm.create_pipeline_tuning_options(speed_level=3)
    pto.loop_vectorization = True
    pto.slp_vectorization = True
    # Unrolling and interleaving made the MLP training step compile 25% slower and ran
    # no faster on kernels that already use 512-bit vectors; so they stay off.
    pto.loop_unrolling = False
    pto.loop_interleaving = False
    return llvm.create_pass_builder(tm, pto)


# A module that defines a global variable of this name is compiled without the O3 IR
# pipeline (code generation still optimises for the machine): one written as the machine
# code should be -- explicit vectors, values in registers, loops it wants (sgemm.py) --
# gains nothing from it (the same speed and bits), and it was 0.19 s of that module's
# 0.45 s compile.
CODEGEN_ONLY = "graphjit.codegen_only"


def wants_ir_pipeline(module) -> bool:
    return not any(g.name == CODEGEN_ONLY for g in module.global_variables)


def optimise(module, tm) -> None:
    """The whole module's pipeline, in place: plan() (with its merging) for one part, then
    O3 (unless the module is CODEGEN_ONLY)."""
    builder = _pass_builder(tm)
    plan(module, tm, 1, builder).restrict(module, 0)
    if wants_ir_pipeline(module):
        builder.getModulePassManager().run(module, builder)


class Plan:
    """How a module (after plan()'s merging) is compiled: `parts` objects; `owner` maps each
    function or global variable that one part defines (and the others only refer to) to
    that part; `out_of_line` names the big local functions kept out of line."""

    def __init__(self, parts: int, owner: dict, out_of_line: list):
        self.parts, self.owner, self.out_of_line = parts, owner, out_of_line

    def restrict(self, module, part: int) -> None:
        """Make `module` part `part`: the definitions it owns, external; the others' only
        available to optimise against."""
        for name in self.out_of_line:
            module.get_function(name).add_function_attribute("noinline")
        if self.parts == 1:
            return
        for value in list(module.functions) + list(module.global_variables):
            owner = self.owner.get(value.name)
            if owner is None or value.is_declaration:
                continue  # copied into every part that uses it (unused copies are dropped)
            if owner == part:
                value.linkage = "external"  # (a kernel, a constant: other parts refer to it)
            else:
                value.linkage = "available_externally"
                if value.is_function:  # no pass spends time on it; its body is dropped
                    value.add_function_attribute("noinline")
                    value.add_function_attribute("optnone")


def may_split(ir_text: str) -> bool:
    """Whether plan() could split the module at all (two big local functions), judged from
    its text without LLVM: what the parent asks before it involves a second worker. (An
    upper bound: merging can only make fewer parts; functions whose attributes this cannot
    see count as not always-inline, so it errs towards one part.)"""
    texts, inline, local = {}, set(), set()
    for match in _DEFINE.finditer(ir_text):
        header, name = match.group(1), _unquote(match.group(2))
        end = ir_text.find("\n}", match.end())
        texts[name] = ir_text[match.start() : end if end >= 0 else len(ir_text)]
        line_end = ir_text.find("\n", match.end())
        if "alwaysinline" in ir_text[match.end() : line_end].split():
            inline.add(name)
        if "internal " in header or "private " in header:
            local.add(name)
    sizes: dict = {}
    big = [
        size
        for name in texts
        if name in local
        and name not in inline
        and (size := _size(name, texts, inline, sizes)) >= OUT_OF_LINE_SIZE
    ]
    return _part_count(big, max_parts=len(big)) > 1


def plan(module, tm, max_parts: int, builder=None) -> Plan:
    """Merge identical functions (after constant propagation into them) and plan the module
    as at most `max_parts` parts. Deterministic: every worker that plans the same module
    with the same `max_parts` gets the same plan, and compiles its own part of it."""
    builder = builder or _pass_builder(tm)
    merge = llvm.create_new_module_pass_manager()
    merge.add_ipsccp_pass()  # first: bounds in the bodies keep differently sized kernels apart
    merge.add_merge_functions_pass()
    merge.run(module, builder)

    definitions = [f for f in module.functions if not f.is_declaration]
    inline = {f.name for f in definitions if _always_inline(f)}
    candidates = [f.name for f in definitions if _local(f) and f.name not in inline]
    if len(candidates) < 2:
        return Plan(1, {}, [])  # (the common case, without printing a function)
    texts = {f.name: str(f) for f in definitions if f.name in inline or _local(f)}
    sizes: dict = {}
    big = [name for name in candidates if _size(name, texts, inline, sizes) >= OUT_OF_LINE_SIZE]
    if len(big) < 2:
        return Plan(1, {}, [])
    parts = _part_count([sizes[name] for name in big], max_parts)
    if parts > 1 and any(
        not v.name for v in list(module.functions) + list(module.global_variables)
    ):
        parts = 1  # an unnamed definition cannot be referred to from another part
    owner: dict = {}
    if parts > 1:
        # Part 0 holds the module's interface (its external definitions) and its global
        # variables, so that each is defined once; the big functions are spread, largest
        # first, each to the part with the least so far (ties: the lowest part).
        load = [0] * parts
        for f in definitions:
            if not _local(f):
                owner[f.name] = 0
                texts[f.name] = str(f)
                load[0] += _size(f.name, texts, inline, sizes)
        for g in module.global_variables:
            if not g.is_declaration:
                owner[g.name] = 0
        for name in sorted(big, key=lambda name: -sizes[name]):  # (stable: module order)
            part = min(range(parts), key=lambda p: load[p])
            owner[name] = part
            load[part] += sizes[name]
    return Plan(parts, owner, big)


def _part_count(big_sizes: list, max_parts: int) -> int:
    """Parts for big functions of these sizes: one per PART_MIN_SIZE, at most one per
    function and `max_parts`."""
    return max(1, min(max_parts, len(big_sizes), sum(big_sizes) // PART_MIN_SIZE))


def _always_inline(f) -> bool:
    return any(b"alwaysinline" in a.split() for a in f.attributes)


def _local(value) -> bool:
    return value.linkage in (llvm.Linkage.internal, llvm.Linkage.private)


# A reference to a global in LLVM's printed IR: @name or @"quoted name", then a call's "(";
# and the start of a function's definition (its linkage and the rest before the name).
_CALLEE = re.compile(r'@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)\(')
_DEFINE = re.compile(r'^define ([^@\n]*)@("(?:[^"\\]|\\.)*"|[-a-zA-Z$._0-9]+)\(', re.M)


def _unquote(name: str) -> str:
    return name[1:-1] if name.startswith('"') else name


def _size(name: str, texts: dict, inline: set, sizes: dict) -> int:
    """Instructions in the function, counting those of the always-inline functions it calls
    (their bodies end up in it) once per call."""
    if name in sizes:
        return sizes[name]
    sizes[name] = 0  # (a recursive call counts nothing more)
    text = texts[name]
    size = text.count("\n  ")  # one instruction per indented line
    for callee in map(_unquote, _CALLEE.findall(text)):
        if callee in inline and callee != name:
            size += _size(callee, texts, inline, sizes)
    sizes[name] = size
    return size


def compile_object(ir_text: str, tm, part: int = 0, max_parts: int = 1) -> tuple[int, bytes]:
    """(How many parts the module is compiled as, part `part`'s object code): the module
    parsed, verified, planned as at most `max_parts` parts (plan()), restricted to the
    part, optimised and compiled for the machine. An empty object if there is no such
    part. (What the compile worker does with each request.)"""
    module = parse(ir_text)
    try:
        prepare(module, tm)
        builder = _pass_builder(tm)
        layout = plan(module, tm, max_parts, builder)
        if part >= layout.parts:
            return layout.parts, b""
        layout.restrict(module, part)
        if layout.parts > 1:
            module = _not_local(module)
        if wants_ir_pipeline(module):
            builder.getModulePassManager().run(module, builder)
        return layout.parts, tm.emit_object(module)
    finally:
        module.close()


# A function or constant that another part defines was local (`internal`) when restrict()
# made it `available_externally`, and LLVM keeps a local value's `dso_local` through that
# change: this part's code would then reach it directly, a 32-bit offset to another
# object's code (a PLT call whose stub RuntimeDyld does not reserve room for, or data out
# of reach). Without `dso_local` it goes through the GOT. llvmlite cannot clear the flag, so
# the part is printed without it and parsed again.
_LOCAL_ELSEWHERE = re.compile(r"\bavailable_externally dso_local\b")


def _not_local(module):
    text = _LOCAL_ELSEWHERE.sub("available_externally", str(module))
    module.close()
    return llvm.parse_assembly(text)
