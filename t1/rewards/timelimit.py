"""A soft time limit for Python code on the main thread: `soft_limit(seconds)`.

The hard limit of the oracle is a worker process killed when it overruns (`t1.rewards.workers`);
this soft one ends most slow cases without the cost of a restart. Signals interrupt Python code
between bytecodes, not a long C call (a huge integer power): that is what killing a worker is for.
"""

from __future__ import annotations

import contextlib
import signal
import threading
from collections.abc import Iterator


class SoftTimeout(BaseException):  # noqa: N818 - BaseException: `except Exception` can't eat it
    """Raised in the main thread when a `soft_limit` runs out."""


@contextlib.contextmanager
def soft_limit(seconds: float | None) -> Iterator[None]:
    """Raise `SoftTimeout` in this thread after `seconds`: main thread only, else no limit.

    An outer limit already running is left alone.
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
