"""`t1 rl CONFIG`: the stage's entry point around the loop in t1.train.rl (checks, loading,
curation, then `RLTrainer.train`)."""

from __future__ import annotations

from t1.config import RLStage
from t1.models.lora import add_adapters
from t1.rewards.reward import validate_reward_config
from t1.rollout import make_engine
from t1.runs import seed_everything
from t1.train.distributed import broadcast_parameters_, close_distributed, init_distributed
from t1.train.plan import plan_rl
from t1.train.rl import RLTrainer
from t1.train.rl_setup import (
    check_prompt_lengths,
    check_rl_config,
    context_size,
    load_rl_problems,
    maybe_curate,
)
from t1.train.sharded_load import load_learner
from t1.train.sharding import autocast, prepare_learner, use_fsdp


def run_rl(cfg: RLStage, resume: bool = False) -> int:
    """`t1 rl CONFIG`: check, load the model and prompts, curate, train; 0 on success.

    Every check that can fail does so before curation or training (t1.train.rl_setup), the
    memory plan before the model is loaded (t1.train.plan). Under FSDP2 each rank reads its
    float32 slices of a safetensors model straight from the files, or loads the whole model on
    CPU and keeps its slice (t1.train.sharded_load); curation already runs on the sharded model.
    """
    info = init_distributed(cfg.model.device, group_of_one=cfg.train.fsdp is True)
    try:
        check_rl_config(cfg, info.world)
        validate_reward_config(cfg.reward)
        problems, eval_problems = load_rl_problems(cfg, info.main)
        plan_rl(cfg, info, [*problems, *eval_problems])  # stops here when it cannot fit
        seed_everything(cfg.trainer.seed)
        sharded = use_fsdp(cfg.train, info.world)
        # sharded: each rank reads only its slices where the weights allow (sharded_load)
        model, tokenizer = load_learner(cfg.model, cfg.train, info)
        context = context_size(model)
        check_rl_config(cfg, info.world, context)
        check_prompt_lengths(cfg, tokenizer, [*problems, *eval_problems], context)
        if not sharded:
            broadcast_parameters_(model, info)
        model = add_adapters(model, cfg.model.lora, cfg.model, cfg.trainer.seed)
        model = prepare_learner(model, cfg.train, cfg.model.dtype, info)
        engine = make_engine(cfg.rollout, model, tokenizer)  # one for curation and training
        with autocast(model):
            problems = maybe_curate(cfg, model, tokenizer, problems, info, engine)
        trainer = RLTrainer(cfg, model, tokenizer, problems, info, engine, eval_problems)
        last = trainer.train(resume)
        if info.main and not trainer.stopped:
            shown = {k: v for k, v in last.items() if k.startswith(("reward/", "eval/"))}
            print(
                f"t1 rl: {trainer.step} steps done in {trainer.run.path}: "
                + ", ".join(f"{k}={v:.3f}" for k, v in shown.items() if isinstance(v, float))
            )
    except BaseException:
        close_distributed(failed=True)
        raise
    close_distributed()
    return 0
