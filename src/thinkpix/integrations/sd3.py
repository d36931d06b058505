"""RSR on diffusers' `SD3Transformer2DModel` (SD3 and SD3.5: `JointTransformerBlock`, incl. dual attention).

What is SD3-specific lives here; the mechanism itself is `thinkpix.rsr`. Per RSR block:
- the joint attention `block.attn` gets an `SD3RSRProcessor` (an `nn.Module` with `__call__`);
  the SD3.5 second attention `attn2` (image-only self-attention) is left as it is;
- a forward pre-hook on the block hands its `temb` to the processor (processors never see temb);
  it is the gate's conditioning y and feeds the re-modulation with the block's own `norm1` adaLN
  shift/scale of the msa branch;
- a forward pre-hook on the transformer starts each forward (`RSRModule.begin_forward`).
The last block (`context_pre_only=True`) has no text out-projection; its text output is ignored by
the block, exactly as with the original processor.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import RSRConfig
from thinkpix.rsr.module import LayerDims, RSRModule
from thinkpix.rsr.recursion import BlockOps

from . import common

NAME = "sd3"
ATTENTION = "attn"  # the attention module of a block that RSR (and the LoRA baseline) refine
PREFIX = common.PREFIX
num_blocks = common.num_blocks


def matches(transformer: nn.Module) -> bool:
    return common.blocks_are(transformer, "JointTransformerBlock")


def describe(transformer: nn.Module) -> dict:
    """What a saved adapter must match (dims are checked per layer via `layer_dims`)."""
    return common.describe(NAME, transformer)


def layer_dims(transformer: nn.Module, index: int) -> LayerDims:
    return common.layer_dims(transformer, index, ATTENTION)


def check_block(transformer: nn.Module, index: int) -> None:
    attn = transformer.transformer_blocks[index].attn
    proc = attn.processor
    if type(proc).__name__ != "JointAttnProcessor2_0":  # fused q/k/v, IP-adapter, PAG ... are not supported
        hint = ("transformer.unfuse_qkv_projections()" if "Fused" in type(proc).__name__
                else "transformer.set_attn_processor(JointAttnProcessor2_0())")
        raise ThinkpixError(f"block {index}: RSR replaces diffusers' JointAttnProcessor2_0, found "
                            f"{type(proc).__name__}; call {hint} before attach_rsr")


class SD3RSRProcessor(common.TembRSRProcessor):
    """Joint-attention processor running RSR's latent steps on the image stream of one block.

    With 0 latent steps it calls the original processor: the base model, bit for bit.
    """

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, latent_steps=None,
                 **kwargs):
        temb, x = self.take_temb(), self.take_hidden()
        if latent_steps is not None:  # named, so diffusers passes it through (per-call T)
            self.rsr.set_forward_steps(latent_steps)
        if self.rsr.steps_for_forward() == 0 or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        if temb is None:
            raise self.missing_temb()
        ops = block_ops(attn, self.block.norm1, hidden_states, encoder_hidden_states, temb, self.rsr.config)
        if self.rsr.config.loop_body == "block":
            ops.body = common.joint_block_body(self.block, x, temb)
        a_x, a_c = self.rsr.run(self.key, hidden_states, temb, ops)  # (B, N, inner), (B, L, inner)
        hidden_states = common.out_project(attn, a_x)  # image out-projection (+ dropout)
        if not attn.context_pre_only:
            a_c = attn.to_add_out(a_c)  # text out-projection
        return hidden_states, a_c


def block_ops(attn, norm1, x_tilde: torch.Tensor, c_tilde: torch.Tensor, temb: torch.Tensor,
              cfg: RSRConfig) -> BlockOps:
    """Closures over one JointTransformerBlock's frozen modules; text q/k/v are computed here, once."""
    B, N, _ = x_tilde.shape
    heads = attn.heads
    head_dim = attn.to_k.out_features // heads

    def split(t):  # (B, S, inner) -> (B, H, S, hd)
        return t.view(B, -1, heads, head_dim).transpose(1, 2)

    # text q/k/v with the frozen text projections: computed once, reused at every latent step
    cq, ck, cv = split(attn.add_q_proj(c_tilde)), split(attn.add_k_proj(c_tilde)), split(attn.add_v_proj(c_tilde))
    if attn.norm_added_q is not None:
        cq = attn.norm_added_q(cq)
    if attn.norm_added_k is not None:
        ck = attn.norm_added_k(ck)
    join_q, join_k, join_v = (common.text_joiner(t, dim=2) for t in (cq, ck, cv))  # -> (B, H, N+L, hd)

    def attend(q, k, v, final):  # same arithmetic as diffusers' JointAttnProcessor2_0
        q, k, v = split(q), split(k), split(v)  # (B, H, N, hd)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        k, v = join_k(k), join_v(v)  # image rows first, then the fixed text rows  (B, H, N+L, hd)
        if not final:  # intermediate steps: only image queries (text rows would be discarded)
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
            return out.transpose(1, 2).reshape(B, -1, heads * head_dim).to(q.dtype), None
        q = join_q(q)  # (B, H, N+L, hd)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(B, -1, heads * head_dim).to(q.dtype)  # (B, N+L, inner)
        return out[:, :N], out[:, N:]

    # the block's own adaLN of y (SD3.5 dual-attention blocks have 9 chunks, the others 6)
    modulate = (common.msa_modulate(norm1, temb, norm1.linear.out_features // x_tilde.shape[-1])
                if cfg.remodulate else None)
    return common.block_ops(attn, attend, modulate)


def install(transformer: nn.Module, rsr: RSRModule) -> dict:
    """Install processors and hooks. Returns {attention path: original processor}."""
    return common.install_joint(transformer, rsr, SD3RSRProcessor)


restore = common.restore_joint  # original processor objects back, hooks removed


# ----- FLOP estimate (multiply-adds x 2) -----------------------------------------------------------
def estimate_forward_flops(transformer: nn.Module, batch: int, image_tokens: int, text_tokens: int,
                           config: RSRConfig | None = None, steps: int | None = None) -> dict:
    """Predicted FLOPs of one forward: {"base", "rsr", "total"}; `rsr` is what the config adds."""
    cfg_t = transformer.config
    D, B, N, L = transformer.inner_dim, batch, image_tokens, text_tokens
    p, cin, cout = cfg_t.patch_size, cfg_t.in_channels, transformer.out_channels
    f = 2 * B * N * p * p * cin * D  # patch embedding
    f += 2 * B * (256 * D + 2 * D * D + cfg_t.pooled_projection_dim * D)  # time + pooled text embedding
    f += 2 * B * L * cfg_t.joint_attention_dim * cfg_t.caption_projection_dim  # context embedder
    for block in transformer.transformer_blocks:
        last = block.context_pre_only
        f += 2 * B * D * block.norm1.linear.out_features + 2 * B * D * (2 * D if last else 6 * D)  # adaLN
        f += 2 * (N + L) * B * 3 * D * D  # q/k/v of both streams
        f += 4 * B * (N + L) ** 2 * D  # QK^T and AV
        f += 2 * B * (N + (0 if last else L)) * D * D  # out-projections
        f += 16 * B * (N + (0 if last else L)) * D * D  # MLPs (4x)
        if block.attn2 is not None:
            f += 2 * B * N * 4 * D * D + 4 * B * N * N * D
    f += 2 * B * D * 2 * D + 2 * B * N * D * p * p * cout  # norm_out + proj_out
    extra = common.rsr_flops(transformer, ATTENTION, config, steps, B, N, N + L)  # image queries, joint keys
    return {"base": f, "rsr": extra, "total": f + extra}
