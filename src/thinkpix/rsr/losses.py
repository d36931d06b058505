"""Optional auxiliary router losses (the paper uses none; both default to weight 0).

Both are computed per latent step from the clean router probabilities softmax(g / tau) and the
logits g, averaged over steps, and returned explicitly in `RSROutput` - never added behind the
caller's back. The trainer adds `sum(o.aux_loss for o in outputs)` to its objective.
"""

from __future__ import annotations

import torch


def load_balance_loss(probs: torch.Tensor, indices: torch.Tensor, num_experts: int) -> torch.Tensor:
    """Switch-Transformer balance loss M * sum_m f_m * P_m (1.0 when perfectly balanced).

    probs: (n, M) router probabilities; indices: (n, k) selected experts. f_m, the fraction of
    assignments sent to m, is not differentiable; P_m, the mean probability, carries the gradient.
    """
    f = torch.bincount(indices.reshape(-1), minlength=num_experts).to(probs.dtype) / indices.numel()  # (M,)
    P = probs.mean(dim=0)  # (M,)
    return num_experts * (f * P).sum()


def router_z_loss(logits: torch.Tensor) -> torch.Tensor:
    """ST-MoE router z-loss: mean over tokens of logsumexp(g)^2 (keeps logits small)."""
    return torch.logsumexp(logits.float(), dim=-1).square().mean()
