"""A bank of M LoRA experts producing the image-stream q/k/v, stored as stacked tensors.

Expert m maps a token u (d_in) to P = 3 outputs (q, k, v; each d_out) through one rank-r LoRA per
projection: out_p = scale * (u @ A[m, :, p*r:(p+1)*r]) @ B[m, p]. Storage (MixLoRA-style):

    A: (M, d_in, P*r)   small random       B: (M, P, r, d_out)   zero (every expert starts as 0)

With `orthogonal=True` the M experts' A together have orthogonal columns (one QR of a Gaussian
(d_in, M*P*r) matrix, each column of norm std * sqrt(d_in), as a random column has on average), so
every expert reads its own subspace of the token: distinct experts from the first update on.

Two paths compute the same function:
- `sparse` (default): assignments are sorted by expert, the tokens gathered, each expert's slice
  multiplied by its own A/B, and the results written back to their tokens (index_copy / index_add,
  optionally straight into the caller's base q/k/v). FLOPs follow the number
  of *selected* (token, expert) pairs, not M: an M=16 pool costs the same as M=2 at top-1.
- `dense` (reference, and the soft mixture): every expert on every token, weighted by an (n, M)
  matrix. Used by tests to check the sparse path, and by `routing="soft"`.

Every expert tensor always receives a gradient (zero when it got no tokens): the sparse path keeps
empty experts in the graph through zero-row matmuls, so DDP needs no `find_unused_parameters`.
"""

from __future__ import annotations

import math

import torch
from torch import nn

from thinkpix.errors import ThinkpixError


class LoRAExperts(nn.Module):
    def __init__(self, num_experts: int, d_in: int, d_out: int, rank: int, num_outputs: int = 3,
                 scale: float = 1.0, init_std: float | None = None, generator: torch.Generator | None = None,
                 orthogonal: bool = False):
        super().__init__()
        self.num_experts, self.d_in, self.d_out, self.rank, self.num_outputs = num_experts, d_in, d_out, rank, num_outputs
        self.scale = scale
        std = init_std if init_std is not None else 1.0 / math.sqrt(d_in)
        a = torch.randn(num_experts, d_in, num_outputs * rank, generator=generator) * std
        if orthogonal:
            width = num_experts * num_outputs * rank
            if width > d_in:
                raise ThinkpixError(f"orthogonal expert init needs M * 3 * rank <= d_in, got {width} > {d_in}")
            q, _ = torch.linalg.qr(a.permute(1, 0, 2).reshape(d_in, width))  # (d_in, M*P*r) orthonormal columns
            a = q.reshape(d_in, num_experts, -1).permute(1, 0, 2) * (std * math.sqrt(d_in))  # (M, d_in, P*r)
        self.A = nn.Parameter(a)  # (M, d_in, P*r)
        self.B = nn.Parameter(torch.zeros(num_experts, num_outputs, rank, d_out))  # (M, P, r, d_out)

    def extra_repr(self) -> str:
        return f"M={self.num_experts}, d_in={self.d_in}, d_out={self.d_out}, rank={self.rank}, outputs={self.num_outputs}"

    def forward(self, u: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor, dense: bool = False,
                into: list[torch.Tensor] | None = None) -> torch.Tensor | None:
        """u: (n, d_in); indices, weights: (n, k) selected experts and their weights. Returns (P, n, d_out).

        With `into` (P tensors (n, d_out), e.g. the frozen base q/k/v of the same tokens), the sparse path
        adds each expert's output into them in place and returns None: no (P, n, d_out) buffer, no
        separate sum. `into` tensors are the caller's fresh outputs that no autograd node saved."""
        if dense:
            n = u.shape[0]
            w = torch.zeros(n, self.num_experts, dtype=weights.dtype, device=weights.device)
            out = self.mixture(u, w.scatter(1, indices, weights))  # unselected experts: weight 0, no gradient
            if into is None:
                return out
            for t, o in zip(into, out.unbind(0)):
                t.add_(o.to(t.dtype))
            return None
        return self.sparse(u, indices, weights, into)

    def sparse(self, u: torch.Tensor, indices: torch.Tensor, weights: torch.Tensor,
               into: list[torch.Tensor] | None = None) -> torch.Tensor | None:
        """Compute only the selected expert(s) of each token: sort, gather, per-expert matmul, then write
        each expert's rows straight to their tokens (index_copy into an empty buffer at top-1, where every
        token has one pick; index_add otherwise, or into `into`)."""
        n, k = indices.shape
        P, r = self.num_outputs, self.rank
        x = u.to(self.A.dtype)  # trainable weights and their matmuls stay fp32 under a bf16 base
        flat = indices.reshape(-1)  # (n*k,) expert of each assignment
        order = torch.argsort(flat, stable=True)  # (n*k,) assignments grouped by expert
        token = order // k  # (n*k,) token of each sorted assignment
        counts = torch.bincount(flat, minlength=self.num_experts).tolist()  # host sync, as in MoE kernels
        xs = x.index_select(0, token)  # (n*k, d_in) gathered tokens
        ws = weights.reshape(-1)[order].to(x.dtype) * self.scale  # (n*k,) their weights
        out = None
        parts = zip(xs.split(counts), ws.split(counts), token.split(counts), self.A.unbind(0), self.B.unbind(0))
        for xm, wm, tm, a_m, b_m in parts:
            h = (xm @ a_m) * wm[:, None]  # (n_m, P*r); unbind above: one gradient buffer per tensor
            ym = torch.bmm(h.view(-1, P, r).transpose(0, 1), b_m)  # (P, n_m, d_out); n_m may be 0
            if into is not None:  # sums a token's k picks onto the caller's tensors
                for t, y in zip(into, ym.unbind(0)):
                    t.index_add_(0, tm, y.to(t.dtype))
                continue
            if out is None:  # dtype of the matmuls (bf16 under autocast); top-1: every token written once, no fill
                out = (ym.new_empty if k == 1 else ym.new_zeros)(P, n, self.d_out)
            if k == 1:
                out.index_copy_(1, tm, ym)
            else:
                out.index_add_(1, tm, ym)  # sums a token's k picks
        return out

    def mixture(self, u: torch.Tensor, w: torch.Tensor) -> torch.Tensor:
        """Dense reference: sum_m w[:, m] * E_m(u) with every expert computed. u (n, d_in), w (n, M)."""
        P, r = self.num_outputs, self.rank
        x = u.to(self.A.dtype)
        h = torch.einsum("nd,mdk->mnk", x, self.A)  # (M, n, P*r)
        h = h.view(self.num_experts, -1, P, r)  # (M, n, P, r)
        y = torch.einsum("mnpr,mprd->mpnd", h, self.B)  # (M, P, n, d_out)
        return torch.einsum("mpnd,nm->pnd", y, w.to(y.dtype) * self.scale)  # (P, n, d_out)

    def flops_per_token(self) -> int:
        """Multiply-add FLOPs (x2) of one expert on one token."""
        return 2 * self.d_in * self.num_outputs * self.rank + 2 * self.num_outputs * self.rank * self.d_out
