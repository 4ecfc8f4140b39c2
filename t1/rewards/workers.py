"""Worker processes that can be killed: the hard time limit behind Math-Verify and batch scoring.

A worker is `python -c "...workers.main(FD, SETUP)"`: a fresh interpreter (never a fork of a
trainer holding CUDA or torch threads, and never a re-import of the user's `__main__`, which
`multiprocessing`'s spawn would do) that talks pickled `(handler, args)` requests over a socket
pair. Handlers and the start-up hook are named as "package.module:function" and imported in the
child, so this module imports nothing from the oracle: the modules that use workers name the
functions they want run. The parent enforces the hard limit by SIGKILL when a reply is late,
then starts a replacement. `WorkerPool.run` gives each item its own deadline, so one hung item
costs one worker restart, never the batch.

A request's reply is `handler(*args)`; an exception becomes a `WorkerError` in the parent.
"""

from __future__ import annotations

import importlib
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Callable
from dataclasses import dataclass
from multiprocessing.connection import Connection, wait
from typing import Any

# the child's program (`-c`, not `-m`: the package imports this module before `-m` could run it)
_ENTRY = "import sys; from t1.rewards.workers import main; main(int(sys.argv[1]), sys.argv[2])"
# seconds a fresh worker may take to run its start-up hook (e.g. import sympy; charged to no item)
STARTUP_TIMEOUT_S = 120.0


class WorkerError(RuntimeError):
    """A worker could not start, died, or answered with an error."""


class WorkerProcess:
    """One persistent child process; `request` with a deadline, `kill` on overrun.

    `setup` ("package.module:function", or "" for none) runs in the child before it says ready.
    """

    def __init__(self, setup: str = "") -> None:
        parent, child = socket.socketpair()
        env = dict(os.environ, PYTHONPATH=os.pathsep.join(p for p in sys.path if p))
        self.setup = setup
        self.proc = subprocess.Popen(
            [sys.executable, "-c", _ENTRY, str(child.fileno()), setup],
            pass_fds=[child.fileno()],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.DEVNULL,
            env=env,
        )
        child.close()
        self.conn = Connection(parent.detach())
        self.ready = False

    def wait_ready(self) -> None:
        """Block until the worker has run its start-up hook (at most `STARTUP_TIMEOUT_S`)."""
        if self.ready:
            return
        if not self.conn.poll(STARTUP_TIMEOUT_S) or self.conn.recv() != "ready":
            self.kill()
            raise WorkerError("reward worker failed to start (see its stderr above)")
        self.ready = True

    def send(self, handler: str, args: tuple) -> None:
        self.wait_ready()
        self.conn.send((handler, args))

    def receive(self) -> Any:
        status, value = self.conn.recv()
        if status != "ok":
            raise WorkerError(value)
        return value

    def request(self, handler: str, args: tuple, timeout_s: float) -> tuple[bool, Any]:
        """(True, reply) or (False, None) when no reply came within `timeout_s` (then killed)."""
        self.send(handler, args)
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
    """`size` persistent workers (each started with `setup`); each item gets its own deadline."""

    def __init__(self, size: int, setup: str = "") -> None:
        self.size = size
        self.setup = setup
        self.workers = [WorkerProcess(setup) for _ in range(size)]

    def run(self, handler: str, items: list[tuple], timeout_s: float) -> list[Outcome]:
        """`handler(*item)` for each item, spread over the workers, in item order.

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
                    worker.send(handler, items[item])
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
            self.workers[slot] = WorkerProcess(self.setup)  # starts while the others work

    def _start_or_replace(self, slot: int) -> None:
        """Take a starting worker's "ready"; one that died while starting is replaced."""
        try:
            self.workers[slot].wait_ready()
        except (WorkerError, EOFError, OSError):
            self.workers[slot].kill()
            self.workers[slot] = WorkerProcess(self.setup)

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


def resolve(name: str) -> Callable[..., Any]:
    """The function named "package.module:function"."""
    module, _, attr = name.partition(":")
    if not module or not attr:
        raise WorkerError(f"not a 'package.module:function' name: {name!r}")
    return getattr(importlib.import_module(module), attr)


def _serve(conn: Connection, setup: str) -> None:
    """The worker's loop: run the start-up hook, then answer requests until the parent closes."""
    if setup:
        resolve(setup)()
    conn.send("ready")
    handlers: dict[str, Callable[..., Any]] = {}
    while True:
        try:
            name, args = conn.recv()
        except (EOFError, OSError):
            return
        try:
            if name not in handlers:
                handlers[name] = resolve(name)
            conn.send(("ok", handlers[name](*args)))
        except Exception as exc:  # noqa: BLE001 - reported to the parent, which decides
            conn.send(("error", f"{type(exc).__name__}: {exc}"[:500]))


def main(fd: int, setup: str = "") -> None:
    """Entry point of a worker process, given its end of the socket pair and start-up hook."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C belongs to the parent
    _serve(Connection(fd), setup)
