"""Killable worker processes: per-item deadlines, replacement after a kill, soft limits."""

from __future__ import annotations

import threading
import time

import pytest

from t1.rewards.math_verify_guard import HANDLER, SETUP
from t1.rewards.timelimit import SoftTimeout, soft_limit
from t1.rewards.workers import WorkerPool


def test_soft_limit_main_thread_only() -> None:
    start = time.monotonic()
    with pytest.raises(SoftTimeout), soft_limit(0.1):
        while True:
            pass
    assert time.monotonic() - start < 1.0
    errors: list[BaseException] = []

    def off_main() -> None:
        try:
            with soft_limit(0.01):
                time.sleep(0.05)  # no limit off the main thread: finishes normally
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    thread = threading.Thread(target=off_main)
    thread.start()
    thread.join()
    assert errors == []


def test_pool_deadline_kill_and_replacement() -> None:
    pool = WorkerPool(1, SETUP)
    try:
        # item 0 is a C-level bignum factorial (no signal stops it), item 1 a quick verdict:
        # the first is killed at its deadline and a fresh worker answers the second
        items = [("9999999!", "1", None), ("1/2", "0.5", None)]
        start = time.monotonic()
        outcomes = pool.run(HANDLER, items, timeout_s=1.0)
        assert time.monotonic() - start < 15.0  # 1 s deadline + a replacement's start-up
        assert outcomes[0].status == "timeout"
        assert outcomes[1].status == "ok" and outcomes[1].value == (True, "verify")
        assert pool.run("bogus", [()], timeout_s=5.0)[0].status == "error"
        assert pool.run("t1.rewards.no_such_module:f", [()], timeout_s=5.0)[0].status == "error"
    finally:
        pool.close()
