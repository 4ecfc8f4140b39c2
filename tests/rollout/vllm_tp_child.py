"""Child of test_vllm_tp.py: a tensor-parallel group of 2 gloo ranks around the vLLM double.

Run by `torch.distributed.run --nproc_per_node=2`. Both ranks build the RL trainer with
`rollout.tensor_parallel_size=2` (so one engine spans both), then record to OUT/rank-R.json:
what the group generated and what this rank kept, one whole RL step, the engine's weights
after it (pushed from the learner's FSDP2 shards: `train.fsdp=auto` shards it over the two
ranks), and a rank-dependent request (which the double must refuse).
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "train"), str(HERE.parent)]

import vllm_double  # noqa: E402
from rl_toy import toy_config, toy_problems  # noqa: E402
from rounding import logprob_tolerance  # noqa: E402

from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.sharded import is_sharded, local_shards  # noqa: E402
from t1.rollout import SamplingParams, collate_rollouts  # noqa: E402
from t1.rollout.weights import iter_full_weights  # noqa: E402
from t1.train.distributed import close_distributed, init_distributed  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402
from t1.train.rl_metrics import Timer  # noqa: E402


def engine_matches(trainer) -> bool:
    """Whether the double's model holds exactly the learner's weights (gathered from the
    shards: a collective, so every rank calls this)."""
    worker = vllm_double.state(vllm_double.state(trainer.engine.llm).worker)
    full = dict(iter_full_weights(trainer.model))
    engine = dict(worker.model.named_parameters())
    return engine.keys() <= full.keys() and all(torch.equal(engine[k], full[k]) for k in engine)


def record_generated(engine) -> list:
    """The rollouts `engine.generate` returns from now on, as it returns them."""
    seen: list = []
    generate = engine.generate

    def recording(*args, **kwargs):
        out = generate(*args, **kwargs)
        seen.extend(out)
        return out

    engine.generate = recording
    return seen


def main(out: Path) -> None:
    vllm_double.install()
    info = init_distributed("cpu")
    cfg = toy_config(
        str(out / "run"),
        "rollout.engine=vllm",
        "rollout.tensor_parallel_size=2",
        "rl.prompts_per_step=4",
        "rl.k=4",
        "rl.beta=0.1",
        "rl.tis_cap=2.0",
        "rl.entropy_coef=0.01",  # a gradient even when every reward is equal
        "sampling.temperature=1.2",
        "sampling.max_new_tokens=6",
    )
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    trainer = RLTrainer(cfg, model, tok, toy_problems(8), info)
    record: dict = {"rank": info.rank, "engine": type(trainer.engine).__name__}

    problems, rollouts, _ = trainer.rollout(Timer())
    record["kept"] = [p.id for p in problems]
    record["kept_prompt_index"] = [r.prompt_index for r in rollouts]
    group = [trainer.prompts[i] for i in range(4)]
    texts = [r.text for r in trainer.engine.generate(group, 2, SamplingParams(seed=7))]
    record["group_texts"] = texts

    record["learner_sharded"] = is_sharded(trainer.model)
    before = [p.detach().clone() for p in local_shards(trainer.model)]
    generated = record_generated(trainer.engine)
    metrics = trainer.train_step()
    # the group's rows (both ranks' shares): how far the engine's log-probs may lie from the
    # learner's on the same weights (tests/rounding.py), and the tokens of the step
    rows = collate_rollouts(generated, tok.pad_token_id)
    start = build_tiny_model(tok, cfg.model.tiny, seed=0)  # the learner's weights before it
    record["logp_bound"] = logprob_tolerance(start, rows.input_ids, cfg.sampling.temperature)
    record["group_tokens"] = int(rows.response_mask.sum())
    record["metrics"] = {k: v for k, v in metrics.items() if isinstance(v, int | float)}
    record["learner_changed"] = any(
        not torch.equal(a, b) for a, b in zip(before, local_shards(trainer.model))
    )
    record["engine_has_learner_weights"] = engine_matches(trainer)
    record["calls"] = [c[0] for c in vllm_double.state(trainer.engine.llm).calls]

    try:  # each rank its own prompt: vLLM's external_launcher forbids it
        trainer.engine.generate([group[info.rank]], 2, SamplingParams(seed=7))
        record["mismatch_error"] = None
    except RuntimeError as e:
        record["mismatch_error"] = str(e)

    (out / f"rank-{info.rank}.json").write_text(json.dumps(record))
    close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
