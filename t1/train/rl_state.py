"""What an RL run carries across steps and restarts, and how it is saved and restored.

A resumed run continues exactly as if never stopped: bitwise on CPU with the same number of
intra-op threads (float reductions are split by thread count); on GPUs up to the kernels' own
nondeterminism (atomics), unless `torch.use_deterministic_algorithms(True)`. A test kills runs
with SIGTERM and SIGKILL, also in the middle of a checkpoint, and compares. It holds because every
input of a step is either saved or derived from (seed, step):

    saved in step-N/         policy weights (safetensors), optimiser and scheduler states, the
                             EMA anchor's weights, the prompt order's (epoch, position), the step
                             and update counters, the bad-step counters, the global RNG states
    derived from the seed    each step's sampling seed (`derive_seed(seed, "rollout", step,
                             rank)`), the selection generator, each epoch's prompt permutation
    rebuilt identically      the model's non-persistent buffers, the tokenizer, the prompts
                             (curated prompts are read back from the run's curated.jsonl)

The HF engine shares the policy module, so restoring the weights restores the sampler too;
metrics.jsonl rows written after the checkpoint by the killed run are dropped on resume
(`MetricLogger(resume_step=...)`). Checkpoints are written atomically (t1.train.checkpoint):
a half-written `.step-N.tmp/` is never chosen.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import torch

from t1.errors import ConfigError, T1Error
from t1.runs import latest_checkpoint
from t1.train.checkpoint import save_checkpoint

# metrics that measure time, not learning: they differ between a run and its resumed twin
TIMING_KEYS = ("time/", "tokens_per_s")


def derive_seed(*parts: Any) -> int:
    """A stable 63-bit seed from any parts (independent of PYTHONHASHSEED)."""
    digest = hashlib.sha256(":".join(map(str, parts)).encode()).digest()
    return int.from_bytes(digest[:8], "little") & (2**63 - 1)


class PromptOrder:
    """Epoch-wise shuffled prompt indices; its state (epoch, position) goes into checkpoints."""

    def __init__(self, n: int, seed: int):
        if n == 0:
            raise ConfigError("no RL prompts to train on (data.train is empty after curation)")
        self.n, self.seed, self.epoch, self.pos = n, seed, 0, 0

    def _perm(self) -> list[int]:
        g = torch.Generator().manual_seed(derive_seed(self.seed, "epoch", self.epoch))
        return torch.randperm(self.n, generator=g).tolist()

    def take(self, m: int) -> list[int]:
        out: list[int] = []
        while len(out) < m:
            perm = self._perm()
            grab = perm[self.pos : self.pos + m - len(out)]
            out += grab
            self.pos += len(grab)
            if self.pos >= self.n:
                self.epoch, self.pos = self.epoch + 1, 0
        return out

    def state_dict(self) -> dict[str, int]:
        return {"epoch": self.epoch, "pos": self.pos}

    def load_state_dict(self, state: dict[str, int]) -> None:
        self.epoch, self.pos = state["epoch"], state["pos"]


def save_rl_checkpoint(
    ckpt_root: Path, step: int, model: Any, tokenizer: Any, state: dict[str, Any], keep_last: int
) -> Path:
    """`save_checkpoint`, with a failed write (a full disk) turned into a one-line `T1Error`.

    The failed `.step-N.tmp/` is removed by `save_checkpoint`; the previous checkpoint is
    untouched, and the message names it.
    """
    try:
        return save_checkpoint(ckpt_root, step, model, tokenizer, state, keep_last=keep_last)
    except OSError as e:
        previous = latest_checkpoint(ckpt_root)
        kept = f"{previous} is intact" if previous else "there is no earlier checkpoint"
        raise T1Error(
            f"could not write checkpoint step-{step} in {ckpt_root} ({e.strerror or e}); {kept}"
        ) from e


def load_weights(model: torch.nn.Module, ckpt: Path) -> None:
    """The policy weights of a checkpoint folder, in place (a tied lm_head is saved once)."""
    from safetensors.torch import load_file

    weights: dict[str, torch.Tensor] = {}
    for f in sorted(ckpt.glob("*.safetensors")):
        weights.update(load_file(str(f)))
    missing, unexpected = model.load_state_dict(weights, strict=False)
    tied = getattr(model.config, "tie_word_embeddings", False)
    if unexpected or [m for m in missing if not (tied and "lm_head" in m)]:
        raise T1Error(f"{ckpt}: weights do not match the model ({missing[:3]} {unexpected[:3]})")
