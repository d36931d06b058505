"""`RSROutput`: what one RSR layer reports for one forward - auxiliary losses and routing statistics.

Statistics are detached tensors (no host sync in the forward); `.summary()` turns them into floats
for logging. Routing decisions and per-step states are filled only when tracing is on.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class RSROutput:
    layer: str  # which block, e.g. "transformer_blocks.4"
    steps: int  # latent steps this forward actually ran
    aux_loss: torch.Tensor  # scalar: weighted load-balance + z-loss (0 when both weights are 0); has grad
    load_balance_loss: torch.Tensor | None  # scalar, step-averaged (None unless its weight > 0)
    z_loss: torch.Tensor | None  # scalar, step-averaged (None unless its weight > 0)
    usage: torch.Tensor  # (steps, M): fraction of token assignments sent to each expert, per step
    entropy: torch.Tensor  # (steps,): mean per-token entropy of softmax(g / tau), nats
    deltas: torch.Tensor  # (steps - 1,): ||a_x^t - a_x^{t-1}|| / ||a_x^{t-1}|| between consecutive steps
    routing: torch.Tensor | None = None  # (steps, B, N, k) int16 expert indices (tracing only)
    states: torch.Tensor | None = None  # (steps, B, N, D) image state a after each step (tracing with states)
    timestep: torch.Tensor | None = None  # the diffusion timestep(s) of this forward, when known

    def summary(self) -> dict:
        """Plain floats for logs: usage per expert (mean over steps), entropy, deltas, losses."""
        out = {
            "layer": self.layer,
            "steps": self.steps,
            "usage": [round(x, 6) for x in self.usage.float().mean(0).tolist()] if self.steps else [],
            "entropy": float(self.entropy.mean()) if self.steps else 0.0,
            "deltas": [float(x) for x in self.deltas.tolist()],
            "aux_loss": float(self.aux_loss.detach()),
        }
        if self.load_balance_loss is not None:
            out["load_balance_loss"] = float(self.load_balance_loss.detach())
        if self.z_loss is not None:
            out["z_loss"] = float(self.z_loss.detach())
        return out


def total_aux_loss(outputs: list[RSROutput]) -> torch.Tensor | float:
    """Sum of the layers' auxiliary losses (0.0 for an empty list), to add to the training loss."""
    return sum((o.aux_loss for o in outputs), 0.0)
