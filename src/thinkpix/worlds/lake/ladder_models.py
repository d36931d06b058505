"""The recursion ladder's arms: one real diffusers `SD3Transformer2DModel`, looped in different ways.

Every arm is the same MMDiT at a tiny size (patch 1 on the 8 x 8 cell canvas, so one image token per
cell; one fixed learned text token; timestep 0), with `out_channels=1`: a per-cell logit. What differs
is how depth is bought:

- `loop`: the positive control. The whole block (attention + MLP) is applied T times, the embedded
  input re-injected before every step after the first: s_1 = block(h), s_t = block(LN(s_{t-1}) + h); the
  state is layer-normalised before re-entry so that the residual stream stays bounded over 16 steps.
  `loop-plain` re-enters s_{t-1} + h unnormalised (the ladder's first control, which fell short).
- `rsr`: `thinkpix.rsr` attached to block 0 with `attach_rsr` (its real processors and hooks), T latent
  steps per call through `joint_attention_kwargs={"latent_steps": T}`; the reading is the RSRConfig.
- `stack`: a plain, non-looped stack of `blocks` blocks (T is ignored): depth or parameters matched.

`adapter` arms attach RSR to a frozen, already trained one-block base (the `stack` arm with one block)
and train only RSR: the fine-tuning product, as opposed to RSR trained in from scratch.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import torch
from torch import nn

from thinkpix.integrations.attach import attach_rsr
from thinkpix.rsr.config import RSRConfig

from .ladder_task import CANVAS, KINDS

WIDTH, HEAD_DIM = 64, 32  # token width and attention head size of every arm
CONTEXT_DIM = 16  # width of the one fixed "text" token before the context embedder


@dataclass(frozen=True)
class Arm:
    """One rung of the ladder: how the model loops. `rsr` holds RSRConfig fields (layers=[0] implied)."""

    name: str
    kind: str  # "loop" | "rsr" | "stack" | "adapter" | "lora"
    blocks: int = 1
    rsr: dict = field(default_factory=dict)
    note: str = ""
    lora_rank: int = 0  # kind "lora": a plain LoRA of this rank on block 0's image q/k/v of a frozen base

    def rsr_config(self, seed: int) -> RSRConfig:
        fields = {"layers": [0], "num_experts": 2, "rank": 16, "latent_steps": 8, **self.rsr}
        return RSRConfig(seed=seed, **fields)


def transformer(blocks: int, in_channels: int = KINDS) -> nn.Module:
    """A tiny SD3 MMDiT over the 8 x 8 cell canvas: one token per cell, one value per cell out."""
    from diffusers import SD3Transformer2DModel

    return SD3Transformer2DModel(
        sample_size=CANVAS, patch_size=1, in_channels=in_channels, num_layers=blocks, attention_head_dim=HEAD_DIM,
        num_attention_heads=WIDTH // HEAD_DIM, joint_attention_dim=CONTEXT_DIM, caption_projection_dim=WIDTH,
        pooled_projection_dim=CONTEXT_DIM, out_channels=1, pos_embed_max_size=CANVAS)


class Solver(nn.Module):
    """maps (B, 5, 8, 8) -> per-cell logits (B, 8, 8) after T latent steps (or T loop passes)."""

    def __init__(self, arm: Arm, seed: int, base: nn.Module | None = None, in_channels: int = KINDS):
        super().__init__()
        self.arm = arm  # the base's initial weights come from torch's global generator (seeded by the trainer)
        self.transformer = base if base is not None else transformer(arm.blocks, in_channels)
        if arm.kind in ("rsr", "adapter"):
            attach_rsr(self.transformer, arm.rsr_config(seed), freeze_base=arm.kind == "adapter")
        elif arm.kind == "lora":
            from thinkpix.integrations.lora import attach_lora

            attach_lora(self.transformer, [0], arm.lora_rank)  # freezes the base

    def conditions(self, B: int):
        """The fixed conditioning: one zero text token, zero pooled vector, timestep 0 (all learned via biases)."""
        p = next(self.transformer.parameters())
        ctx = p.new_zeros(B, 1, CONTEXT_DIM)
        return ctx, p.new_zeros(B, CONTEXT_DIM), p.new_zeros(B)

    def forward(self, maps: torch.Tensor, steps: int, timestep: torch.Tensor | None = None) -> torch.Tensor:
        return self.readouts(maps, steps, timestep)[-1]

    def readouts(self, maps: torch.Tensor, steps: int, timestep: torch.Tensor | None = None) -> list[torch.Tensor]:
        """Outputs (B, 8, 8) after each loop pass 1..steps for `loop`, else the one output at `steps`.
        `timestep` (B,) in SD3's 0..1000 scale (the diffusion models); the ladder's solvers use 0."""
        ctx, pooled, t = self.conditions(maps.shape[0])
        t = t if timestep is None else timestep
        tr = self.transformer
        if self.arm.kind != "loop":
            kwargs = {"latent_steps": steps} if self.arm.kind in ("rsr", "adapter") else None
            out = tr(maps, encoder_hidden_states=ctx, pooled_projections=pooled, timestep=t,
                     joint_attention_kwargs=kwargs).sample  # (B, 1, 8, 8)
            return [out[:, 0]]
        h = tr.pos_embed(maps).contiguous()  # (B, 64, D) cell tokens + positions
        temb = tr.time_text_embed(t, pooled)  # (B, D)
        ctx = tr.context_embedder(ctx)  # (B, 1, D)
        block, s, outs = tr.transformer_blocks[0], h, []
        for i in range(steps):
            if i > 0:  # re-inject the input; the re-entered state normalised unless `loop-plain`   (B, 64, D)
                s = (s if self.arm.name == "loop-plain" else torch.nn.functional.layer_norm(s, s.shape[-1:])) + h
            _, s = block(hidden_states=s, encoder_hidden_states=ctx, temb=temb)  # (B, 64, D)
            outs.append(tr.proj_out(tr.norm_out(s, temb)).view(-1, CANVAS, CANVAS))  # (B, 8, 8)
        return outs

    def trainable_parameters(self) -> list[nn.Parameter]:
        return [p for p in self.parameters() if p.requires_grad]


# The arms. RSR readings (RSRConfig switches): final_input = what the final step's W sees, base_every_step =
# W(u) + experts at every step, loop_body = attention only or the whole block.
ARMS = {a.name: a for a in (
    Arm("loop", "loop", note="positive control: whole block looped, normalised state + input re-entered"),
    Arm("loop-plain", "loop", note="whole block looped, state + input re-entered without normalisation"),
    Arm("rsr-paper", "rsr", note="paper reading: experts alone at intermediate steps, W(x~) at the end"),
    Arm("rsr-every-step", "rsr", rsr={"base_every_step": True}, note="W(u) + experts at every step"),
    Arm("rsr-refined", "rsr", rsr={"final_input": "refined"}, note="final W on the refined state (Figure 1)"),
    Arm("rsr-refined-every-step", "rsr", rsr={"final_input": "refined", "base_every_step": True},
        note="refined final input and W(u) at every step"),
    Arm("rsr-gated", "rsr", rsr={"final_input": "gated"}, note="final W on x~ + g(u - x~), g = 0 at init"),
    Arm("rsr-gated-every-step", "rsr", rsr={"final_input": "gated", "base_every_step": True},
        note="gated final input and W(u) at every step"),
    Arm("rsr-block", "rsr", rsr={"loop_body": "block"}, note="loop body extended to out-projection + MLP"),
    Arm("rsr-block-every-step", "rsr", rsr={"loop_body": "block", "base_every_step": True},
        note="whole-block loop body with W(u) at every step"),
    Arm("stack-1", "stack", blocks=1, note="one block, no loop (the adapters' frozen base)"),
    Arm("stack-2", "stack", blocks=2, note="two blocks: about the parameters of one block + RSR"),
    Arm("stack-8", "stack", blocks=8, note="eight blocks: the depth of 8 loop passes"),
)}


def with_experts(arm: Arm, experts: int) -> Arm:
    """The routing rung: the same reading with M experts."""
    return Arm(f"{arm.name}-m{experts}", arm.kind, arm.blocks, {**arm.rsr, "num_experts": experts},
               f"{arm.note}; M={experts}")


def as_adapter(arm: Arm) -> Arm:
    """The fine-tuning rung: the same RSR reading trained on a frozen, trained `stack-1` base."""
    return Arm(f"adapter-{arm.name.removeprefix('rsr-')}", "adapter", 1, arm.rsr, f"{arm.note}; frozen base")


def on_blocks(arm: Arm, blocks: int) -> Arm:
    """The same RSR reading attached to block 0 of a `blocks`-block model (the diffusion arms' deeper bases)."""
    return Arm(f"{arm.name}-b{blocks}", arm.kind, blocks, arm.rsr, f"{arm.note}; on block 0 of {blocks}")


def arm_named(name: str) -> Arm:
    """An arm by name: the table above, `stack-<N>`, `<rsr arm>-m<M>`, `<rsr arm>-b<N>` (on block 0 of an
    N-block model) or `adapter-<reading>`."""
    from thinkpix.errors import ThinkpixError

    if name in ARMS:
        return ARMS[name]
    if name.startswith("adapter-") and f"rsr-{name.removeprefix('adapter-')}" in ARMS:
        return as_adapter(ARMS[f"rsr-{name.removeprefix('adapter-')}"])
    head, _, n = name.rpartition("-")
    count = int(n[1:]) if n[:1] in ("m", "b") and n[1:].isdigit() and int(n[1:]) >= 1 else None
    if head == "stack" and n.isdigit() and int(n) >= 1:
        return Arm(name, "stack", blocks=int(n), note=f"{n} blocks, no loop")
    if count is not None and head in ARMS and ARMS[head].kind == "rsr":
        return with_experts(ARMS[head], count) if n[0] == "m" else on_blocks(ARMS[head], count)
    raise ThinkpixError(f"unknown ladder arm {name!r}; known: {sorted(ARMS)}, stack-<N>, <rsr arm>-m<M>, "
                        "<rsr arm>-b<N>, adapter-<reading>")
