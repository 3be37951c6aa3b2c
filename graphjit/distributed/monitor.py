"""A monitor per rank that says how the rank ended (started by run.py; docs/distributed.md).

When a rank dies without a Python error (os._exit, exit() in C code, a segfault, the
out-of-memory killer's SIGKILL), mpiexec stops the other ranks at once, with SIGKILL, and
says nothing about which rank it was: nothing at all for an exit code, a pid for a signal.
Under this monitor each rank is `python ARGS...` run as the monitor's child: when it ends
with an error that it has not reported itself, the monitor prints which rank it was and how
it ended, then ends the same way (exit code or signal), and mpiexec stops the job as it
would have. A rank reports its own errors (gj.distributed's exception hook and timeout)
and then tells its monitor so, which stays silent (`tell_monitor`).

Standard library only: the launcher starts the monitor as a script (`python -I monitor.py`),
so that it does not import graphjit (seconds and tens of MB per rank)."""

from __future__ import annotations

import os
import signal
import subprocess
import sys

# "FD:PID": the pipe a rank writes to once it has reported its error, and the monitor's
# pid (a process that inherits the variable but is not the monitor's child must not write)
MONITOR_VARIABLE = "GRAPHJIT_MONITOR"
REPORTED = b"r"  # the rank has printed its error: the monitor stays silent
JOINED = b"j"  # the rank has started MPI (gj.distributed.init)
# signals that mpiexec and terminals send to a rank's whole process group: the rank gets
# them directly; the monitor must outlive its rank, and need not report a rank that one of
# them ended (Ctrl-C, a job killed by its scheduler: the user knows)
JOB_SIGNALS = ("SIGINT", "SIGTERM", "SIGHUP", "SIGQUIT", "SIGUSR1", "SIGUSR2")
SIGNAL_HINTS = {
    signal.SIGKILL: "kill -9, or the kernel's out-of-memory killer",
    signal.SIGSEGV: "a crash in native code",
    signal.SIGBUS: "a crash in native code",
    signal.SIGABRT: "abort() in native code",
}
USAGE = "usage: mpiexec -n N python -I monitor.py PYTHON-ARGS...\n"


def tell_monitor(news: bytes = REPORTED) -> None:
    """Tell this rank's monitor, if it has one, that the rank has reported its error
    (REPORTED) or has started MPI (JOINED)."""
    fd, _, monitor_pid = os.environ.get(MONITOR_VARIABLE, "").partition(":")
    if not (fd.isdigit() and monitor_pid == str(os.getppid())):
        return
    try:
        os.write(int(fd), news)
    except OSError:
        pass  # no monitor after all: nothing to tell


# ---- the monitor --------------------------------------------------------------------------


# what hydra, Open MPI and Slurm tell each process: its rank, and the job's size
RANK_VARIABLES = [("PMI_RANK", "PMI_SIZE"), ("OMPI_COMM_WORLD_RANK", "OMPI_COMM_WORLD_SIZE"),
                  ("SLURM_PROCID", "SLURM_NTASKS")]  # fmt: skip


def _rank_and_size() -> str:
    """Which rank this is: "rank 1 of 4"."""
    for rank, size in RANK_VARIABLES:
        if rank in os.environ:
            return f"rank {os.environ[rank]} of {os.environ.get(size, '?')}"
    return "the process (not in a job)"


def _in_a_job() -> bool:
    return any(os.environ.get(size, "1") != "1" for _, size in RANK_VARIABLES)


def _how_it_ended(status: int) -> str:
    if status >= 0:
        return f"exited with code {status}"
    number = -status
    name = signal.Signals(number).name if number in signal.valid_signals() else "?"
    hint = SIGNAL_HINTS.get(number)
    return f"was killed by signal {number} ({name}{': ' + hint if hint else ''})"


def _end_like(status: int):
    """End this process as the rank ended: the same exit code, or the same signal."""
    sys.stderr.flush()
    if status < 0:
        if -status != signal.SIGKILL:
            signal.signal(-status, signal.SIG_DFL)
        os.kill(os.getpid(), -status)
        status = 128 - status  # (a signal that does not end a process: the shell's code)
    os._exit(status)


def monitor(python_args: list[str]):
    """Run `python ARGS` as this rank, wait, say how it ended if it failed unreported."""
    read_end, write_end = os.pipe()
    os.set_inheritable(write_end, True)
    env = {**os.environ, MONITOR_VARIABLE: f"{write_end}:{os.getpid()}"}
    received = set()
    for name in JOB_SIGNALS:  # (handlers, not SIG_IGN: exec resets them for the rank)
        signal.signal(getattr(signal, name), lambda number, frame: received.add(number))
    # close_fds=False: the rank inherits what the monitor did (hydra's PMI_FD socket)
    rank = subprocess.Popen([sys.executable, *python_args], env=env, close_fds=False)
    os.close(write_end)
    status = rank.wait()
    news = _read_news(read_end)
    if status == 0 or REPORTED in news or -status in received:
        _end_like(status)  # success, or an error that the user has seen already
    failure = f"graphjit.distributed: {_rank_and_size()} (pid {rank.pid}) {_how_it_ended(status)}"
    if not _in_a_job():
        sys.stderr.write(failure + "\n")
    elif status > 0 and JOINED not in news:
        # mpiexec stops the others for a rank that exits badly after it started MPI, not
        # before (they would wait in MPI_Init forever); a monitor killed by a signal, always
        sys.stderr.write(f"{failure} before gj.distributed.init(); its monitor ends with "
                         "SIGTERM so that mpiexec stops the other ranks\n")  # fmt: skip
        _end_like(-signal.SIGTERM)
    else:  # (after init(), a Python error would have been reported: REPORTED)
        without = " without a Python error" if status > 0 else ""
        stops = "mpiexec stops (SIGKILLs) the other ranks because of it"
        sys.stderr.write(f"{failure}{without}; {stops}\n")
    _end_like(status)


def _read_news(read_end: int) -> bytes:
    """What the rank told its monitor (tell_monitor), without waiting: a process the rank
    started may still hold the pipe open."""
    os.set_blocking(read_end, False)
    try:
        return os.read(read_end, 64)
    except BlockingIOError:
        return b""


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit(USAGE)
    monitor(sys.argv[1:])
