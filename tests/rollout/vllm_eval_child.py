"""Child of test_vllm_eval.py: held-out evaluation during RL on two gloo ranks around the vLLM
double, the learner sharded with FSDP2, after an update that was skipped.

Run by `torch.distributed.run --nproc_per_node=2` with OUT and TP (the tensor-parallel size).
Step 1's gradient is made NaN on rank 0 alone, so every rank skips the update and the engine,
asleep at level 2 since its rollout, holds no weights; the evaluation that follows must bring
them back on every rank together (a collective over the shards). The shares are uneven (5
problems, one per `generate` call), so ranks call `generate` a different number of times.
Afterwards each rank evaluates all the problems itself (the same requests on every rank, as a
tensor-parallel group needs) for rank 0 to compare with the merged rows. Writes OUT/rank-R.json.
"""

from __future__ import annotations

import json
import sys
from pathlib import Path

import torch

HERE = Path(__file__).parent
sys.path[:0] = [str(HERE), str(HERE.parent / "train")]

import vllm_double  # noqa: E402
from rl_toy import toy_config, toy_problems  # noqa: E402

import t1.train.rl as rl_module  # noqa: E402
from t1.eval.evaluate import graded_rows  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.models.sharded import is_sharded  # noqa: E402
from t1.rollout import sampling_params  # noqa: E402
from t1.train.distributed import close_distributed, init_distributed  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402
from t1.train.rl_eval import prepare_engine  # noqa: E402
from t1.train.rl_state import derive_seed  # noqa: E402


def poison_first_step(rank: int) -> None:
    """Rank 0's first gradient gets a NaN: the global norm is NaN on every rank."""
    real = rl_module.accumulate_gradients
    calls = [0]

    def poisoned(model, *args, **kwargs):
        stats = real(model, *args, **kwargs)
        calls[0] += 1
        if calls[0] == 1 and rank == 0:
            grad = next(model.parameters()).grad
            local = grad.to_local() if hasattr(grad, "to_local") else grad
            local.view(-1)[0] = float("nan")
        return stats

    rl_module.accumulate_gradients = poisoned


def main(out: Path, tp: int) -> None:
    vllm_double.install()
    info = init_distributed("cpu")
    poison_first_step(info.rank)
    cfg = toy_config(
        str(out / "run"),
        "rollout.engine=vllm",
        f"rollout.tensor_parallel_size={tp}",
        "rollout.batch_size=2",  # with eval.n=2: one problem per generate call
        "rl.prompts_per_step=2",
        "rl.k=4",
        "rl.entropy_coef=0.01",
        "trainer.steps=2",
        "trainer.eval_every=1",
        "eval.n=2",
        "eval.ks=[1,2]",
        "sampling.max_new_tokens=6",
    )
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    held = toy_problems(5)
    trainer = RLTrainer(cfg, model, tok, toy_problems(8), info, eval_problems=held)
    last = trainer.train()
    record: dict = {
        "rank": info.rank,
        "sharded": is_sharded(trainer.model),
        "bad_steps": trainer.bad_total,
        "eval_keys": sorted(k for k in last if k.startswith("eval/")),
    }
    # the same evaluation by each engine alone, on all the problems
    sampling = sampling_params(
        cfg.sampling, derive_seed(cfg.trainer.seed, "eval"), temperature=cfg.rl.eval_temperature
    )
    with prepare_engine(trainer.engine, trainer.model), torch.no_grad():
        rows = graded_rows(
            trainer.engine, tok, held, cfg.reward.task, sampling, 2, cfg.reward, cfg.data
        )
    record["alone"] = [(r["index"], r["sample"], r["response"]) for r in rows]
    (out / f"rank-{info.rank}.json").write_text(json.dumps(record))
    close_distributed()


if __name__ == "__main__":
    main(Path(sys.argv[1]), int(sys.argv[2]))
