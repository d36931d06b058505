"""Per-token gates: logits over M experts for every visual token, computed in fp32.

- `mlp` (default): MLP on [u ; proj(y)], i.e. act(W_u u + W_y silu(y) + b) -> W_out. Writing the
  concatenation as a sum of two projections lets proj(y) be computed once per sample, not per token.
- `tokens_only`: the same MLP on u alone (the paper's poorly-diversified ablation).
- `linear`: logits = W_u u + W_y silu(y) + b.
The output layer is zero-initialised, so every gate starts uniform over the experts (`out_init_std` > 0:
its weights start N(0, std^2) instead, bias still zero: per-token routing preferences from the first
step, which break the experts' symmetry; the experts' B = 0 still makes the adapter the base at init).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn


class Gate(nn.Module):
    def __init__(self, kind: str, d_token: int, d_cond: int, num_experts: int, hidden: int = 64,
                 generator: torch.Generator | None = None, out_init_std: float = 0.0):
        super().__init__()
        self.kind = kind
        self.out_init_std = float(out_init_std)
        width = num_experts if kind == "linear" else hidden
        self.token_in = nn.Linear(d_token, width)  # W_u
        self.cond_in = nn.Linear(d_cond, width, bias=False) if kind != "tokens_only" else None  # proj(y)
        self.out = nn.Linear(hidden, num_experts) if kind != "linear" else None
        self._init(generator)

    @torch.no_grad()
    def _init(self, generator):
        for lin in (self.token_in, self.cond_in):
            if lin is not None:  # LeCun-normal, seeded independently of the global RNG
                lin.weight.copy_(torch.randn(lin.weight.shape, generator=generator) / lin.weight.shape[1] ** 0.5)
                if lin.bias is not None:
                    lin.bias.zero_()
        last = self.out if self.out is not None else self.token_in  # the layer that emits logits
        last.weight.zero_()
        last.bias.zero_()
        if self.kind == "linear" and self.cond_in is not None:
            self.cond_in.weight.zero_()
        if self.out_init_std > 0:  # drawn last: the default (zero) init consumes the generator exactly as before
            last.weight.copy_(torch.randn(last.weight.shape, generator=generator) * self.out_init_std)

    def forward(self, u: torch.Tensor, y: torch.Tensor | None) -> torch.Tensor:
        """u: (B, N, d_token) tokens, y: (B, d_cond) conditioning vector. Returns fp32 logits (B, N, M)."""
        dtype = self.token_in.weight.dtype  # fp32 even under a bf16 base
        with torch.autocast(u.device.type, enabled=False):  # routers in full precision, also under AMP
            h = self.token_in(u.to(dtype))  # (B, N, width)
            if self.cond_in is not None:
                h = h + self.cond_in(F.silu(y.to(dtype)))[:, None, :]  # (B, 1, width): one projection per sample
            if self.out is None:
                return h.float()  # linear gate: h already holds the logits
            return self.out(F.gelu(h)).float()  # (B, N, M)

    def flops_per_token(self) -> int:
        f = 2 * self.token_in.in_features * self.token_in.out_features
        return f + (2 * self.out.in_features * self.out.out_features if self.out is not None else 0)
