"""The RSR forward pass of one block (docs/paper.md; the paper's Figure 1), independent of any backbone.

The backbone integration (e.g. `thinkpix.integrations.sd3`) hands over a `BlockOps`: closures over
the block's frozen modules. The text q/k/v are computed once by the integration, before the loop,
and live inside `ops.attend`; only the image stream is refined.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from .config import RSRConfig
from .experts import LoRAExperts
from .gate import Gate
from .losses import load_balance_loss, router_z_loss
from .outputs import RSROutput
from .routing import Route, route_tokens

Tensor = torch.Tensor


@dataclass
class BlockOps:
    """What the recursion needs from one backbone block (all frozen)."""

    base_qkv: Callable[[Tensor], tuple[Tensor, Tensor, Tensor]]  # W: (B, N, D) -> q, k, v each (B, N, inner)
    attend: Callable[[Tensor, Tensor, Tensor, bool], tuple[Tensor, Tensor | None]]
    # attend(q, k, v, final): image q/k/v (B, N, inner) joined with the fixed text q/k/v ->
    #   a_x (B, N, inner) before the out-projection, a_c (B, L, inner) (None unless final: text rows unused)
    modulate: Callable[[Tensor], Tensor]  # modulate(LN(a); shift_x(y), scale_x(y)) with the block's adaLN
    project: Callable[[Tensor], Tensor] | None = None  # image out-projection, for state="projected"
    body: Callable[[Tensor], Tensor] | None = None  # loop_body="block": a_x (B, N, inner) -> the block's
    #   residual stream after out-projection, gated residual and MLP, z = x + ... (B, N, D)


def rsr_attention(x_tilde: Tensor, y: Tensor, ops: BlockOps, gate: Gate, experts: LoRAExperts, cfg: RSRConfig,
                  steps: int, training: bool, trace: bool = False, trace_states: bool = False,
                  temperature: float | None = None, final_mix: Tensor | None = None,
                  ) -> tuple[Tensor, Tensor | None, RSROutput]:
    """Run `steps` >= 1 latent steps on the image tokens of one block.

    x_tilde: (B, N, D) the block's adaLN-modulated image tokens; y: (B, D_y) the conditioning vector.
    Returns a_x (B, N, inner) and a_c (B, L, inner) of the final step, which continue through the
    normal block (out-projections, gated residual, MLP), and this layer's RSROutput.
    `temperature` overrides cfg.temperature (the annealed tau of the current training step).
    `final_mix`: (D,) the learnable gate g of cfg.final_input == "gated" (zero at init: W sees x~).
    """
    tau = cfg.temperature if temperature is None else temperature
    B, N, D = x_tilde.shape
    stats = _StepStats(cfg, experts.num_experts, trace, trace_states)
    a = x_tilde  # a^0 = x~                                                      (B, N, D)
    for t in range(1, steps + 1):
        final = t == steps
        keep_grad = cfg.grad_steps is None or t > steps - cfg.grad_steps  # optional no-grad early steps
        with torch.set_grad_enabled(torch.is_grad_enabled() and keep_grad):
            # u: x~ at the first step, then the re-modulated state ("Mod: alpha_x, beta_x")  (B, N, D)
            u = x_tilde if t == 1 else (ops.modulate(a) if cfg.remodulate else a)
            # per-token gate on [u ; proj(y)] and Gumbel top-k routing, fp32         (B*N, M)
            logits = gate(u, y).flatten(0, 1)
            route = route_tokens(logits, top_k=cfg.top_k, temperature=tau, routing=cfg.routing,
                                 scale_by_prob=cfg.scale_by_prob, training=training)
            # image q/k/v from the selected experts only: sum_m w_m E_m(u), plus the frozen base projection
            # W at the final step only, on x~ (ablation: W(u) every step)                each (B, N, inner)
            dense = route.dense or cfg.expert_impl == "dense"
            base = (ops.base_qkv(final_base_input(x_tilde, u, cfg.final_input, final_mix)) if final
                    else ops.base_qkv(u) if cfg.base_every_step else None)
            if base is not None and _own_buffers(base, x_tilde.dtype):  # W(.) + delta, added in place
                q, k, v = base
                experts(u.flatten(0, 1), route.indices, route.weights, dense=dense,
                        into=[b.view(B * N, -1) for b in base])
            else:
                delta = experts(u.flatten(0, 1), route.indices, route.weights, dense=dense)
                delta = delta.view(3, B, N, -1).to(x_tilde.dtype)  # (3, B, N, inner)
                q, k, v = delta.unbind(0) if base is None else (base[i] + delta[i] for i in range(3))
            # joint attention: image q/k/v with the text q/k/v computed once        (B, N, inner)
            a_x, a_c = ops.attend(q, k, v, final)
            # between steps: the new state re-injects the original modulated input x~  (B, N, D);
            # with the whole block looped, the block's own residual stream z = x + ... carries x instead
            if not final or trace_states:
                if cfg.loop_body == "block":
                    a = ops.body(a_x)
                else:
                    s = ops.project(a_x) if cfg.state == "projected" else a_x
                    a = s + x_tilde if cfg.reinject else s
        stats.add(logits, route, a_x, a if trace_states else None)
    return a_x, a_c, stats.finish(steps, B, N)


def final_base_input(x_tilde: Tensor, u: Tensor, reading: str, mix: Tensor | None) -> Tensor:
    """What the frozen base projection W sees at the final step (all (B, N, D)).

    "x0": x~, so zero-initialised experts give the base exactly, whatever the loop did (paper default);
    "refined": u_T, the re-modulated refined state the experts see (Figure 1 as drawn; u_1 = x~);
    "gated": x~ + g * (u_T - x~) with a learnable per-channel g (D,) that starts at zero, so a fine-tune
    still starts exactly from the base while the loop can reach the output through the full-rank W."""
    if reading == "x0":
        return x_tilde
    if reading == "refined":
        return u
    return x_tilde + mix.to(u.dtype) * (u - x_tilde)


def _own_buffers(ts, dtype: torch.dtype) -> bool:
    """Contiguous, distinct tensors of the state's dtype (under autocast W(.) may be bf16: then the sum
    base + delta is left to type promotion, as before): safe to add the experts' output into in place."""
    return (all(t.is_contiguous() and t.dtype == dtype for t in ts)
            and len({t.data_ptr() for t in ts}) == len(ts))


class _StepStats:
    """Accumulates per-step routing statistics (detached) and the auxiliary losses (with grad)."""

    def __init__(self, cfg: RSRConfig, M: int, trace: bool, trace_states: bool):
        self.cfg, self.M, self.trace, self.trace_states = cfg, M, trace, trace_states
        self.usage, self.entropy, self.deltas, self.routing, self.states = [], [], [], [], []
        self.lb, self.z = [], []
        self.prev = None

    def add(self, logits: Tensor, route: Route, a_x: Tensor, state: Tensor | None):
        if self.cfg.load_balance_weight > 0:
            self.lb.append(load_balance_loss(route.probs, route.indices, self.M))
        if self.cfg.z_loss_weight > 0:
            self.z.append(router_z_loss(logits))
        with torch.no_grad():
            p = route.probs
            if route.dense:
                self.usage.append(p.mean(0))  # (M,)
            else:
                counts = torch.bincount(route.indices.reshape(-1), minlength=self.M)
                self.usage.append(counts.float() / route.indices.numel())  # (M,)
            self.entropy.append(-(p * p.clamp_min(1e-12).log()).sum(-1).mean())
            cur = a_x.detach().float()
            if self.prev is not None:
                self.deltas.append((cur - self.prev).norm() / self.prev.norm().clamp_min(1e-12))
            self.prev = cur
            if self.trace:
                self.routing.append(route.indices.to(torch.int16))
            if state is not None:
                self.states.append(state.detach())

    def finish(self, steps: int, B: int, N: int) -> RSROutput:
        cfg = self.cfg
        lb = torch.stack(self.lb).mean() if self.lb else None
        z = torch.stack(self.z).mean() if self.z else None
        aux = self.usage[0].new_zeros(()) if self.usage else torch.zeros(())
        if lb is not None:
            aux = aux + cfg.load_balance_weight * lb
        if z is not None:
            aux = aux + cfg.z_loss_weight * z
        empty = torch.zeros(0)
        return RSROutput(
            layer="",
            steps=steps,
            aux_loss=aux,
            load_balance_loss=lb,
            z_loss=z,
            usage=torch.stack(self.usage) if self.usage else empty.view(0, self.M),
            entropy=torch.stack(self.entropy) if self.entropy else empty,
            deltas=torch.stack(self.deltas) if self.deltas else empty.to(aux.device),
            routing=torch.stack(self.routing).view(steps, B, N, -1).cpu() if self.trace and self.routing else None,
            states=torch.stack(self.states) if self.states else None,
        )
