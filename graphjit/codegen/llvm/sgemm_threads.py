"""One float32 matrix product split over graphjit's threads by sgemm.py's kernel, with the
operand every part shares packed once, and a worker that loses its core holding up nothing.

Why: split as blocks that each call the single-threaded kernel (blas.split_matmul), every
block packs the whole operand it does not split, and the caller waits for each block a
worker took. On a machine where another process is busy, a worker shares its core with it
and is preempted for milliseconds at a time, often inside its block: the MLP's forward
pass ran as slowly on two threads as on one (medians 6.0-6.8 against 5.9-6.1 ms; quiet 3.0
against 5.9).

    void graphjit_sgemm_threads(transa, transb, M, N, K, alpha, A, lda, B, ldb, beta, C, ldc)

has the Fortran interface of sgemm.py's entry. Where it takes a product (`takes`: C at
least two chunks of CHUNK_ROWS rows, NR to NC columns, MIN_MACS multiply-adds), the caller
packs op(B) whole, once, into the job; C's rows are cut into chunks of CHUNK_ROWS, which
the caller and the pool's workers (pool.py) claim from a counter, each packing its rows of
op(A) and running the micro-kernels over all of op(B). Elsewhere, or on one thread, it
calls the single-threaded entry.

A worker must never make the caller wait for its core. It leaves the pool's job as it
joins (pool.LEAVE), computes a chunk into a scratch of its own, and copies the chunk into C
only if it still holds it (CLAIMED -> COMMITTING, a compare-and-swap). The caller, out of
chunks to claim, gives a worker's chunk about twice the time it should take
(PATIENCE_MACS_PER_CYCLE), then takes it back (-> CALLER) and computes it into C itself.
What a worker touches of the caller's (A while it packs, C while it copies) it touches
under a lease, taken only while the job is open and the chunk still its own; the caller
closes the job and waits for the leases to end before it returns, so from then on a late
worker reads only the job (packed B, the chunks' states), which whoever lets go of it last
frees. A lease covers microseconds of a chunk's ~100, so a preempted worker rarely holds
the caller up at all.

Same bits: each element is computed by sgemm.py's operations in its order, whoever
computes it (a worker's scratch starts as C's rows where beta is not 0), so results do not
depend on the thread count or on which thread computed which chunk."""

from __future__ import annotations

import ctypes
import functools
import threading

import llvmlite.binding as llvm
from llvmlite import ir

from graphjit.codegen.llvm import jit, parallel, pool, sgemm
from graphjit.codegen.llvm import types as T
from graphjit.codegen.llvm.loops import for_range
from graphjit.codegen.llvm.sgemm import F32, FP, I1, I64, KC, MIN_MACS, MR, NC, NR

SYMBOL = "graphjit_sgemm_threads"
CHUNK_ROWS = 2 * MR  # the MLP's 1024 x 128 products: 16 chunks of ~80 us
MAX_PACKED_B = 1 << 24  # floats of op(B) the job may hold (64 MiB); larger: not taken
# The caller waits for a worker's chunk for (its multiply-adds / this) cycles of the
# time-stamp counter before it takes it back: the kernel does ~29 a cycle, so about
# twice the chunk's time (~150 us for the MLP's).
PATIENCE_MACS_PER_CYCLE = 16
CALLER_SPIN = 128  # pauses before the caller, waiting for a lease to end, yields instead
FREE, CLAIMED, CALLER, COMMITTING, DONE = range(5)  # a chunk's states

# Tests make a worker late (it sleeps this long after each claim) and count the chunks
# callers took back: process-wide cells the module reads and writes by name.
_stall_us = ctypes.c_int64(0)
_taken_back = ctypes.c_int64(0)
_STALL, _TAKEN_BACK = "graphjit_sgemm_stall_us", "graphjit_sgemm_taken_back"
llvm.add_symbol(_STALL, ctypes.addressof(_stall_us))
llvm.add_symbol(_TAKEN_BACK, ctypes.addressof(_taken_back))

_lock = threading.Lock()
_kept: list = []  # the compiled module, alive for the life of the process


def takes(m: int, n: int, k: int) -> bool:
    """Whether the entry splits an M x N x K product (Fortran sizes); emit_takes at run
    time (emit_takes). n * k >= MIN_MACS / m rather than m * n * k >= MIN_MACS: no overflow."""
    if m < 2 * CHUNK_ROWS or not NR <= n <= NC or k < 1:
        return False
    return k <= MAX_PACKED_B // _round_up(n, NR) and n * k >= -(-MIN_MACS // m)


def _round_up(value: int, multiple: int) -> int:
    return -(-value // multiple) * multiple


@functools.cache
def addresses(fallback: str, fallback_width: int) -> dict[str, int]:
    """{symbol: address} of the single-threaded entry (sgemm.SYMBOL) and, where the pool
    runs here, the threaded one, compiled (or loaded from the compile caches) on the first
    call; see sgemm.build for the fallback."""
    with _lock:
        module = ir.Module(name="graphjit_sgemm")
        module.triple = llvm.get_process_triple()
        parts = sgemm.build(module, fallback, fallback_width)
        threaded = pool.ensure()
        if threaded:
            parallel.num_threads()  # (the cell holds the configured count)
            _entry(module, parts)
        compiled = jit.compile_module(str(module))
        _kept.append(compiled)
        symbols = (sgemm.SYMBOL, SYMBOL) if threaded else (sgemm.SYMBOL,)
        return {symbol: compiled.address(symbol) for symbol in symbols}


def taken_back() -> int:
    """Chunks callers have taken back from workers in this process."""
    return _taken_back.value


def _i(v: int):
    return ir.Constant(I64, v)


def _job_type(fields) -> ir.LiteralStructType:
    special = {"alpha": F32, "beta": F32, "a": FP, "c": FP, "packed_b": FP, "caller_a": FP}
    special.update(states=I64.as_pointer(), raw=T.I8P, transposed=I1)
    pad = ir.ArrayType(I64, 7)  # (with its counter, a 64-byte line)
    return ir.LiteralStructType(
        [pad if f.startswith("pad") else special.get(f, I64) for f in fields]
    )


class _Job:
    """The job's memory: the counters the threads contend for on lines of their own, then
    the product. One allocation with the chunks' states, packed op(B) and the caller's
    packing buffer after it; freed by the last of its holders (`refs`)."""

    FIELDS = (
        *("refs", "pad0", "next", "pad1", "leases", "pad2", "closed", "pad3"),
        *("chunks", "caller", "transposed", "m", "n", "k", "lda", "ldc", "n_round"),
        *("alpha", "beta", "a", "c", "packed_b", "states", "caller_a", "raw"),
    )
    TYPE = _job_type(FIELDS)
    BYTES = 512  # (at least TYPE's size, a multiple of 64)

    def __init__(self, b: ir.IRBuilder, pointer):
        self.b, self.ptr = b, pointer

    def at(self, name: str):
        return self.b.gep(self.ptr, [_i(0), ir.Constant(T.I32, self.FIELDS.index(name))])

    def __getattr__(self, name: str):
        return self.b.load(self.at(name))

    def state(self, c):
        return self.b.gep(self.states, [c])


def _function(module, name, ret, args, names):
    fn = ir.Function(module, ir.FunctionType(ret, args), name)
    fn.linkage = "internal"
    for arg, n in zip(fn.args, names, strict=True):
        arg.name = n
    return fn, ir.IRBuilder(fn.append_basic_block("entry"))


def _libc(module, name, ret, args):
    return T.external_function(module, name, ret, args)


def _pause(b):
    b.call(_libc(b.module, "llvm.x86.sse2.pause", ir.VoidType(), []), [])


def _add(b, ptr, value: int, order="seq_cst"):
    """The atomic add's old value."""
    return b.atomic_rmw("add", ptr, _i(value), order)


def _spin_until(b, done_test, name: str) -> None:
    """Loop until done_test(b) (an i1): pause CALLER_SPIN times, then yield each time."""
    fn = b.function
    with b.goto_entry_block():
        count = b.alloca(I64)
    b.store(_i(0), count)
    test, wait, done = (fn.append_basic_block(f"{name}.{s}") for s in ("test", "wait", "done"))
    b.branch(test)
    b.position_at_end(test)
    b.cbranch(done_test(b), done, wait)
    b.position_at_end(wait)
    n = b.load(count)
    b.store(b.add(n, _i(1)), count)
    with b.if_else(b.icmp_unsigned("<", n, _i(CALLER_SPIN))) as (spin, give_up):
        with spin:
            _pause(b)
        with give_up:
            b.call(_libc(b.module, "sched_yield", T.I32, []), [])
    b.branch(test)
    b.position_at_end(done)


def _entry(module, parts: sgemm.Parts) -> None:
    job_ptr = _Job.TYPE.as_pointer()
    lease, commit = _lease_function(module, job_ptr), _commit_function(module, job_ptr)
    chunk = _chunk_function(module, parts, job_ptr, lease)
    release = _release_function(module, job_ptr)
    task = _task_function(module, job_ptr, chunk, commit, release)
    fn = ir.Function(module, parts.entry.function_type, SYMBOL)
    b = ir.IRBuilder(fn.append_basic_block("entry"))
    ta_p, tb_p, m_p, n_p, k_p, alpha_p, a, lda_p, bm, ldb_p, beta_p, c, ldc_p = fn.args
    m, n, k, lda, ldb, ldc = (b.load(x) for x in (m_p, n_p, k_p, lda_p, ldb_p, ldc_p))
    alpha = b.load(alpha_p)
    cell = T.external_global(module, parallel.THREADS_SYMBOL, I64)
    threads = b.load_atomic(cell, "monotonic", 8)
    split = b.and_(b.icmp_signed(">", threads, _i(1)), emit_takes(b, m, n, k))
    split = b.and_(split, b.fcmp_unordered("!=", alpha, ir.Constant(F32, 0.0)))
    with b.if_then(b.not_(split)):
        b.call(parts.entry, fn.args)
        b.ret_void()

    chunks = b.udiv(b.add(m, _i(CHUNK_ROWS - 1)), _i(CHUNK_ROWS))
    n_round = _emit_round_up(b, n, NR)
    states_bytes = _emit_round_up(b, b.mul(chunks, _i(8)), 64)
    b_bytes = _emit_round_up(b, b.mul(b.mul(k, n_round), _i(4)), 64)
    a_bytes = CHUNK_ROWS * KC * 4
    size = b.add(b.add(_i(_Job.BYTES + 64 + a_bytes), states_bytes), b_bytes)
    raw = b.call(_libc(module, "malloc", T.I8P, [I64]), [size])
    with b.if_then(b.icmp_unsigned("==", raw, ir.Constant(T.I8P, None))):
        b.call(parts.entry, fn.args)  # (it computes without buffers if it must)
        b.ret_void()
    base = b.and_(b.add(b.ptrtoint(raw, I64), _i(63)), _i(-64))
    job = _Job(b, b.inttoptr(base, job_ptr))

    def region(offset):
        return b.inttoptr(b.add(base, offset), FP)

    states = b.inttoptr(b.add(base, _i(_Job.BYTES)), I64.as_pointer())
    packed_b = region(b.add(_i(_Job.BYTES), states_bytes))
    caller_a = region(b.add(b.add(_i(_Job.BYTES), states_bytes), b_bytes))
    self_id = b.call(_libc(module, "pthread_self", I64, []), [])
    values = {"refs": _i(1), "next": _i(0), "leases": _i(0), "closed": _i(0)}
    values.update(chunks=chunks, caller=self_id, transposed=sgemm._is_transposed(b, ta_p))
    values.update(m=m, n=n, k=k, lda=lda, ldc=ldc, n_round=n_round, alpha=alpha)
    values.update(beta=b.load(beta_p), a=a, c=c, packed_b=packed_b, states=states)
    values.update(caller_a=caller_a, raw=raw)
    for name, value in values.items():
        b.store(value, job.at(name))
    with for_range(b, chunks, "state") as i:
        b.store(_i(FREE), b.gep(states, [i]))
    tb = sgemm._is_transposed(b, tb_p)
    with for_range(b, k, "pc", step=KC) as pc:  # op(B) whole, a block of KC rows at a time
        kc = sgemm._min(b, _i(KC), b.sub(k, pc))
        to = b.gep(packed_b, [b.mul(pc, n_round)])
        b.call(parts.pack_b, [bm, ldb, tb, _i(0), n, pc, kc, to])
    threads = sgemm._min(b, threads, chunks)
    run = T.external_function(module, pool.RUN, ir.VoidType(), [pool.TASK, T.I8P, I64])
    b.call(run, [task, b.bitcast(job.ptr, T.I8P), threads])
    b.call(release, [job.ptr])
    b.ret_void()


def emit_takes(b, m, n, k):
    """takes(m, n, k) for i64 values of the run (dividing only by values of at least 1:
    a division by zero traps)."""
    width = b.select(b.icmp_signed("<", n, _i(NR)), _i(NR), sgemm._min(b, n, _i(NC)))
    n_round = _emit_round_up(b, width, NR)
    rows = b.select(b.icmp_signed("<", m, _i(1)), _i(1), m)
    at_least = b.sdiv(b.add(_i(MIN_MACS), b.sub(rows, _i(1))), rows)
    return _all(
        b,
        b.icmp_signed(">=", m, _i(2 * CHUNK_ROWS)),
        b.icmp_signed(">=", n, _i(NR)),
        b.icmp_signed("<=", n, _i(NC)),
        b.icmp_signed(">=", k, _i(1)),
        b.icmp_signed("<=", k, b.sdiv(_i(MAX_PACKED_B), n_round)),
        b.icmp_signed(">=", b.mul(n, k), at_least),
    )


def _all(b, *tests):
    result = tests[0]
    for test in tests[1:]:
        result = b.and_(result, test)
    return result


def _emit_round_up(b, value, multiple: int):
    return b.mul(b.sdiv(b.add(value, _i(multiple - 1)), _i(multiple)), _i(multiple))


def _lease_function(module, job_ptr):
    """i1 lease(job, c): enter a lease on the caller's memory while the job is open and
    chunk c still the worker's; false (and no lease) otherwise. End it: leases -= 1."""
    fn, b = _function(module, "sgemm.lease", I1, [job_ptr, I64], ("job", "c"))
    job = _Job(b, fn.args[0])
    _add(b, job.at("leases"), 1)
    is_open = b.icmp_unsigned("==", b.load_atomic(job.at("closed"), "seq_cst", 8), _i(0))
    mine = b.icmp_unsigned("==", b.load_atomic(job.state(fn.args[1]), "seq_cst", 8), _i(CLAIMED))
    ok = b.and_(is_open, mine)
    with b.if_then(b.not_(ok)):
        _add(b, job.at("leases"), -1)
    b.ret(ok)
    return fn


def _end_lease(job: _Job) -> None:
    _add(job.b, job.at("leases"), -1, "release")


def _copy(b, rows, cols, source, source_ld, target, target_ld) -> None:
    with for_range(b, cols, "copy.col") as j:
        with for_range(b, rows, "copy.row") as i:
            value = b.load(b.gep(source, [b.add(i, b.mul(j, source_ld))]))
            b.store(value, b.gep(target, [b.add(i, b.mul(j, target_ld))]))


def _chunk_rows(b, job: _Job, c):
    """(first row, rows) of chunk c."""
    first = b.mul(c, _i(CHUNK_ROWS))
    return first, sgemm._min(b, _i(CHUNK_ROWS), b.sub(job.m, first))


def _chunk_function(module, parts: sgemm.Parts, job_ptr, lease):
    """i1 chunk(job, c, target, ldt, packed_a, leased): chunk c's rows of C into `target`
    (where they are in C, or a worker's scratch: `leased`, reading A and C under leases);
    false if a lease was refused (the chunk taken back, or the job closed)."""
    args = [job_ptr, I64, FP, I64, FP, I1]
    names = ("job", "c", "target", "ldt", "packed_a", "leased")
    fn, b = _function(module, "sgemm.chunk", I1, args, names)
    job_arg, c, target, ldt, packed_a, leased = fn.args
    job = _Job(b, job_arg)
    first, rows = _chunk_rows(b, job, c)
    n, k, beta = job.n, job.k, job.beta
    keep = b.fcmp_unordered("!=", beta, ir.Constant(F32, 0.0))

    def leased_do(action):
        with b.if_else(leased) as (guarded, own):
            with guarded:
                with b.if_then(b.not_(b.call(lease, [job_arg, c]))):
                    b.ret(ir.Constant(I1, 0))
                action()
                _end_lease(job)
            with own:
                action()

    with b.if_then(b.and_(leased, keep)):  # the scratch starts as C's rows
        corner = b.gep(job.c, [first])
        leased_do(lambda: _copy(b, rows, n, corner, job.ldc, target, ldt))
    with for_range(b, k, "pc", step=KC) as pc:
        kc = sgemm._min(b, _i(KC), b.sub(k, pc))
        start = b.icmp_signed("==", pc, _i(0))
        read_c = b.or_(b.not_(start), keep)
        beta_now = b.select(start, beta, ir.Constant(F32, 1.0))
        pack = [job.a, job.lda, job.transposed, first, rows, pc, kc, packed_a]
        leased_do(lambda pack=pack: b.call(parts.pack_a, pack))
        panel = b.gep(job.packed_b, [b.mul(pc, job.n_round)])
        with for_range(b, n, "jr", step=NR) as jr:
            cols = sgemm._min(b, _i(NR), b.sub(n, jr))
            b_sliver = b.gep(panel, [b.mul(jr, kc)])
            with for_range(b, rows, "ir", step=MR) as ir_:
                height = sgemm._min(b, _i(MR), b.sub(rows, ir_))
                a_sliver = b.gep(packed_a, [b.mul(ir_, kc)])
                corner = b.gep(target, [b.add(ir_, b.mul(jr, ldt))])
                args = [kc, a_sliver, b_sliver, corner, ldt, height, cols]
                sgemm.call_narrowest(b, parts.kernels, cols, args + [job.alpha, beta_now, read_c])
    b.ret(ir.Constant(I1, 1))
    return fn


def _commit_function(module, job_ptr):
    """void commit(job, c, scratch): copy a worker's chunk into C if the job is open and
    the chunk still the worker's (CLAIMED -> COMMITTING -> DONE), else drop it."""
    fn, b = _function(
        module, "sgemm.commit", ir.VoidType(), [job_ptr, I64, FP], ("job", "c", "scratch")
    )
    job_arg, c, scratch = fn.args
    job = _Job(b, job_arg)
    _add(b, job.at("leases"), 1)
    with b.if_then(b.icmp_unsigned("==", b.load_atomic(job.at("closed"), "seq_cst", 8), _i(0))):
        swap = b.cmpxchg(job.state(c), _i(CLAIMED), _i(COMMITTING), "acq_rel", "monotonic")
        with b.if_then(b.extract_value(swap, 1)):
            first, rows = _chunk_rows(b, job, c)
            _copy(b, rows, job.n, scratch, _i(CHUNK_ROWS), b.gep(job.c, [first]), job.ldc)
            b.store_atomic(_i(DONE), job.state(c), "release", 8)
    _end_lease(job)
    b.ret_void()
    return fn


def _release_function(module, job_ptr):
    """void release(job): let go of the job; the last holder frees it."""
    fn, b = _function(module, "sgemm.release", ir.VoidType(), [job_ptr], ("job",))
    job = _Job(b, fn.args[0])
    raw = job.raw  # (read before letting go: after, another holder may free it)
    with b.if_then(b.icmp_unsigned("==", _add(b, job.at("refs"), -1, "acq_rel"), _i(1))):
        b.call(_libc(module, "free", ir.VoidType(), [T.I8P]), [raw])
    b.ret_void()
    return fn


def _task_function(module, job_ptr, chunk, commit, release):
    """i8* task(job): the pool's task. On the caller: its part, then null. On a worker:
    hold the job, leave the pool's job, its part, let go; non-null (it has left)."""
    fn, b = _function(module, "sgemm.task", T.I8P, [T.I8P], ("packet",))
    job = _Job(b, b.bitcast(fn.args[0], job_ptr))
    me = b.call(_libc(module, "pthread_self", I64, []), [])
    with b.if_then(b.icmp_unsigned("==", me, job.caller)):
        _caller_part(b, job, chunk)
        b.ret(ir.Constant(T.I8P, None))
    _add(b, job.at("refs"), 1)
    b.call(T.external_function(module, pool.LEAVE, ir.VoidType(), []), [])
    _worker_part(b, job, chunk, commit)
    b.call(release, [job.ptr])
    b.ret(b.inttoptr(_i(1), T.I8P))
    return fn


def _claim(b, job: _Job, state: int, on_chunk) -> None:
    """Claim chunks from the counter until none is left, each FREE -> `state`;
    on_chunk(c) for each claimed."""
    fn = b.function
    head, claim, out = (fn.append_basic_block(f"claim.{s}") for s in ("head", "take", "out"))
    b.branch(head)
    b.position_at_end(head)
    c = _add(b, job.at("next"), 1)
    b.cbranch(b.icmp_unsigned("<", c, job.chunks), claim, out)
    b.position_at_end(claim)
    swap = b.cmpxchg(job.state(c), _i(FREE), _i(state), "acq_rel", "monotonic")
    with b.if_then(b.extract_value(swap, 1)):
        on_chunk(c)
    b.branch(head)
    b.position_at_end(out)


def _caller_part(b, job: _Job, chunk) -> None:
    """Claim and compute chunks into C; then make sure of every chunk, taking back those
    a worker has held too long; close the job and wait for the leases to end."""
    module = b.module
    null_flag = ir.Constant(I1, 0)

    def compute(c):
        rows_of_c = b.gep(job.c, [b.mul(c, _i(CHUNK_ROWS))])
        b.call(chunk, [job.ptr, c, rows_of_c, job.ldc, job.caller_a, null_flag])

    _claim(b, job, CALLER, compute)
    patience = b.udiv(b.mul(_i(CHUNK_ROWS), b.mul(job.n, job.k)), _i(PATIENCE_MACS_PER_CYCLE))
    clock = _libc(module, "llvm.readcyclecounter", I64, [])
    fn = b.function
    with for_range(b, job.chunks, "check") as c:
        since = b.call(clock, [])
        look, wait, take, next_ = (
            fn.append_basic_block(f"check.{s}") for s in ("look", "wait", "take", "next")
        )
        b.branch(look)
        b.position_at_end(look)
        state = b.load_atomic(job.state(c), "acquire", 8)
        finished = b.or_(
            b.icmp_unsigned("==", state, _i(CALLER)), b.icmp_unsigned("==", state, _i(DONE))
        )
        held = b.icmp_unsigned("==", state, _i(CLAIMED))
        patient = b.icmp_unsigned("<", b.sub(b.call(clock, []), since), patience)
        waits = b.or_(b.icmp_unsigned("==", state, _i(COMMITTING)), b.and_(held, patient))
        b.cbranch(finished, next_, wait)
        b.position_at_end(wait)
        with b.if_then(waits):
            _pause(b)
            b.branch(look)
        swap = b.cmpxchg(job.state(c), state, _i(CALLER), "acq_rel", "monotonic")
        b.cbranch(b.extract_value(swap, 1), take, look)
        b.position_at_end(take)
        with b.if_then(held):
            _add(b, T.external_global(module, _TAKEN_BACK, I64), 1, "monotonic")
        compute(c)
        b.branch(next_)
        b.position_at_end(next_)
    b.store_atomic(_i(1), job.at("closed"), "seq_cst", 8)
    _spin_until(
        b,
        lambda b: b.icmp_unsigned("==", b.load_atomic(job.at("leases"), "seq_cst", 8), _i(0)),
        "leases",
    )


def _worker_part(b, job: _Job, chunk, commit) -> None:
    """Claim chunks, compute each into scratch, commit it; with no buffers, nothing."""
    module = b.module
    scratch_floats = b.mul(_i(CHUNK_ROWS), job.n)
    size = b.mul(b.add(scratch_floats, _i(CHUNK_ROWS * KC + 16)), _i(4))
    raw = b.call(_libc(module, "malloc", T.I8P, [I64]), [size])
    with b.if_then(b.icmp_unsigned("!=", raw, ir.Constant(T.I8P, None))):
        aligned = b.and_(b.add(b.ptrtoint(raw, I64), _i(63)), _i(-64))
        packed_a = b.inttoptr(aligned, FP)
        scratch = b.gep(packed_a, [_i(CHUNK_ROWS * KC)])
        stall = T.external_global(module, _STALL, I64)
        usleep = _libc(module, "usleep", T.I32, [T.I32])

        def compute(c):
            late = b.load_atomic(stall, "monotonic", 8)
            with b.if_then(b.icmp_signed(">", late, _i(0))):
                b.call(usleep, [b.trunc(late, T.I32)])
            done = b.call(
                chunk, [job.ptr, c, scratch, _i(CHUNK_ROWS), packed_a, ir.Constant(I1, 1)]
            )
            with b.if_then(done):
                b.call(commit, [job.ptr, c, scratch])

        _claim(b, job, CLAIMED, compute)
        b.call(_libc(module, "free", ir.VoidType(), [T.I8P]), [raw])
