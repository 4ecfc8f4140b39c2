"""Data sources through `datasets`: parquet, JSON, arrow, save_to_disk folders, Hub ids served
from a local cache offline, Hub repo files; column mapping and its errors."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from t1.config import DataConfig
from t1.data import Fields, Source, load_problems, load_traces, problems_for, traces_for
from t1.data.sources import eval_source
from t1.errors import ConfigError, DataError

datasets = pytest.importorskip("datasets", reason="datasets is a runtime dependency of t1")

ROWS = [
    {"problem": "1+1?", "answer": "2", "level": 1},
    {"problem": "2+3?", "answer": "5", "level": 2},
    {"problem": "Half of 9?", "answer": "4.5", "level": 3},
]


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """`datasets` caches what its builders read; keep that cache inside the test's folder."""
    cache = tmp_path / "hf-datasets-cache"
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", cache)
    return cache


def test_parquet_json_and_arrow_files(tmp_path: Path) -> None:
    ds = datasets.Dataset.from_list(ROWS)
    ds.to_parquet(str(tmp_path / "p.parquet"))
    (tmp_path / "p.json").write_text(json.dumps(ROWS), encoding="utf-8")  # a JSON array
    for name in ("p.parquet", "p.json"):
        ps = load_problems(tmp_path / name)
        assert [(p.prompt, p.answer, p.meta["level"]) for p in ps] == [
            ("1+1?", "2", 1),
            ("2+3?", "5", 2),
            ("Half of 9?", "4.5", 3),
        ]
        assert [p.id for p in ps] == ["p-0", "p-1", "p-2"]  # index from 0, as ds[i]
    ds.save_to_disk(str(tmp_path / "saved"))
    arrow = next((tmp_path / "saved").glob("*.arrow"))
    assert [p.answer for p in load_problems(arrow)] == ["2", "5", "4.5"]


def test_bad_rows_are_named_by_dataset_split_and_row(tmp_path: Path) -> None:
    rows = [*ROWS[:2], {"problem": "  ", "answer": "1", "level": 0}, ROWS[2]]
    path = tmp_path / "bad.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    with pytest.raises(DataError, match=rf"^{path}\[train\]\[2\]: 'problem' is empty$"):
        load_problems(path)
    ok = load_problems(path, skip_bad_rows=True)
    assert len(ok) == 3 and ok.skipped == 1 and ok.errors[0].startswith(f"{path}[train][2]: ")
    assert len(load_problems(path, limit=2)) == 2


def test_save_to_disk_folder_and_its_splits(tmp_path: Path) -> None:
    dd = datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(ROWS[:2]), "test": datasets.Dataset.from_list(ROWS)}
    )
    dd.save_to_disk(str(tmp_path / "dd"))
    d = DataConfig(train=str(tmp_path / "dd"), eval=str(tmp_path / "dd"))
    # no split named: data.train reads "train", data.eval "test"
    assert len(problems_for(d, "train")) == 2 and len(problems_for(d, "eval")) == 3
    d.split = "test"
    assert len(problems_for(d, "train")) == 3
    d.split = "validation"
    with pytest.raises(DataError, match="no split 'validation'; its splits: train, test"):
        problems_for(d, "train")
    # data.split is data.train's; with no data.train (t1 eval, t1 scale) it names data.eval's
    assert len(problems_for(DataConfig(eval=str(tmp_path / "dd"), split="train"), "eval")) == 2
    d.eval_split = "train"
    assert len(problems_for(d, "eval")) == 2
    d.train = None
    assert len(problems_for(d, "eval")) == 2  # data.eval_split still wins over data.split
    # a folder holding one Dataset (not a dict of splits)
    datasets.Dataset.from_list(ROWS).save_to_disk(str(tmp_path / "one"))
    assert len(load_problems(Source(str(tmp_path / "one"), default_split="test"))) == 3
    (tmp_path / "empty").mkdir()
    with pytest.raises(DataError, match="not a dataset saved with save_to_disk"):
        load_problems(tmp_path / "empty")


def test_a_missing_mapped_column_names_the_columns_present(tmp_path: Path) -> None:
    path = tmp_path / "p.parquet"
    datasets.Dataset.from_list(ROWS).to_parquet(str(path))
    with pytest.raises(DataError) as err:
        load_problems(path, fields=Fields(prompt="question_text"))
    assert str(err.value) == (
        f"{path}[train][0]: no column 'question_text' (data.prompt_field); the row's columns: "
        "'problem', 'answer', 'level'"
    )
    jsonl = tmp_path / "p.jsonl"
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    with pytest.raises(DataError, match=rf"^{jsonl}:1: no column 'gold' \(data.answer_field\)"):
        load_problems(jsonl, fields=Fields(answer="gold"))
    # no usual name for the answer either: the message lists the columns and the key to set
    rows = [{"problem": "1+1?", "label": "2"}]
    jsonl.write_text(json.dumps(rows[0]) + "\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"the row's columns: 'problem', 'label' \(set data.answer"):
        load_problems(jsonl)
    (p,) = load_problems(jsonl, fields=Fields(answer="label"))
    assert (p.prompt, p.answer, p.meta) == ("1+1?", "2", {})


def test_mapped_and_nested_columns_and_chat_prompts(tmp_path: Path) -> None:
    # verl's parquet layout: the prompt is a chat list, the answer sits in reward_model
    rows = [
        {
            "data_source": "gsm8k",
            "prompt": [{"role": "user", "content": "2+2?"}],
            "reward_model": {"style": "rule", "ground_truth": "4"},
        }
    ]
    path = tmp_path / "verl.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    (p,) = load_problems(path)
    assert (p.prompt, p.answer) == ("2+2?", "4")
    assert p.prompt_input == [{"role": "user", "content": "2+2?"}]
    # a chat that carries its answer is cut after the last user turn: no solution in the prompt
    chat = [
        {"role": "system", "content": "S"},
        {"role": "user", "content": "3+3?"},
        {"role": "assistant", "content": "6"},
    ]
    jsonl = tmp_path / "chat.jsonl"
    jsonl.write_text(json.dumps({"conv": chat, "gold": 6}) + "\n", encoding="utf-8")
    (q,) = load_problems(jsonl, fields=Fields(messages="conv", answer="gold"))
    assert q.prompt_input == chat[:2] and q.answer == "6" and "conv" not in q.meta


def test_mapping_keys_come_from_the_config(tmp_path: Path) -> None:
    jsonl = tmp_path / "t.jsonl"
    rows = [{"q": "P", "a": "R", "x": 1}, {"q": "P2", "a": "R2", "x": 2}]
    jsonl.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    d = DataConfig(train=str(jsonl), prompt_field="q", response_field="a", max_train=1)
    (t,) = traces_for(d)
    assert (t.prompt, t.response, t.answer, t.meta) == ("P", "R", None, {"x": 1})


def test_without_train_data_the_subset_names_the_eval_sets() -> None:
    gpqa = DataConfig(eval="Idavidrein/gpqa", subset="gpqa_diamond")
    assert eval_source(gpqa) == Source("Idavidrein/gpqa", None, "gpqa_diamond", None, "test")
    rl = DataConfig(train="openai/gsm8k", subset="main", eval="Idavidrein/gpqa")
    assert eval_source(rl).subset is None  # data.subset is then data.train's (main)


def test_files_need_a_hub_id(tmp_path: Path) -> None:
    with pytest.raises(ConfigError, match="is not a Hub dataset id"):
        load_problems(Source(str(tmp_path), files="sft.jsonl"))


def _hub_cache(home: Path) -> None:
    """Fill HF_HOME as an earlier online session would have left it, for two Hub datasets.

    `datasets` cache (HF_HOME/datasets): `load_dataset("tiny-org/math-mini")` online prepares the
    dataset with a packaged builder and writes `<namespace>___<name>/<config>/<version>/<hash>/`
    (arrow files named `<name>-<split>.arrow` plus dataset_info.json); offline, its Cache builder
    serves the newest such folder (datasets/load.py CachedDatasetModuleFactory and
    packaged_modules/cache/cache.py). The same builder writes it here from a local file; the
    builder is given no repo_id (it would require the data files to be hf:// paths of that repo),
    so the folder it writes is renamed with the namespace prefix that a repo_id adds.

    huggingface_hub cache (HF_HOME/hub): `hf_hub_download` keeps a repo's files under
    `datasets--<owner>--<name>/snapshots/<commit>/` with `refs/main` naming the commit.
    """
    from datasets.packaged_modules.json.json import Json

    src = home / "src.jsonl"
    src.write_text("".join(json.dumps(r) + "\n" for r in ROWS), encoding="utf-8")
    cache = home / "datasets"
    builder = Json(
        cache_dir=str(cache),
        dataset_name="math-mini",
        config_id="default",
        hash="0123456789abcdef",
        data_files={"test": str(src)},
    )
    builder.download_and_prepare()
    shutil.move(str(cache / "math-mini"), str(cache / "tiny-org___math-mini"))

    repo = home / "hub" / "datasets--zai-org--T1"
    snapshot = repo / "snapshots" / "c0ffee"
    snapshot.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text("c0ffee", encoding="utf-8")
    sft = [
        {"messages": [{"role": "user", "content": "P1"}, {"role": "assistant", "content": "R1"}]},
        {"conversations": [{"from": "human", "value": "P2"}, {"from": "gpt", "value": "R2"}]},
    ]
    (snapshot / "sft.jsonl").write_text("".join(json.dumps(r) + "\n" for r in sft), "utf-8")


OFFLINE_SCRIPT = """
import json, sys
from t1.config import DataConfig
from t1.data import problems_for, traces_for
from t1.errors import DataError
ps = problems_for(DataConfig(eval="tiny-org/math-mini"), "eval")
ts = traces_for(DataConfig(train="zai-org/T1", files="sft.jsonl"))
try:
    problems_for(DataConfig(train="tiny-org/not-cached"), "train")
    missing = None
except DataError as e:
    missing = str(e)
print(json.dumps({"problems": [[p.prompt, p.answer] for p in ps],
                  "traces": [[t.prompt, t.response] for t in ts], "missing": missing}))
"""


def test_hub_ids_are_served_from_the_local_cache_offline(tmp_path: Path) -> None:
    home = tmp_path / "hf-home"
    home.mkdir()
    _hub_cache(home)
    env = {**os.environ, "HF_HOME": str(home), "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1"}
    for key in ("HF_DATASETS_CACHE", "HF_HUB_CACHE", "HUGGINGFACE_HUB_CACHE"):
        env.pop(key, None)
    out = subprocess.run(
        [sys.executable, "-c", OFFLINE_SCRIPT], env=env, capture_output=True, text=True, timeout=300
    )
    assert out.returncode == 0, out.stderr[-3000:]
    got = json.loads(out.stdout.strip().splitlines()[-1])
    assert got["problems"] == [[r["problem"], r["answer"]] for r in ROWS]
    assert got["traces"] == [["P1", "R1"], ["P2", "R2"]]
    assert got["missing"].startswith("tiny-org/not-cached: no such local file or folder, and ")
    assert got["missing"].endswith("(offline: only datasets in the local cache load)")


# Row layouts the T1 paper's files (zai-org/T1: sft.jsonl, rl-data.jsonl) may use; the files
# cannot be read from here, so every common SFT / RL layout is accepted without a mapping.
SFT_LAYOUTS = [
    {"prompt": "P", "response": "R"},
    {"instruction": "P", "output": "R"},
    {"instruction": "P", "input": "ctx", "output": "R"},
    {"query": "P", "response": "R"},
    {"problem": "P", "solution": "R"},
    {"question": "P", "answer": "R"},
    {"messages": [{"role": "user", "content": "P"}, {"role": "assistant", "content": "R"}]},
    {"conversations": [{"from": "human", "value": "P"}, {"from": "gpt", "value": "R"}]},
]
RL_LAYOUTS = [
    {"prompt": "P", "answer": "7"},
    {"question": "P", "answer": "7"},
    {"problem": "P", "solution": "so \\boxed{7}"},
    {"problem": "P", "final_answer": 7},
    {"query": "P", "ground_truth": "7"},
    {"prompt": [{"role": "user", "content": "P"}], "reward_model": {"ground_truth": "7"}},
]


@pytest.mark.parametrize("row", SFT_LAYOUTS, ids=lambda r: "+".join(r))
def test_paper_like_sft_layouts_load(tmp_path: Path, row: dict) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (t,) = load_traces(path)
    assert t.prompt == ("P\n\nctx" if "input" in row else "P") and t.response == "R"


@pytest.mark.parametrize("row", RL_LAYOUTS, ids=lambda r: "+".join(r))
def test_paper_like_rl_layouts_load(tmp_path: Path, row: dict) -> None:
    path = tmp_path / "rl-data.jsonl"
    path.write_text(json.dumps(row) + "\n", encoding="utf-8")
    (p,) = load_problems(path)
    assert (p.prompt, p.answer) == ("P", "7")


def test_an_unknown_layout_says_which_columns_and_keys(tmp_path: Path) -> None:
    path = tmp_path / "sft.jsonl"
    path.write_text(json.dumps({"src": "P", "tgt": "R", "lang": "en"}) + "\n", encoding="utf-8")
    with pytest.raises(DataError) as err:
        load_traces(path)
    assert str(err.value).startswith(f"{path}:1: missing the problem text (one of 'prompt', ")
    assert str(err.value).endswith(
        "the row's columns: 'src', 'tgt', 'lang' (set data.prompt_field or data.messages_field)"
    )
    with pytest.raises(DataError, match=r"columns: 'src', 'tgt', 'lang' \(set data.response_f"):
        load_traces(path, fields=Fields(prompt="src"))
    (t,) = load_traces(path, fields=Fields(prompt="src", response="tgt"))
    assert (t.prompt, t.response, t.meta) == ("P", "R", {"lang": "en"})
