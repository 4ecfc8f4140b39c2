"""SIGINT/SIGTERM -> stop after this step (t1.train.signals)."""

from __future__ import annotations

import signal
import threading

import pytest

from t1.train.signals import StopRequest, resume_command


def test_first_signal_sets_the_flag_and_handlers_are_restored():
    before = signal.getsignal(signal.SIGTERM)
    with StopRequest() as stop:
        assert not stop.requested
        signal.raise_signal(signal.SIGTERM)
        assert stop.requested and stop.reason == "SIGTERM"
    assert signal.getsignal(signal.SIGTERM) is before


@pytest.fixture
def sigint_handler():
    """Set SIGINT's handler for one test, restored after it. Python starts with SIGINT ignored
    when its parent ignores it (a shell's background job, nohup), and the second signal goes
    back to whatever was there before the StopRequest."""
    before = signal.getsignal(signal.SIGINT)

    def use(handler) -> None:
        signal.signal(signal.SIGINT, handler)

    yield use
    signal.signal(signal.SIGINT, before)


def test_second_sigint_aborts_at_once(sigint_handler):
    sigint_handler(signal.default_int_handler)  # Python's own: KeyboardInterrupt
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)
        assert stop.reason == "SIGINT"
        with pytest.raises(KeyboardInterrupt):
            signal.raise_signal(signal.SIGINT)
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler


def test_second_sigint_keeps_an_ignored_sigint_ignored(sigint_handler):
    # started with SIGINT ignored: the first one still stops after the step; the second goes
    # back to being ignored instead of killing the run
    sigint_handler(signal.SIG_IGN)
    with StopRequest() as stop:
        signal.raise_signal(signal.SIGINT)
        signal.raise_signal(signal.SIGINT)
        assert stop.reason == "SIGINT"
    assert signal.getsignal(signal.SIGINT) is signal.SIG_IGN


def test_request_without_a_signal_and_first_reason_wins():
    stop = StopRequest()
    stop.request("budget")
    stop.request("later")
    assert stop.reason == "budget"


def test_outside_the_main_thread_nothing_is_installed():
    errors: list[BaseException] = []

    def worker() -> None:
        try:
            with StopRequest() as stop:
                assert not stop._previous
        except BaseException as e:  # pragma: no cover - reported below
            errors.append(e)

    t = threading.Thread(target=worker)
    t.start()
    t.join()
    assert errors == []


def test_resume_command_names_config_and_run(tmp_path):
    run = tmp_path / "my run"
    cmd = resume_command("sft", run)
    assert cmd == f"t1 sft '{run}/config.yaml' 'trainer.out={run}' --resume"
