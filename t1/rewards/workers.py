"""Worker processes that can be killed: the hard time limit behind Math-Verify and batch scoring.

A worker is `python -c "...workers.main(FD)"`: a fresh interpreter (never a fork of a trainer
holding CUDA or torch threads, and never a re-import of the user's `__main__`, which
`multiprocessing`'s spawn would do) that talks pickled `(kind, args)` requests over a socket pair.
Inside it, Math-Verify runs inline under a soft `setitimer` limit (the worker owns its main
thread); the parent enforces the hard limit by SIGKILL when a reply is late, then starts a
replacement. `WorkerPool.run` gives each item its own deadline, so one hung item costs one
worker restart, never the batch.

Requests: ("verify", (pred, ref, soft_limit_s)) -> (equal, how);
          ("score", (task, text, reference, finish_reason, response_ids, cfg)) -> RewardResult.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# the child's program (`-c`, not `-m`: the package imports this module before `-m` could run it)
_ENTRY = "import sys; from t1.rewards.workers import main; main(int(sys.argv[1]))"
# seconds a fresh worker may take to import sympy and Math-Verify (charged to no item)
STARTUP_TIMEOUT_S = 120.0


class SoftTimeout(BaseException):  # noqa: N818 - BaseException: `except Exception` can't eat it
    """Raised in the main thread when a `soft_limit` runs out."""


@contextlib.contextmanager
def soft_limit(seconds: float | None) -> Iterator[None]:
    """Raise `SoftTimeout` in this thread after `seconds`: main thread only, else no limit.

    Signals interrupt Python code between bytecodes, not a long C call (a huge integer power):
    that is what killing a worker is for. An outer limit already running is left alone.
    """
    usable = (
        seconds is not None
        and threading.current_thread() is threading.main_thread()
        and signal.getitimer(signal.ITIMER_REAL)[0] == 0.0
    )
    if not usable:
        yield
        return

    def _raise(signum: int, frame: object) -> None:
        raise SoftTimeout

    previous = signal.signal(signal.SIGALRM, _raise)
    signal.setitimer(signal.ITIMER_REAL, max(seconds or 0.0, 1e-3))
    try:
        yield
    finally:
        signal.setitimer(signal.ITIMER_REAL, 0.0)
        signal.signal(signal.SIGALRM, previous)


class WorkerError(RuntimeError):
    """A worker could not start, died, or answered with an error."""


class WorkerProcess:
    """One persistent child process; `request` with a deadline, `kill` on overrun."""

    def __init__(self) -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(child.fileno())],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the worker has imported Math-Verify (at most `STARTUP_TIMEOUT_S`)."""
        if self.ready:
            return
        if not self.conn.poll(STARTUP_TIMEOUT_S) or self.conn.recv() != "ready":
            self.kill()
            raise WorkerError("reward worker failed to start (see its stderr above)")
        self.ready = True

    def send(self, kind: str, args: tuple) -> None:
        self.wait_ready()
        self.conn.send((kind, args))

    def receive(self) -> Any:
        status, value = self.conn.recv()
        if status != "ok":
            raise WorkerError(value)
        return value

    def request(self, kind: str, args: tuple, timeout_s: float) -> tuple[bool, Any]:
        """(True, reply) or (False, None) when no reply came within `timeout_s` (then killed)."""
        self.send(kind, args)
        if not self.conn.poll(timeout_s):
            self.kill()
            return False, None
        return True, self.receive()

    @property
    def alive(self) -> bool:
        return self.proc.poll() is None and not self.conn.closed

    def kill(self) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        if not self.conn.closed:
            self.conn.close()


@dataclass
class Outcome:
    # "ok" (value holds the reply), "timeout" (killed at the deadline) or "error" (value: message)
    status: str
    value: Any = None


class WorkerPool:
    """`size` persistent workers; each item of a batch gets its own deadline."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.workers = [WorkerProcess() for _ in range(size)]

    def run(self, kind: str, items: list[tuple], timeout_s: float) -> list[Outcome]:
        """One `(kind, item)` request per item, spread over the workers, in item order.

        A replacement worker imports while the others go on working; the loop never blocks on
        one worker, so every busy item's deadline is checked on time.
        """
        outcomes: list[Outcome | None] = [None] * len(items)
        pending = list(range(len(items)))[::-1]
        busy: dict[int, tuple[int, float]] = {}  # worker slot -> (item, deadline)
        while pending or busy:
            for slot, worker in enumerate(self.workers):
                if slot not in busy and pending and worker.ready:
                    item = pending.pop()
                    worker.send(kind, items[item])
                    busy[slot] = (item, time.monotonic() + timeout_s)
            starting = [w.conn for w in self.workers if not w.ready]
            if not busy and not wait(starting, timeout=STARTUP_TIMEOUT_S):
                raise WorkerError("no reward worker started within the startup limit")
            nearest = min((d for _, d in busy.values()), default=time.monotonic() + 1.0)
            conns = [self.workers[slot].conn for slot in busy] + starting
            ready = wait(conns, timeout=max(0.0, nearest - time.monotonic()))
            for slot, worker in enumerate(self.workers):
                if not worker.ready and worker.conn in ready:
                    self._start_or_replace(slot)
                elif slot in busy:
                    self._check(slot, busy, ready, outcomes)
        return [o if o is not None else Outcome("error", "lost") for o in outcomes]

    def _check(
        self,
        slot: int,
        busy: dict[int, tuple[int, float]],
        ready: list,
        outcomes: list[Outcome | None],
    ) -> None:
        """Collect a finished item, or kill the worker whose item is past its deadline."""
        item, deadline = busy[slot]
        worker = self.workers[slot]
        if worker.conn in ready:
            outcomes[item] = self._collect(worker)
        elif time.monotonic() >= deadline:
            worker.kill()
            outcomes[item] = Outcome("timeout")
        else:
            return
        del busy[slot]
        if not worker.alive:
            self.workers[slot] = WorkerProcess()  # imports while the others work

    def _start_or_replace(self, slot: int) -> None:
        """Take a starting worker's "ready"; one that died while starting is replaced."""
        try:
            self.workers[slot].wait_ready()
        except (WorkerError, EOFError, OSError):
            self.workers[slot].kill()
            self.workers[slot] = WorkerProcess()

    @staticmethod
    def _collect(worker: WorkerProcess) -> Outcome:
        try:
            return Outcome("ok", worker.receive())
        except (EOFError, OSError) as exc:
            worker.kill()
            return Outcome("error", f"worker died: {exc!r}")
        except WorkerError as exc:
            return Outcome("error", str(exc))

    def close(self) -> None:
        for w in self.workers:
            w.kill()


def _serve(conn: Connection) -> None:
    """The worker's loop: answer requests until the parent closes the socket."""
    from t1.rewards.math_equal import _quiet_math_verify, set_inline

    set_inline(True)
    _quiet_math_verify()
    import math_verify  # noqa: F401 - pay the sympy import before saying ready

    conn.send("ready")
    while True:
        try:
            kind, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            conn.send(("ok", _handle(kind, args)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))


def _handle(kind: str, args: tuple) -> Any:
    if kind == "verify":
        from t1.rewards.math_equal import verify_inline

        pred, ref, soft = args
        return verify_inline(pred, ref, soft)
    if kind == "score":
        from t1.rewards.reward import score_local

        return score_local(*args)
    raise WorkerError(f"unknown request {kind!r}")


def main(fd: int) -> None:
    """Entry point of a worker process, given its end of the socket pair."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    _serve(Connection(fd))
