"""Optimisation and code generation in a recycled worker process.

Why: llvmlite 0.50 never frees the instrumentation callbacks that each run of the O3
pipeline registers (70-110 KiB per module optimised, for the life of the process), and an
LLVM fatal error (an abort or an assertion) ends the whole process. So by default the
parent (jit.py) parses and verifies a module itself, then sends its IR to a worker
process, which optimises it with the pipeline and target machine of target.py and returns
the object code; the parent's MCJIT engine loads that object through its object cache
(the path a disk-cached object takes too).

- Recycling: the worker is replaced after RECYCLE_AFTER compiles, or as soon as its
  resident memory passes MAX_RSS, so what it leaks stays bounded; the next compile starts
  a new one.
- Crashes: a worker that dies while compiling (LLVM abort, a signal, killed) makes that
  compile a CompileError (a BackendError to the user) naming the exit status or signal
  and the end of its stderr; the next compile starts a fresh worker. A worker found dead
  between compiles is replaced silently. A worker that cannot start at all (it dies
  before saying it is ready) makes compile_object raise WorkerUnavailable: jit.py then
  compiles in its own process, with a warning.
- Stuck workers: a worker that does not answer within the compile timeout (stopped by
  SIGSTOP, or wedged) is killed and the module sent to a fresh worker, once; if that one
  does not answer either, the compile is a CompileError saying so. The timeout is
  GRAPHJIT_COMPILE_TIMEOUT seconds (default 60; config.py) plus one second per
  IR_BYTES_PER_SECOND bytes of IR, so a large module gets longer.
- Threads: one compile at a time (under a lock; jit.py compiles under its own lock too).
- Large modules, in parts (issue 18): IR of SPLIT_MIN_BYTES or more with two or more big
  kernels (target.may_split) is compiled as several parts (target.plan: the kernels spread
  over up to PARTS_PER_WORKER parts per worker), each part by whichever of up to
  MAX_WORKERS workers is free: the first worker (slot 0, the one prestart() starts) and
  helpers started for the first such module and kept like it (recycled, replaced, stopped
  at exit). Each worker plans the module itself (the plan is deterministic) and says with
  each object how many parts there are, so parts are handed out in order until that count
  is reached (a part past it is an empty object). A helper that cannot start leaves its
  parts to the first worker (and later modules are compiled whole); a helper that dies or
  hangs fails the compile as the first worker would. The result is the objects of all
  parts, in order, which jit.py loads into one engine.
- Processes: the worker belongs to the process that started it. A forked child closes its
  copies of the socket and the stderr file (os.register_at_fork) and starts its own worker
  when it compiles; at exit the worker is told to stop and reaped (atexit).

Protocol, over a socket pair that is the worker's stdin and stdout (the worker takes
private copies of fds 0 and 1 and points fd 1 at stderr, so that nothing else can write
into the protocol):

    worker -> parent, once at start:  REPLY(READY, rss, 0)
    parent -> worker:  REQUEST(COMPILE, n) + PART(part, max_parts) + LLVM IR (UTF-8), n
                       bytes in all
    worker -> parent:  REPLY(OK, rss, n) + PARTS(parts) + object code of that part, n
                       bytes in all (no object code if part >= parts)
                       or REPLY(FAILED, rss, n) + n bytes of error message (UTF-8)
    parent -> worker:  REQUEST(EXIT, 0), or end of input: the worker exits with status 0

The worker runs by file path, ``python -I -S compile_worker.py LLVMLITE_DIR``: it imports
the standard library, llvmlite (from the directory the parent found it in) and target.py
(by path), not the graphjit package or NumPy, and starts in about 0.1-0.2 s (mostly
loading LLVM's shared library).

The first worker starts before the first lowering (prestart(), whose start-up overlaps the
lowering), and again before each later one if it is gone. Not when this module is
imported: gj.set_num_threads loads the LLVM package too, and an eager program that calls it
should not get an idle compile process.

GRAPHJIT_COMPILE_WORKER=0 turns the worker off (jit.py optimises in its own process, as
it also does when GRAPHJIT_DUMP_LLVM or GRAPHJIT_DUMP_ASM asks for the optimised IR or
assembly)."""

from __future__ import annotations

import atexit
import os
import signal
import socket
import struct
import subprocess
import sys
import tempfile
import threading
import time

RECYCLE_AFTER = 128  # compiles per worker
MAX_RSS = 512 << 20  # bytes: a worker this large is replaced after its current compile
STARTUP_TIMEOUT = 60.0  # seconds for a new worker to say it is ready
IR_BYTES_PER_SECOND = 50_000  # the compile timeout grows by a second per this much IR

REQUEST = struct.Struct("<BQ")  # op, payload length
REPLY = struct.Struct("<BQQ")  # status, the worker's resident memory, payload length
PART = struct.Struct("<II")  # a COMPILE request's part and the most parts it may plan
PARTS = struct.Struct("<I")  # an OK reply's count of parts the module is compiled as
COMPILE, EXIT = 1, 2
READY, OK, FAILED = 0, 1, 2
_STDERR_TAIL = 2000  # characters of a dead worker's stderr quoted in the error


def _cpus() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        return os.cpu_count() or 1


# Workers that compile the parts of one large module at once: one per core, at most 4 (each
# is a process of ~100 MiB, most of it LLVM's shared library).
MAX_WORKERS = min(4, _cpus())
# IR smaller than this is compiled as one part by the first worker without a look at its
# text: too small to have two kernels worth a helper's start (0.1-0.2 s). Larger IR is
# split when target.may_split says that it has two or more big functions. (The chain of
# issue 18 is ~64 bytes of IR per elementwise op: N = 1000 is 64 kB, 16 kB is N ~ 250.)
SPLIT_MIN_BYTES = 16_000
PARTS_PER_WORKER = 2  # parts to hand out per worker: a helper that starts late takes fewer

spawns = 0  # workers started by this process (the tests count recycling with it)


class CompileError(RuntimeError):
    """The worker could not compile the module: its error, or how it died."""


class WorkerUnavailable(CompileError):
    """No worker could be started here (compile in this process instead)."""


class WorkerStuck(CompileError):
    """The worker did not answer within the compile timeout (stopped or wedged); it was
    killed."""


def enabled() -> bool:
    from graphjit import config  # (not at the top: the worker itself runs without graphjit)

    return config.compile_worker()


def compile_timeout(ir_bytes: int) -> float:
    """Seconds a worker may take over a module of `ir_bytes` bytes of IR before it is taken
    to be stuck: GRAPHJIT_COMPILE_TIMEOUT (a ConfigError if it is not a number > 0), plus
    a second per IR_BYTES_PER_SECOND bytes."""
    from graphjit import config

    return config.compile_timeout() + ir_bytes / IR_BYTES_PER_SECOND


# ---- the parent's side ------------------------------------------------------------------------


class Worker:
    """One worker process, the parent's end of the socket it talks over (a socket, not pipes:
    a send to a dead worker is an error, never a SIGPIPE, whatever the process did with that
    signal) and the file its stderr goes to."""

    def __init__(self):
        if not sys.executable or getattr(sys, "frozen", False):
            raise WorkerUnavailable("no Python interpreter to start a compile worker with")
        self.owner = os.getpid()
        self.compiles = 0
        self.ready = False
        self._deadline: float | None = None  # (time.monotonic) for the current exchange
        self.stderr, stderr_path = tempfile.mkstemp(prefix="graphjit-worker-", suffix=".err")
        os.unlink(stderr_path)
        self.sock, theirs = socket.socketpair()
        try:
            self.proc = subprocess.Popen(
                _command(), stdin=theirs, stdout=theirs, stderr=self.stderr, close_fds=True
            )
        except OSError as e:
            self._close()
            raise WorkerUnavailable(f"could not start the LLVM compile worker: {e}") from None
        finally:
            theirs.close()
        global spawns
        spawns += 1

    @property
    def pid(self) -> int:
        return self.proc.pid

    def compile(
        self, ir_text: str, timeout: float | None = None, part: int = 0, max_parts: int = 1
    ) -> tuple[int, bytes]:
        """(The count of parts the module is compiled as, part `part`'s object code; empty
        past the last part), or CompileError: the worker's error (it stays), how it died (it
        is gone), or WorkerStuck if it did not answer within `timeout` seconds (killed)."""
        payload = PART.pack(part, max_parts) + ir_text.encode()
        if timeout is None:
            timeout = compile_timeout(len(payload))
        try:
            if not self.ready:
                self._deadline = time.monotonic() + STARTUP_TIMEOUT
                try:
                    self._read_reply(expect_ready=True)
                except TimeoutError:
                    self.kill()
                    raise WorkerUnavailable(
                        f"the LLVM compile worker (pid {self.pid}) did not start within "
                        f"{STARTUP_TIMEOUT:g} s"
                    ) from None
                self.ready = True
            self._deadline = time.monotonic() + timeout
            try:
                self._send(REQUEST.pack(COMPILE, len(payload)) + payload)
                status, rss, data = self._read_reply()
            except TimeoutError:
                self.kill()
                raise WorkerStuck(
                    f"the LLVM compile worker (pid {self.pid}) did not answer within "
                    f"{timeout:.3g} s (stopped, or stuck on this module) and was killed"
                ) from None
            finally:
                self._deadline = None
        except (EOFError, OSError):  # it died (a send to a dead worker is an OSError too)
            raise self._died() from None
        except (WorkerUnavailable, WorkerStuck):
            raise
        except BaseException:  # e.g. KeyboardInterrupt mid-request: out of step, so stop it
            self.kill()
            raise
        self.compiles += 1
        if self.compiles >= RECYCLE_AFTER or rss > MAX_RSS:
            self.stop()
        if status != OK:
            raise CompileError(data.decode(errors="replace"))
        if len(data) < PARTS.size:
            raise CompileError("the LLVM compile worker broke the protocol (a short reply)")
        (parts,) = PARTS.unpack_from(data)
        return parts, data[PARTS.size :]

    def alive(self) -> bool:
        return self.sock is not None and self.proc.poll() is None

    def _send(self, data: bytes) -> None:
        """Send all of `data` (TimeoutError past the deadline: a stopped worker does not
        empty the socket's buffer)."""
        self.sock.settimeout(self._time_left())
        self.sock.sendall(data, getattr(socket, "MSG_NOSIGNAL", 0))

    def _time_left(self) -> float:
        """Seconds to the current deadline (TimeoutError if it has passed); 5 s outside
        an exchange (the EXIT request on stopping)."""
        if self._deadline is None:
            return 5.0
        left = self._deadline - time.monotonic()
        if left <= 0:
            raise TimeoutError
        return left

    def _read_reply(self, expect_ready: bool = False):
        status, rss, n = REPLY.unpack(self._receive(REPLY.size))
        data = self._receive(n)
        if (status == READY) != expect_ready:
            raise CompileError(f"the LLVM compile worker broke the protocol (status {status})")
        return status, rss, data

    def _receive(self, n: int) -> bytes:
        buffer = bytearray(n)
        view, got = memoryview(buffer), 0
        while got < n:
            self.sock.settimeout(self._time_left())
            chunk = self.sock.recv_into(view[got:])
            if not chunk:
                raise EOFError
            got += chunk
        return bytes(buffer)

    def _died(self) -> CompileError:
        """The error for a worker that died: how, and the end of what it wrote to stderr."""
        returncode = self._reap(timeout=5.0)
        tail = self._stderr_tail()
        self._close()
        if returncode < 0:
            try:
                how = f"was killed by {signal.Signals(-returncode).name}"
            except ValueError:
                how = f"was killed by signal {-returncode}"
        else:
            how = f"exited with status {returncode}"
        error = CompileError if self.ready else WorkerUnavailable
        doing = "while compiling this module" if self.ready else "while starting"
        message = f"the LLVM compile worker (pid {self.pid}) {how} {doing}"
        if tail:
            message += "; its stderr ended with:\n" + tail
        return error(message)

    def _stderr_tail(self) -> str:
        try:
            size = os.fstat(self.stderr).st_size
            data = os.pread(self.stderr, _STDERR_TAIL, max(0, size - _STDERR_TAIL))
        except OSError:
            return ""
        return data.decode(errors="replace").strip()

    def stop(self, timeout: float = 5.0) -> None:
        """Ask the worker to exit and reap it (killed if it does not exit in time)."""
        if self.sock is not None:
            try:
                self._send(REQUEST.pack(EXIT, 0))
            except OSError:
                pass  # already gone
        self._close()
        self._reap(timeout)

    def kill(self) -> None:
        self._close()
        if self.proc.poll() is None:
            self.proc.kill()
        self._reap(timeout=5.0)

    def _reap(self, timeout: float) -> int:
        try:
            return self.proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            return self.proc.wait()

    def _close(self) -> None:
        sock, self.sock = self.sock, None
        if sock is not None:
            sock.close()
        fd, self.stderr = self.stderr, -1
        if fd >= 0:
            os.close(fd)

    def abandon(self) -> None:
        """In a forked child: close the child's copies of the socket and the stderr file,
        and leave the process (the parent's, not ours to stop or reap) alone."""
        self._close()
        self.proc.returncode = 0  # (so that Popen does not try to reap it or warn)


def _command() -> list[str]:
    """How the worker runs: isolated (-I: no environment, no script or user directories on
    its path) and without site (-S: no .pth files; they cost 70 ms here), with llvmlite's
    directory as its one path entry beyond the standard library."""
    import llvmlite

    llvmlite_dir = os.path.dirname(os.path.dirname(os.path.abspath(llvmlite.__file__)))
    return [sys.executable, "-I", "-S", os.path.abspath(__file__), llvmlite_dir]


_workers: dict[int, Worker] = {}  # slot -> worker; slot 0 is the first, the others helpers
_lock = threading.Lock()  # one compile at a time
# One thread at a time per slot's worker: a helper thread that a twice-interrupted compile
# left behind finishes its request before the next compile may use that worker.
_slot_locks: dict[int, threading.Lock] = {}
_unavailable: str | None = None  # why no worker can be started here, once that is known
_no_helpers: str | None = None  # why no helper could be started here, once that is known


def compile_object(ir_text: str) -> list[bytes]:
    """Object code for a verified LLVM IR module, made by workers (started if need be): one
    object, or one per part of a large module (see the module's docstring), in order.
    CompileError if it fails; WorkerUnavailable if no worker can run here. A worker that
    does not answer in time is killed and its request tried once more on a fresh one."""
    timeout = compile_timeout(len(ir_text))  # (characters: about the bytes, no copy)
    with _lock:
        if not _may_split(ir_text):
            return [_compile_on(0, ir_text, timeout, 0, 1)[1]]
        return _Parts(ir_text, timeout, MAX_WORKERS * PARTS_PER_WORKER).compile()


def _may_split(ir_text: str) -> bool:
    if MAX_WORKERS < 2 or len(ir_text) < SPLIT_MIN_BYTES or _no_helpers is not None:
        return False
    from graphjit.codegen.llvm import target  # (the parent's side only: it has graphjit)

    return target.may_split(ir_text)


class _Parts:
    """One large module's parts, handed out in order to the workers as they become free:
    slot 0 in the calling thread, each helper slot in a thread of its own. Under _lock."""

    def __init__(self, ir_text: str, timeout: float, max_parts: int):
        self.ir_text, self.timeout, self.max_parts = ir_text, timeout, max_parts
        self.lock = threading.Lock()
        self.next = 0  # the next part not yet handed out
        self.returned: list[int] = []  # parts given back by a helper that could not start
        self.count: int | None = None  # parts in the plan, once a worker has said
        self.objects: dict[int, bytes] = {}
        self.error: BaseException | None = None

    def compile(self) -> list[bytes]:
        first = self._take()  # slot 0's (prestart() started it): not a starting helper's
        threads = [
            threading.Thread(target=self._serve, args=(slot,), daemon=True, name="gj-compile")
            for slot in range(1, MAX_WORKERS)
        ]
        for thread in threads:
            thread.start()
        try:
            self._serve(0, first)
        finally:
            for thread in threads:  # (each finishes its current part, then takes no more)
                thread.join()
        # A part given back by a helper after slot 0 ran out of parts is compiled here.
        while self.error is None and (left := self._left_over()) is not None:
            self._compile(0, left)
        if self.error is not None:
            raise self.error
        return [self.objects[i] for i in range(self.count)]

    def _take(self) -> int | None:
        with self.lock:
            if self.error is not None:
                return None
            if self.returned:
                return self.returned.pop()
            if self.count is not None and self.next >= self.count:
                return None
            self.next += 1
            return self.next - 1

    def _left_over(self) -> int | None:
        return next((i for i in range(self.count) if i not in self.objects), None)

    def _serve(self, slot: int, part: int | None = None) -> None:
        if part is None:
            part = self._take()
        while part is not None and self._compile(slot, part):
            part = self._take()

    def _compile(self, slot: int, part: int) -> bool:
        """Compile `part` on `slot`'s worker; False if that slot should take no more."""
        global _no_helpers
        try:
            parts, obj = _compile_on(slot, self.ir_text, self.timeout, part, self.max_parts)
        except WorkerUnavailable as e:
            if slot == 0:
                self._fail(e)  # (no worker at all here: jit.py compiles in its process)
            else:
                _no_helpers = str(e)
                with self.lock:
                    self.returned.append(part)  # for the others
            return False
        except BaseException as e:  # a CompileError, or KeyboardInterrupt in slot 0
            self._fail(e)
            return False
        with self.lock:
            self.count = parts
            if part < parts:
                self.objects[part] = obj
        return True

    def _fail(self, error: BaseException) -> None:
        with self.lock:
            if self.error is None:
                self.error = error


def _compile_on(
    slot: int, ir_text: str, timeout: float, part: int, max_parts: int
) -> tuple[int, bytes]:
    """Worker.compile on `slot`'s worker (started if need be); a worker that does not
    answer in time is killed and the request tried once more on a fresh one."""
    with _slot_locks.setdefault(slot, threading.Lock()):
        return _compile_on_locked(slot, ir_text, timeout, part, max_parts)


def _compile_on_locked(slot, ir_text, timeout, part, max_parts) -> tuple[int, bytes]:
    global _unavailable
    stuck = None
    while True:
        worker = _running_worker(slot)
        try:
            return worker.compile(ir_text, timeout, part, max_parts)
        except WorkerStuck as e:
            if stuck is not None:
                raise CompileError(
                    f"{stuck}; a fresh worker (pid {worker.pid}) did not answer within "
                    f"{timeout:.3g} s either and was killed (raise GRAPHJIT_COMPILE_TIMEOUT "
                    "if this module needs longer)"
                ) from None
            stuck = e
        except WorkerUnavailable as e:
            if slot == 0:
                _unavailable = str(e)
            raise
        finally:
            if not worker.alive() and _workers.get(slot) is worker:
                del _workers[slot]


def _running_worker(slot: int) -> Worker:
    """`slot`'s worker, started if there is none (or it died). Under _lock (and only this
    compile's thread for `slot` touches the slot)."""
    global _unavailable, _no_helpers
    why = _unavailable if slot == 0 else _no_helpers or _unavailable
    if why is not None:
        raise WorkerUnavailable(why)
    worker = _workers.get(slot)
    if worker is not None and (worker.owner != os.getpid() or not worker.alive()):
        if worker.owner != os.getpid():
            worker.abandon()  # (the fork hook did this already, unless it did not run)
        else:
            worker.kill()  # died between compiles (killed?): not this module's doing
        worker = None
        del _workers[slot]
    if worker is None:
        try:
            worker = _workers[slot] = Worker()
        except WorkerUnavailable as e:
            if slot == 0:
                _unavailable = str(e)
            else:
                _no_helpers = str(e)
            raise
    return worker


def prestart() -> None:
    """Start the first worker now, without waiting for it, if none is running and the
    worker is on: a caller about to lower a module hides the worker's start (about 0.1 s)
    behind that. (Helpers start with the first module large enough to need them.)"""
    with _lock:
        worker = _workers.get(0)
        if worker is not None and worker.owner == os.getpid() and worker.alive():
            return
        if not enabled() or _unavailable is not None:
            return
        if worker is not None:
            (worker.abandon if worker.owner != os.getpid() else worker.kill)()
            del _workers[0]
        try:
            _workers[0] = Worker()
        except WorkerUnavailable:
            pass  # the compile will find out, and say so


def worker_pid() -> int | None:
    """The pid of this process's first worker, if one is running."""
    worker = _workers.get(0)
    return worker.pid if worker is not None and worker.owner == os.getpid() else None


def worker_pids() -> list[int]:
    """The pids of this process's workers (the first, then helpers), those running."""
    return [w.pid for _, w in sorted(_workers.items()) if w.owner == os.getpid() and w.alive()]


def shutdown() -> None:
    """Stop this process's workers (at exit; the next compile would start new ones)."""
    with _lock:
        workers = list(_workers.values())
        _workers.clear()
    for worker in workers:
        if worker.owner == os.getpid():
            worker.stop(timeout=2.0)


def _after_fork_in_child() -> None:
    global _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    _slot_locks.clear()
    workers = list(_workers.values())
    _workers.clear()
    for worker in workers:
        worker.abandon()


# ---- the worker's side ------------------------------------------------------------------------


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        view = view[os.write(fd, view) :]


def _read_exact(fd: int, n: int) -> bytes:
    chunks = []
    while n:
        chunk = os.read(fd, min(n, 1 << 20))
        if not chunk:
            raise EOFError
        chunks.append(chunk)
        n -= len(chunk)
    return b"".join(chunks)


def _rss() -> int:
    try:
        with open("/proc/self/statm", "rb") as f:
            return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")
    except (OSError, ValueError, IndexError):
        return 0


def _serve(llvmlite_dir: str) -> int:
    # The protocol gets private copies of fds 0 and 1 (both the socket); fd 1 then goes to
    # stderr (anything printed cannot corrupt a reply) and fd 0 to /dev/null.
    requests, replies = os.dup(0), os.dup(1)
    os.dup2(2, 1)
    null = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null, 0)
    os.close(null)
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    try:
        import resource

        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))  # an LLVM abort leaves no core
    except (ImportError, ValueError, OSError):
        pass

    sys.path.append(llvmlite_dir)
    import importlib.util

    here = os.path.dirname(os.path.abspath(__file__))
    spec = importlib.util.spec_from_file_location(
        "graphjit_llvm_target", os.path.join(here, "target.py")
    )
    target = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(target)
    tm = target.new_target_machine()

    _write_all(replies, REPLY.pack(READY, _rss(), 0))
    while True:
        try:
            op, n = REQUEST.unpack(_read_exact(requests, REQUEST.size))
            payload = _read_exact(requests, n)
        except EOFError:
            return 0
        if op == EXIT:
            return 0
        if op != COMPILE:
            print(f"graphjit compile worker: unknown request {op}", file=sys.stderr)
            return 2
        try:
            part, max_parts = PART.unpack_from(payload)
            parts, obj = target.compile_object(payload[PART.size :].decode(), tm, part, max_parts)
            status, data = OK, PARTS.pack(parts) + obj
        except Exception as e:  # LLVM's errors are RuntimeErrors; report, do not die
            status, data = FAILED, f"{type(e).__name__}: {e}".encode()
        try:
            _write_all(replies, REPLY.pack(status, _rss(), len(data)) + data)
        except OSError:
            return 0  # the parent has gone


if __name__ == "__main__":
    status = _serve(sys.argv[1])
    sys.stderr.flush()
    os._exit(status)  # no interpreter or LLVM teardown: nothing is left to save
else:
    atexit.register(shutdown)
    if hasattr(os, "register_at_fork"):
        os.register_at_fork(after_in_child=_after_fork_in_child)
