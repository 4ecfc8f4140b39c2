"""Problem sets: disjointness by normalised prompt, generated splits, writing them."""

from __future__ import annotations

from pathlib import Path

import pytest

from t1.data import Problem, assert_disjoint, generate_splits, load_problems, write_splits
from t1.data.splits import normalize_prompt, overlap
from t1.data.tasks import get_task
from t1.errors import ConfigError, DataError


def P(text: str, i: int = 0) -> Problem:
    return Problem(str(i), text, "1")


def test_normalize_prompt() -> None:
    # NFKC folds the full-width digit; case and whitespace runs are ignored
    assert normalize_prompt("  Make\t９ from\n3  8 ") == "make 9 from 3 8"


def test_overlap_and_assert_disjoint() -> None:
    train = [P("Solve 2*x+1=5."), P("Solve 3*x+1=7.")]
    test = [P("solve  2*x+1=5. "), P("Solve 4*x+1=9.")]
    assert overlap(test, train) == ["solve 2*x+1=5."]
    with pytest.raises(
        DataError, match=r"'train' and 'test' share 1 prompt\(s\), e.g. 'solve 2\*x\+1=5.'"
    ):
        assert_disjoint({"train": train, "rl": [P("other")], "test": test})
    assert_disjoint({"train": train, "test": test[1:]})


@pytest.mark.parametrize("task", ["countdown", "linear"])
def test_generated_splits_are_disjoint_and_sized(tmp_path: Path, task: str) -> None:
    sizes = {"train": 600, "rl": 200, "test": 500}
    sets = generate_splits(task, sizes, seed=3)
    assert {k: len(v) for k, v in sets.items()} == sizes
    # disjoint even up to presentation (countdown: the same numbers in another order)
    t = get_task(task)
    keys = [{t.canonical(p) for p in ps} for ps in sets.values()]
    assert sum(map(len, keys)) == len(set().union(*keys)) == 1300
    paths = write_splits(tmp_path, sets)
    assert load_problems(paths["test"]) == sets["test"]


def test_write_splits_refuses_a_leak(tmp_path: Path) -> None:
    sets = generate_splits("linear", {"train": 50, "test": 50}, seed=0)
    sets["test"].append(sets["train"][7])
    with pytest.raises(DataError, match="'train' and 'test' share 1"):
        write_splits(tmp_path, sets)
    assert not (tmp_path / "test.jsonl").exists()


def test_bad_split_names_and_sizes() -> None:
    with pytest.raises(ConfigError, match="split name '../x'"):
        generate_splits("linear", {"../x": 3})
    with pytest.raises(ConfigError, match="size must be a non-negative integer"):
        generate_splits("linear", {"test": -1})
