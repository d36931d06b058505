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


def stack_trace(trace: list[RSROutput]) -> dict:
    """Stack a trace (the outputs of F forwards x L layers, as `stop_trace` returns them) into arrays.

    Returns {"layers": [L names], "routing": int16 (F, L, steps, B, N, k), "timesteps": (F, B) float or
    None, "states": (F, L, steps, B, N, D) or None}. Needs the same depth and batch in every forward
    (true for sampling; not under random training depth).
    """
    if not trace:
        raise ValueError("empty trace")
    layers = list(dict.fromkeys(o.layer for o in trace))
    L = len(layers)
    if len(trace) % L or any(o.layer != layers[i % L] for i, o in enumerate(trace)):
        raise ValueError("trace is not a whole number of forwards over the same layers")
    if any(o.routing is None for o in trace):
        raise ValueError("trace has no routing decisions (record it with start_trace)")
    shapes = {tuple(o.routing.shape) for o in trace}
    if len(shapes) != 1:
        raise ValueError(f"forwards differ in depth or batch: {sorted(shapes)}")
    F_ = len(trace) // L
    routing = torch.stack([o.routing for o in trace]).view(F_, L, *next(iter(shapes)))
    ts = None
    if all(o.timestep is not None for o in trace[::L]):
        ts = torch.stack([torch.as_tensor(o.timestep).float().reshape(-1).cpu() for o in trace[::L]])
    states = None
    if all(o.states is not None for o in trace):
        states = torch.stack([o.states.cpu() for o in trace]).view(F_, L, *trace[0].states.shape)
    return {"layers": layers, "routing": routing, "timesteps": ts, "states": states}
