"""close_distributed: a barrier before a healthy group is destroyed, nothing after an error in a
group of several processes (the collectives themselves are stood in for)."""

from __future__ import annotations

import pytest
import torch.distributed as dist

import t1.train.distributed as distributed


@pytest.fixture
def group(monkeypatch):
    """A stand-in process group of `world` ranks; returns the calls close_distributed makes."""
    calls: list[str] = []

    def make(world: int, backend: str = "gloo") -> list[str]:
        monkeypatch.setattr(dist, "is_initialized", lambda: True)
        monkeypatch.setattr(dist, "get_world_size", lambda: world)
        monkeypatch.setattr(dist, "get_backend", lambda: backend)
        monkeypatch.setattr(
            dist, "monitored_barrier", lambda **kw: calls.append(f"barrier {kw['timeout']}")
        )
        monkeypatch.setattr(dist, "barrier", lambda **kw: calls.append("barrier"))
        monkeypatch.setattr(dist, "destroy_process_group", lambda: calls.append("destroy"))
        return calls

    return make


def test_a_healthy_group_meets_at_a_barrier_then_closes(group):
    calls = group(2)
    distributed.close_distributed()
    assert calls == [f"barrier {distributed.CLOSE_TIMEOUT}", "destroy"]


def test_after_an_error_a_group_of_several_is_left_to_the_exit(group):
    calls = group(2)
    distributed.close_distributed(failed=True)
    assert calls == []  # no barrier a dead rank would never reach, no wait on its collectives


def test_a_group_of_one_closes_without_a_barrier_even_after_an_error(group):
    calls = group(1)
    distributed.close_distributed(failed=True)
    distributed.close_distributed()
    assert calls == ["destroy", "destroy"]


def test_without_a_group_nothing_happens(monkeypatch):
    monkeypatch.setattr(dist, "is_initialized", lambda: False)
    monkeypatch.setattr(dist, "destroy_process_group", lambda: pytest.fail("destroyed"))
    distributed.close_distributed()
