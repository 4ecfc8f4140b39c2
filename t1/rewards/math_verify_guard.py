"""Math-Verify, made safe to call: `verify(pred, ref, timeout_s)` never hangs and never raises.

Math-Verify (`math_verify.parse` + `verify`, sympy underneath) is the reference grader behind the
fast path. Its own time limit is `signal.alarm`, which raises off the main thread and has silently
zeroed rewards in other frameworks; here its limits are disabled (`parsing_timeout=None`,
`timeout_seconds=None`) and the call runs in a persistent worker process that is killed when it
overruns `timeout_s`, so the limit holds in any thread. Inside that worker (and inside batch-scoring
workers, which start with `prepare_worker`) a soft `setitimer` limit at 80 % of the budget ends most
slow cases without the cost of a restart. A timeout counts as "not equal".
"""

from __future__ import annotations

import atexit
import logging
import os
import threading
from typing import Literal

from t1.rewards.timelimit import SoftTimeout, soft_limit
from t1.rewards.workers import WorkerProcess

# share of the budget the worker's own soft limit uses; the parent kills at the full budget
SOFT_SHARE = 0.8
# the worker's start-up hook and request handler, named for `t1.rewards.workers`
SETUP = f"{__name__}:prepare_worker"
HANDLER = f"{__name__}:verify_inline"

How = Literal["fast", "verify", "timeout", "error"]

_inline = False


def verify(pred: str, ref: str, timeout_s: float | None) -> tuple[bool, How]:
    """Math-Verify's verdict and how it was reached ("verify", "timeout" or "error").

    `timeout_s=None` runs it in this process with no limit (for callers that enforce their own).
    """
    if timeout_s is None:
        return verify_inline(pred, ref, None)
    if _inline:
        return verify_inline(pred, ref, timeout_s * SOFT_SHARE)
    return _isolated().call(pred, ref, timeout_s)


def mv_equal(pred: str, ref: str, timeouts: bool = False) -> bool:
    """Math-Verify alone: `verify(parse(ref), parse(pred))`, each wrapped in `\\boxed{}`.

    `timeouts=True` keeps Math-Verify's own `signal.alarm` limits (main thread only): that is the
    baseline the benchmark compares against.
    """
    from math_verify import parse
    from math_verify import verify as mv_verify

    limit = {"parsing_timeout": 5} if timeouts else {"parsing_timeout": None}
    gold = parse("\\boxed{" + ref + "}", **limit)
    target = parse("\\boxed{" + pred + "}", **limit)
    return bool(mv_verify(gold, target, timeout_seconds=5 if timeouts else None))


def verify_inline(pred: str, ref: str, soft_limit_s: float | None) -> tuple[bool, How]:
    """Math-Verify in this process; a soft limit applies only on the main thread."""
    quiet_math_verify()
    try:
        with soft_limit(soft_limit_s):
            return mv_equal(pred, ref), "verify"
    except SoftTimeout:
        return False, "timeout"
    except Exception:  # noqa: BLE001 - sympy raises anything; a verdict must not
        return False, "error"


def warm_up() -> None:
    """Start the Math-Verify worker now (about a second of imports) rather than on first use."""
    if not _inline:
        with _isolated().lock:
            _isolated()._worker()


def stop_worker() -> None:
    """Stop the Math-Verify worker and its spare (the next call starts fresh ones)."""
    if _ISOLATED is not None and _ISOLATED.owner == os.getpid():
        with _ISOLATED.lock:
            _ISOLATED.kill()


def set_inline(inline: bool) -> None:
    """Run Math-Verify in this process under a soft limit (for worker processes on their main
    thread, whose parent enforces the hard limit by killing them)."""
    global _inline
    _inline = inline


def prepare_worker() -> None:
    """A worker's start-up: Math-Verify inline from now on, and its sympy import paid up front."""
    set_inline(True)
    quiet_math_verify()
    import math_verify  # noqa: F401 - pay the sympy import before the worker says ready


def quiet_math_verify() -> None:
    """Math-Verify warns once that its limits are off: here that is deliberate."""
    logging.getLogger("math_verify").setLevel(logging.ERROR)


class _IsolatedVerifier:
    """A persistent Math-Verify worker, killed on overrun, plus a warm spare to replace it, so
    the call after a timeout doesn't wait for sympy to import."""

    def __init__(self) -> None:
        self.lock = threading.Lock()
        self.owner = os.getpid()
        self.worker: WorkerProcess | None = None
        self.spare: WorkerProcess | None = None

    def call(self, pred: str, ref: str, timeout_s: float) -> tuple[bool, How]:
        with self.lock:
            try:
                worker = self._worker()
                done, reply = worker.request(
                    HANDLER, (pred, ref, timeout_s * SOFT_SHARE), timeout_s
                )
                if not done:
                    self.worker = None  # killed by `request`; the spare takes over
                    return False, "timeout"
                return bool(reply[0]), reply[1]
            except Exception:  # a dead worker: start afresh next call
                self.kill()
                return False, "error"
            except BaseException:  # an interrupt mid-call leaves the pipe out of step
                self.kill()
                raise

    def _worker(self) -> WorkerProcess:
        if self.worker is None or not self.worker.alive:
            if self.worker is not None:
                self.worker.kill()
            spare = self.spare if self.spare is not None and self.spare.alive else None
            self.worker, self.spare = spare or WorkerProcess(SETUP), None
        if self.spare is None:
            self.spare = WorkerProcess(SETUP)  # imports in the background
        self.worker.wait_ready()
        return self.worker

    def kill(self) -> None:
        for worker in (self.worker, self.spare):
            if worker is not None:
                worker.kill()
        self.worker = self.spare = None


_ISOLATED: _IsolatedVerifier | None = None
_ISOLATED_LOCK = threading.Lock()


def _isolated() -> _IsolatedVerifier:
    """The process-wide worker (a fresh one after a fork: pipes are not shared across forks)."""
    global _ISOLATED
    with _ISOLATED_LOCK:
        if _ISOLATED is None or _ISOLATED.owner != os.getpid():
            _ISOLATED = _IsolatedVerifier()
        return _ISOLATED


@atexit.register
def _shutdown() -> None:
    """No lock here: a call stuck in another thread must not hold up the exit."""
    if _ISOLATED is not None and _ISOLATED.owner == os.getpid():
        _ISOLATED.kill()
