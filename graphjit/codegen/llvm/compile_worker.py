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
- Threads: one request at a time (under a lock; jit.py compiles under its own lock too).
- Processes: the worker belongs to the process that started it. A forked child closes its
  copies of the socket and the stderr file (os.register_at_fork) and starts its own worker
  when it compiles; at exit the worker is told to stop and reaped (atexit).

Protocol, over a socket pair that is the worker's stdin and stdout (the worker takes
private copies of fds 0 and 1 and points fd 1 at stderr, so that nothing else can write
into the protocol):

    worker -> parent, once at start:  REPLY(READY, rss, 0)
    parent -> worker:  REQUEST(COMPILE, n) + n bytes of LLVM IR (UTF-8)
    worker -> parent:  REPLY(OK, rss, n) + n bytes of object code
                       or REPLY(FAILED, rss, n) + n bytes of error message (UTF-8)
    parent -> worker:  REQUEST(EXIT, 0), or end of input: the worker exits with status 0

The worker runs by file path, ``python -I -S compile_worker.py LLVMLITE_DIR``: it imports
the standard library, llvmlite (from the directory the parent found it in) and target.py
(by path), not the graphjit package or NumPy, and starts in about 0.1-0.2 s (mostly
loading LLVM's shared library).

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
COMPILE, EXIT = 1, 2
READY, OK, FAILED = 0, 1, 2
_STDERR_TAIL = 2000  # characters of a dead worker's stderr quoted in the error

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

    def compile(self, ir_text: str, timeout: float | None = None) -> bytes:
        """The object code, or CompileError: the worker's error (it stays), how it died (it
        is gone), or WorkerStuck if it did not answer within `timeout` seconds (killed)."""
        payload = ir_text.encode()
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
        return data

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


_worker: Worker | None = None
_lock = threading.Lock()
_unavailable: str | None = None  # why no worker can be started here, once that is known


def compile_object(ir_text: str) -> bytes:
    """Object code for a verified LLVM IR module, made by the worker (started if need be).
    CompileError if it fails; WorkerUnavailable if no worker can run here. A worker that
    does not answer in time is killed and the module tried once more on a fresh one."""
    global _worker, _unavailable
    timeout = compile_timeout(len(ir_text))  # (characters: about the bytes, no copy)
    with _lock:
        stuck = None
        while True:
            worker = _running_worker()
            try:
                return worker.compile(ir_text, timeout)
            except WorkerStuck as e:
                if stuck is not None:
                    raise CompileError(
                        f"{stuck}; a fresh worker (pid {worker.pid}) did not answer within "
                        f"{timeout:.3g} s either and was killed (raise GRAPHJIT_COMPILE_TIMEOUT "
                        "if this module needs longer)"
                    ) from None
                stuck = e
            except WorkerUnavailable as e:
                _unavailable = str(e)
                raise
            finally:
                if not worker.alive():
                    _worker = None


def _running_worker() -> Worker:
    """This process's worker, started if there is none (or it died). Under _lock."""
    global _worker, _unavailable
    if _unavailable is not None:
        raise WorkerUnavailable(_unavailable)
    worker = _worker
    if worker is not None and (worker.owner != os.getpid() or not worker.alive()):
        if worker.owner != os.getpid():
            worker.abandon()  # (the fork hook did this already, unless it did not run)
        else:
            worker.kill()  # died between compiles (killed?): not this module's doing
        worker = _worker = None
    if worker is None:
        try:
            worker = _worker = Worker()
        except WorkerUnavailable as e:
            _unavailable = str(e)
            raise
    return worker


def prestart() -> None:
    """Start a worker now, without waiting for it, if none is running and the worker is on:
    a caller about to lower a module hides the worker's start (about 0.1 s) behind that."""
    global _worker
    with _lock:
        if _worker is not None and _worker.owner == os.getpid() and _worker.alive():
            return
        if not enabled() or _unavailable is not None:
            return
        if _worker is not None:
            (_worker.abandon if _worker.owner != os.getpid() else _worker.kill)()
            _worker = None
        try:
            _worker = Worker()
        except WorkerUnavailable:
            pass  # the compile will find out, and say so


def worker_pid() -> int | None:
    """The pid of this process's current worker, if one is running."""
    worker = _worker
    return worker.pid if worker is not None and worker.owner == os.getpid() else None


def shutdown() -> None:
    """Stop this process's worker (at exit; the next compile would start a new one)."""
    global _worker
    with _lock:
        worker, _worker = _worker, None
    if worker is not None and worker.owner == os.getpid():
        worker.stop(timeout=2.0)


def _after_fork_in_child() -> None:
    global _worker, _lock
    _lock = threading.Lock()  # another thread may have held it at the fork
    worker, _worker = _worker, None
    if worker is not None:
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
            status, data = OK, target.compile_object(payload.decode(), tm)
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
