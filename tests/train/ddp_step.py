"""One RL update under torchrun (or alone): writes its gradients, metrics and the updated
parameters to argv[1].

torchrun --nproc_per_node 2 ddp_step.py OUT.pt RUN_DIR
"""

from __future__ import annotations

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).parent))

from rl_toy import ADAM_AS_SGD, ScriptedEngine, nudge, toy_config, toy_problems  # noqa: E402

from t1.config import RLStage  # noqa: E402
from t1.models import build_char_tokenizer, build_tiny_model  # noqa: E402
from t1.train.distributed import close_distributed, init_distributed  # noqa: E402
from t1.train.rl import RLTrainer  # noqa: E402

PROBLEMS = 8
ANCHOR_NUDGE = 0.01  # so the KL term is not zero


def ddp_config(run_dir: str) -> RLStage:
    return toy_config(
        run_dir,
        "rl.prompts_per_step=4",
        "rl.beta=0.1",
        "rl.entropy_coef=0.01",
        "rl.micro_batch_size=3",
        "rl.old_logp=learner",  # the scripted engine's log-probs are zeros
        "train.fsdp=false",  # the replicated path: every rank whole, gradients summed
        *ADAM_AS_SGD,
    )


def main(out: str, run_dir: str) -> None:
    info = init_distributed("cpu")
    cfg = ddp_config(run_dir)
    tok = build_char_tokenizer(cfg.model.tiny.alphabet)
    model = build_tiny_model(tok, cfg.model.tiny, seed=0)
    trainer = RLTrainer(cfg, model, tok, toy_problems(PROBLEMS), info, engine=ScriptedEngine(tok))
    nudge(trainer.anchor, ANCHOR_NUDGE)
    metrics = trainer.train_step()
    if info.main:
        grads = {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}
        torch.save(
            {
                "params": {k: v.clone() for k, v in model.state_dict().items()},
                "grads": grads,
                "metrics": metrics,
            },
            out,
        )
    close_distributed()  # a barrier first: rank 1 waits while rank 0 saves


if __name__ == "__main__":
    main(sys.argv[1], sys.argv[2])
