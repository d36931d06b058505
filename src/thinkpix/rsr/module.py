"""`RSRModule`: every parameter RSR adds to a transformer, and its explicit per-forward state.

An integration registers it as `transformer.rsr` (so optimisers, `state_dict` and DDP see it) and
installs attention processors that call `RSRModule.run`. Parameters live here and only here: the
processors hold a plain reference, so each tensor has exactly one name in the state dict.

Runtime state (documented buffers on the module, never globals, never saved):
- `latent_steps`: T used by the next forwards (0 = the unchanged base model). Set with
  `set_latent_steps`; random depth (training) samples 1..T once per forward, shared by all layers.
- `temperature`: the Gumbel-Softmax tau of the next forwards; None (default) means the config's
  `inference_temperature` (its fixed tau, or the end of its annealing). A trainer annealing tau
  sets it every step with `set_temperature`.
- `outputs`: the `RSROutput` of each RSR layer for the most recent transformer forward, in block
  order. Cleared at the start of every forward; `collect()` returns and clears it.
- `trace`: while tracing (`start_trace`), the outputs of every forward are appended here with
  their routing decisions (and optionally per-step states); `stop_trace()` returns them.
"""

from __future__ import annotations

import numbers
from dataclasses import dataclass

import torch
from torch import nn

from thinkpix.errors import ThinkpixError

from .config import RSRConfig
from .experts import LoRAExperts
from .gate import Gate
from .outputs import RSROutput
from .recursion import BlockOps, rsr_attention


@dataclass(frozen=True)
class LayerDims:
    d_model: int  # token width D (input of the projections)
    d_inner: int  # q/k/v width (heads * head_dim)
    d_cond: int  # width of the conditioning vector y fed to the gate

    def to_dict(self) -> dict:
        return {"d_model": self.d_model, "d_inner": self.d_inner, "d_cond": self.d_cond}


def _keep_fp32(t: torch.Tensor) -> torch.Tensor:
    return t.float() if t.is_floating_point() and t.dtype != torch.float32 else t


class RSRModule(nn.Module):
    def __init__(self, config: RSRConfig, layers: dict[str, LayerDims], backbone: dict, prefix: str = ""):
        super().__init__()
        self.config = config
        self.layer_dims = dict(layers)  # key (block index as str) -> LayerDims
        self.backbone = dict(backbone)  # what the adapter must match: name, class, block count
        self.prefix = prefix  # e.g. "transformer_blocks." for RSROutput.layer names
        gen = torch.Generator().manual_seed(config.seed)  # adapter init independent of the global RNG
        c = config
        if c.shared_experts and len({(d.d_model, d.d_inner) for d in layers.values()}) > 1:
            raise ThinkpixError("shared_experts needs every RSR layer to have the same widths")
        pools = {"shared": next(iter(layers.values()))} if c.shared_experts else layers
        for key, d in pools.items():
            if c.rank > min(d.d_model, d.d_inner):
                raise ThinkpixError(f"RSR rank {c.rank} exceeds layer {key}'s projection width (min of d_model "
                                    f"{d.d_model}, q/k/v width {d.d_inner}): a rank above it adds parameters, "
                                    "not expressiveness")
        self.experts = nn.ModuleDict({
            key: LoRAExperts(c.num_experts, d.d_model, d.d_inner, c.rank, 3, c.scaling, c.init_std, gen,
                             orthogonal=c.expert_init == "orthogonal")
            for key, d in pools.items()})
        self.gates = nn.ModuleDict({
            key: Gate(c.gate, d.d_model, d.d_cond, c.num_experts, c.gate_hidden, gen, out_init_std=c.gate_init_std)
            for key, d in layers.items()})
        # final_input="gated": per-channel gate g (D,) blending the refined state into W's input, zero at init
        self.final_mix = nn.ParameterDict({
            key: nn.Parameter(torch.zeros(d.d_model)) for key, d in layers.items()
        } if c.final_input == "gated" else {})
        self.latent_steps = c.latent_steps
        self.temperature: float | None = None
        self.outputs: list[RSROutput] = []
        self.trace: list[RSROutput] | None = None
        self.trace_states = False
        self._forward_steps: int | None = None
        self._recorded: set[str] = set()
        self._timestep: torch.Tensor | None = None

    # ----- the mechanism -------------------------------------------------------------------------
    def run(self, key: str, x_tilde: torch.Tensor, y: torch.Tensor, ops: BlockOps):
        """RSR for layer `key`: returns (a_x, a_c) of the final latent step and records its RSROutput."""
        steps = self.steps_for_forward()
        experts = self.experts["shared" if self.config.shared_experts else key]
        a_x, a_c, out = rsr_attention(x_tilde, y, ops, self.gates[key], experts, self.config, steps,
                                      training=self.training, trace=self.trace is not None,
                                      trace_states=self.trace is not None and self.trace_states,
                                      temperature=self.current_temperature(),
                                      final_mix=self.final_mix[key] if key in self.final_mix else None)
        out.layer = self.prefix + key
        self._record(key, out)
        return a_x, a_c

    def steps_for_forward(self) -> int:
        """Latent steps of the current forward (sampled once per forward under random depth)."""
        return self.latent_steps if self._forward_steps is None else self._forward_steps

    def begin_forward(self, timestep: torch.Tensor | None = None) -> None:
        """Called by the integration at the start of every transformer forward."""
        self.outputs = []
        self._recorded = set()
        self._timestep = timestep.detach() if isinstance(timestep, torch.Tensor) else timestep
        T = self.latent_steps
        if self.training and self.config.random_depth and T > 1:
            self._forward_steps = int(torch.randint(1, T + 1, ()).item())  # global RNG: reproducible by seed
        else:
            self._forward_steps = None

    def _record(self, key: str, out: RSROutput) -> None:
        if key in self._recorded:  # a gradient-checkpointing recompute of this forward: already recorded
            return
        self._recorded.add(key)
        out.timestep = self._timestep
        self.outputs.append(out)
        if self.trace is not None:
            self.trace.append(out)

    # ----- public runtime controls ---------------------------------------------------------------
    def set_latent_steps(self, steps: int) -> None:
        if int(steps) < 0:
            raise ThinkpixError(f"latent steps must be >= 0, got {steps}")
        self.latent_steps = int(steps)

    def set_forward_steps(self, steps: int) -> None:
        """Latent steps of the current forward only (a per-call `latent_steps`); the next forward resets it."""
        if isinstance(steps, bool) or not isinstance(steps, numbers.Integral) or steps < 0:
            raise ThinkpixError(f"latent_steps must be an integer >= 0, got {steps!r}")
        self._forward_steps = int(steps)

    def set_temperature(self, tau: float | None) -> None:
        """Gumbel-Softmax tau for the following forwards (None: the config's inference temperature)."""
        if tau is not None and not tau > 0:
            raise ThinkpixError(f"temperature must be > 0, got {tau}")
        self.temperature = None if tau is None else float(tau)

    def current_temperature(self) -> float:
        return self.config.inference_temperature if self.temperature is None else self.temperature

    def collect(self) -> list[RSROutput]:
        """The RSROutputs of the most recent forward (block order); clears the buffer."""
        out, self.outputs = self.outputs, []
        return out

    def start_trace(self, states: bool = False) -> None:
        """Record routing decisions (and per-step states if `states`) of every forward until stop_trace."""
        self.trace, self.trace_states = [], bool(states)

    def stop_trace(self) -> list[RSROutput]:
        out, self.trace, self.trace_states = (self.trace or []), None, False
        return out

    def num_parameters(self) -> int:
        return sum(p.numel() for p in self.parameters())

    def extra_repr(self) -> str:
        c = self.config
        return (f"layers={c.layers}, M={c.num_experts}, T={self.latent_steps}, rank={c.rank}, top_k={c.top_k}, "
                f"gate={c.gate}, routing={c.routing}, params={self.num_parameters():,}")

    # Trainable weights stay fp32 when the base is cast (e.g. `transformer.to(torch.bfloat16)`).
    def _apply(self, fn, recurse: bool = True):
        return super()._apply(lambda t: _keep_fp32(fn(t)), recurse)
