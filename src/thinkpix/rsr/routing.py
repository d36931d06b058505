"""Routing: turn per-token gate logits into (expert indices, expert weights).

Training, `routing="hard"` (paper): Gumbel-Softmax with temperature tau, winner-takes-all.
    p~ = softmax((g + G) / tau),  G ~ Gumbel(0, 1) i.i.d. per token and expert
    selected = top-k of p~ (top-1 by default)
    weight   = p~[selected]                  if scale_by_prob (the selected expert scaled by its probability)
             = (p~[selected] - sg(p~[selected])) + 1 otherwise (value 1, straight-through gradient)
  Either way the forward uses only the selected experts and the gate gets its gradient through the
  selected weight (straight-through the hard choice); unselected experts get weight 0 and no gradient.
Eval: no noise, argmax (top-k of softmax(g / tau)), same weights: deterministic, per token.
`routing="soft"`: a dense mixture over all experts with weights softmax(g / tau) (ablation).

Logits and softmax are fp32. Each token is routed on its own: nothing depends on batch-mates.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Route:
    indices: torch.Tensor  # (n, k) long: selected experts per token (all M for soft routing)
    weights: torch.Tensor  # (n, k) fp32: their weights (differentiable w.r.t. the gate)
    probs: torch.Tensor  # (n, M) fp32: softmax(g / tau) without noise, for statistics and aux losses
    dense: bool = False  # soft mixture: indices are arange(M) for every token


def gumbel_noise(like: torch.Tensor) -> torch.Tensor:
    """Standard Gumbel samples, -log(Exp(1)), drawn from torch's global RNG (checkpoint-replayable)."""
    return -torch.empty_like(like).exponential_().log()


def route_tokens(logits: torch.Tensor, *, top_k: int = 1, temperature: float = 5.0, routing: str = "hard",
                 scale_by_prob: bool = True, training: bool = False) -> Route:
    """logits: (n, M). Returns the Route of every token."""
    logits = logits.float()  # router math in fp32, whatever the base dtype
    n, M = logits.shape
    probs = torch.softmax(logits / temperature, dim=-1)  # (n, M) clean probabilities
    if routing == "soft":
        idx = torch.arange(M, device=logits.device).expand(n, M)
        return Route(indices=idx, weights=probs, probs=probs, dense=True)
    noisy = torch.softmax((logits + gumbel_noise(logits)) / temperature, dim=-1) if training else probs  # (n, M)
    if top_k == 1:
        idx = noisy.argmax(dim=-1, keepdim=True)  # (n, 1) winner; ties go to the lowest index, on any device
        top_p = noisy.gather(-1, idx)  # (n, 1) its probability
    else:
        top_p, idx = noisy.topk(top_k, dim=-1)  # (n, k) winners and their probabilities
    if not scale_by_prob:
        top_p = (top_p - top_p.detach()) + 1.0  # value exactly 1, gradient of the soft probability
    return Route(indices=idx, weights=top_p, probs=probs)
