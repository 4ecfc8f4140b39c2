"""The tolerance helpers of tests/rounding.py: hand-counted terms, and the CANCEL assumption
checked on an RL-like batch."""

from __future__ import annotations

import torch
from rounding import CANCEL, EPS32, RANDOM_WALK, bound, logprob_terms

from t1.algo import rloo_advantages
from t1.config import TinyModelConfig
from t1.models import build_tiny_model
from t1.rollout import HFEngine, SamplingParams, collate_rollouts, compute_logprobs

PROMPTS = ["<user>1+1=?<assistant>", "<user>123*45=?<assistant>", "<user>7<assistant>"]


def test_bound_and_terms_by_hand(tiny_model):
    assert EPS32 == 2.0**-23
    assert bound(10, 2.0) == 20 * 2.0**-23
    cfg = tiny_model.config  # hidden 64, 4 heads of 16, intermediate 128, 2 layers
    # per layer 5·64 + 16 + 2·9 + 128 + 8 = 490; 2 layers + final norm and head 2·64 + vocabulary
    assert logprob_terms(cfg, 9) == 2 * 490 + 128 + cfg.vocab_size


def test_gradient_terms_add_up_to_less_than_cancel_times_the_largest_entry(tiny_tokenizer):
    """An RL loss Σ_t A_row·log p_t / N: per tensor, the absolute per-position terms of every
    entry (autograd hooks on the linear layers) and the absolute per-row gradients at unit
    advantage add up to at most CANCEL x the tensor's largest gradient entry, and the root of
    the per-position terms' sum of squares is at most RANDOM_WALK x that entry."""
    model = build_tiny_model(tiny_tokenizer, TinyModelConfig(hidden_size=64, num_layers=2), seed=0)
    sp = SamplingParams(temperature=1.2, max_new_tokens=6, seed=2)
    batch = collate_rollouts(HFEngine(model, tiny_tokenizer).generate(PROMPTS, 8, sp), 0)
    rewards = torch.rand(3, 8, generator=torch.Generator().manual_seed(0)).round()
    adv = rloo_advantages(rewards).reshape(-1)
    mask, n_tok = batch.response_mask, batch.response_mask.sum()
    linears = [m for m in model.modules() if isinstance(m, torch.nn.Linear)]
    inputs: dict[torch.nn.Module, torch.Tensor] = {}
    per_position: dict[torch.nn.Module, torch.Tensor] = {}
    squares: dict[torch.nn.Module, torch.Tensor] = {}

    def keep_input(module, args, out):
        inputs[module] = args[0].detach().abs().flatten(0, -2)

    def add_terms(module, grad_in, grad_out):
        g = grad_out[0].abs().flatten(0, -2)  # (positions, out)
        per_position[module] = g.T @ inputs[module]
        squares[module] = (g**2).T @ inputs[module] ** 2

    hooks = [m.register_forward_hook(keep_input) for m in linears]
    hooks += [m.register_full_backward_hook(add_terms) for m in linears]
    # the full-logits pass: the chunked head uses lm_head's weight without calling the module,
    # so its hooks would not fire (the gradients are the same, t1.rollout.head)
    logp = compute_logprobs(model, batch, 1.2, len(mask), share_prompts=False, chunked_head=False)
    (-(adv[:, None] * logp * mask).sum() / n_tok).backward()
    for h in hooks:
        h.remove()
    grads = {m: m.weight.grad.clone() for m in linears}
    per_row = {m: torch.zeros_like(g) for m, g in grads.items()}
    for i in range(len(mask)):
        model.zero_grad(set_to_none=True)
        logp = compute_logprobs(
            model, batch, 1.2, len(mask), share_prompts=False, chunked_head=False
        )
        (-(logp[i] * mask[i]).sum() / n_tok).backward()
        for m in linears:
            per_row[m] += m.weight.grad.abs()
    for m, g in grads.items():
        largest = float(g.abs().max())
        assert float(per_position[m].max()) <= CANCEL * largest
        assert float(squares[m].max()) ** 0.5 <= RANDOM_WALK * largest
        assert float(per_row[m].max()) <= CANCEL * largest
