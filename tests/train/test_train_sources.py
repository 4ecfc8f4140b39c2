"""Training reads every data source: SFT on a parquet file, RL on a save_to_disk folder; and
curation, training and evaluation ask the model the identical prompt."""

from __future__ import annotations

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).parent))

from rl_toy import TASK, ScriptedEngine, toy_config  # noqa: E402
from test_sft import TINY, make_traces  # noqa: E402

from t1.config import SFTStage, load_config  # noqa: E402
from t1.data.problems import Problem  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model, format_prompts  # noqa: E402
from t1.rollout import SamplingParams  # noqa: E402
from t1.runs import read_jsonl  # noqa: E402
from t1.train.curate import curate_prompts  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402
from t1.train.rl_run import run_rl  # noqa: E402
from t1.train.sft import train_sft  # noqa: E402

datasets = pytest.importorskip("datasets", reason="datasets is a runtime dependency of t1")


@pytest.fixture(autouse=True)
def datasets_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "hf-datasets-cache")


def test_sft_trains_on_a_parquet_file(tmp_path: Path) -> None:
    # the traces' columns under other names, mapped by the config
    rows = [{"question": r["prompt"], "output": r["response"]} for r in make_traces(24)]
    path = tmp_path / "traces.parquet"
    datasets.Dataset.from_list(rows).to_parquet(str(path))
    cfg = load_config(
        SFTStage,
        None,
        [*TINY, f"data.train={path}", "trainer.steps=3", f"trainer.out={tmp_path / 'sft'}"],
    )
    _, summary = train_sft(cfg)
    metrics = read_jsonl(tmp_path / "sft" / "metrics.jsonl")
    assert summary["steps"] == 3 and summary["n_train"] + summary["n_eval"] == 24
    assert [m["step"] for m in metrics if "loss" in m] == [1, 2, 3]
    assert (tmp_path / "sft" / "final" / "config.json").is_file()


def test_rl_trains_on_a_save_to_disk_folder(tmp_path: Path) -> None:
    rows = [{"prompt": f"q{i}", "answer": "0", "task": TASK} for i in range(8)]
    held = [{"prompt": f"h{i}", "answer": "0", "task": TASK} for i in range(4)]
    datasets.DatasetDict(
        {"train": datasets.Dataset.from_list(rows), "test": datasets.Dataset.from_list(held)}
    ).save_to_disk(str(tmp_path / "ds"))
    out = tmp_path / "rl"
    cfg = toy_config(
        str(out), f"data.train={tmp_path / 'ds'}", f"data.eval={tmp_path / 'ds'}", "trainer.steps=2"
    )
    assert run_rl(cfg) == 0
    metrics = read_jsonl(out / "metrics.jsonl")
    assert [m["step"] for m in metrics if "reward/mean" in m] == [1, 2]
    report = json.loads((out / "data.json").read_text(encoding="utf-8"))
    # data.train read the folder's train split, data.eval its test split
    assert (report["train"]["rows"], report["eval"]["rows"]) == (8, 4)
    assert report["train"]["path"] == str(tmp_path / "ds")


class Recording(ScriptedEngine):
    """The scripted engine, remembering every prompt it was asked."""

    def __init__(self, tokenizer) -> None:
        super().__init__(tokenizer)
        self.seen: list[str] = []

    def generate(self, prompts, n, sampling):
        self.seen.extend(prompts)
        return super().generate(prompts, n, sampling)


def test_curation_and_training_ask_the_identical_prompt(tmp_path: Path) -> None:
    chat = [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "q7"}]
    problems = [
        Problem("m", "q7", "0", TASK, {"messages": chat}),  # a `messages` row
        Problem("t", "q8", "0", TASK),  # a text row: the template and system prompt apply
    ]
    cfg = toy_config(
        str(tmp_path / "rl"),
        "trainer.steps=1",
        "rl.prompts_per_step=2",
        "rl.curate.n=2",
        "rl.curate.max_pass=1.0",
        "data.prompt_template=Solve: {prompt}",
        "data.system_prompt=SYS",
    )
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    engine = Recording(tok)
    sampling = SamplingParams(temperature=1.0, max_new_tokens=4, seed=0)
    kept, _ = curate_prompts(engine, tok, problems, cfg.rl.curate, sampling, cfg.reward, cfg.data)
    curated = list(engine.seen)
    engine.seen.clear()
    RLTrainer(cfg, model, tok, kept, engine=engine).train()
    # the full chat (its own system turn) for the messages row; template + SYS for the text row
    expected = [
        tok.apply_chat_template(chat, tokenize=False, add_generation_prompt=True),
        tok.apply_chat_template(
            [{"role": "system", "content": "SYS"}, {"role": "user", "content": "Solve: q8"}],
            tokenize=False,
            add_generation_prompt=True,
        ),
    ]
    assert curated == expected
    assert sorted(set(engine.seen)) == sorted(expected)
    assert format_prompts(tok, problems, cfg.data) == expected  # what t1 eval and t1 scale ask
