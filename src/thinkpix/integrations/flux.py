"""RSR on diffusers' `FluxTransformer2DModel`: the double-stream blocks (`transformer_blocks`, `FluxTransformerBlock`).

What is FLUX-specific lives here; the mechanism itself is `thinkpix.rsr`. A double-stream block is
an MMDiT block like SD3's, with three differences the processor follows exactly:
- the joint sequence puts the text tokens FIRST: [text (L) ; image (N)];
- rotary position embeddings (`image_rotary_emb`, cos/sin over the L + N positions of
  `cat(txt_ids, img_ids)`) rotate q and k of both streams after their RMS q/k norms
  (`norm_q`/`norm_k` image, `norm_added_q`/`norm_added_k` text). The text rows of the rotary tables
  go to the text q/k (computed once per block call), the image rows to the image q/k at every
  latent step;
- attention goes through diffusers' `dispatch_attention_fn` with the processor's attention backend.
Per RSR block: `block.attn` gets a `FluxRSRProcessor` (an `nn.Module` with `__call__`), a forward
pre-hook on the block hands its `temb` (timestep + pooled text [+ guidance] embedding) to the processor:
it is the gate's y and feeds the re-modulation with the block's own `norm1` (AdaLayerNormZero)
shift/scale of the msa branch; a forward pre-hook on the transformer starts each forward.

Layer indices refer to `transformer_blocks`. Single-stream blocks (`single_transformer_blocks`) are
refused: they run one attention over the concatenated text + image sequence with one shared set of
projections and a parallel MLP, so there is no separate image q/k/v projection for the experts to
replace. Also refused: fused q/k/v projections and processors other than `FluxAttnProcessor` (IP-adapter).
"""

from __future__ import annotations

import torch
from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import RSRConfig
from thinkpix.rsr.module import LayerDims, RSRModule
from thinkpix.rsr.recursion import BlockOps

from . import common

NAME = "flux"
ATTENTION = "attn"  # the attention module of a block that RSR (and the LoRA baseline) refine
PREFIX = common.PREFIX
num_blocks = common.num_blocks


def matches(transformer: nn.Module) -> bool:
    return hasattr(transformer, "single_transformer_blocks") and common.blocks_are(transformer, "FluxTransformerBlock")


def describe(transformer: nn.Module) -> dict:
    """What a saved adapter must match (dims are checked per layer via `layer_dims`)."""
    return dict(common.describe(NAME, transformer), num_single_blocks=len(transformer.single_transformer_blocks))


def check_layers(transformer: nn.Module, layers: list[int]) -> None:
    """Indices past the double-stream blocks would be single-stream blocks: refuse them by name."""
    n, n_single = len(transformer.transformer_blocks), len(transformer.single_transformer_blocks)
    bad = sorted(i for i in layers if i >= n)
    if bad:
        raise ThinkpixError(
            f"RSR layers {bad} do not exist among FLUX's {n} double-stream blocks: layer indices refer to "
            f"transformer_blocks (0..{n - 1}). Single-stream blocks (single_transformer_blocks, {n_single} here) "
            "are not supported: they share one q/k/v projection between text and image tokens, so there is no "
            "image-stream projection for the RSR experts to refine")


def layer_dims(transformer: nn.Module, index: int) -> LayerDims:
    return common.layer_dims(transformer, index, ATTENTION)


def check_block(transformer: nn.Module, index: int) -> None:
    attn = transformer.transformer_blocks[index].attn
    if getattr(attn, "fused_projections", False):
        raise ThinkpixError(f"block {index}: RSR needs separate q/k/v projections; call "
                            "transformer.unfuse_qkv_projections() before attach_rsr")
    proc = attn.processor
    if type(proc).__name__ != "FluxAttnProcessor":  # IP-adapter and others are not supported
        raise ThinkpixError(f"block {index}: RSR replaces diffusers' FluxAttnProcessor, found {type(proc).__name__}; "
                            "call transformer.set_attn_processor(FluxAttnProcessor()) before attach_rsr")
    if attn.added_kv_proj_dim is None:
        raise ThinkpixError(f"block {index}: RSR needs a joint (double-stream) attention with text projections")


class FluxRSRProcessor(common.TembRSRProcessor):
    """Double-stream attention processor running RSR's latent steps on the image stream of one FLUX block.

    Same signature as diffusers' `FluxAttnProcessor` (FluxAttention filters kwargs by it). With 0
    latent steps it calls the original processor: the base model, bit for bit.
    """

    _attention_backend = None  # set by FluxAttention.set_attention_backend, as on FluxAttnProcessor
    _parallel_config = None

    def __init__(self, rsr: RSRModule, key: str, block: nn.Module, original):
        super().__init__(rsr, key, block, original)
        self._attention_backend = getattr(original, "_attention_backend", None)
        self._parallel_config = getattr(original, "_parallel_config", None)

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, image_rotary_emb=None,
                 latent_steps=None):
        temb = self.take_temb()
        if latent_steps is not None:  # named, so diffusers passes it through (per-call T)
            self.rsr.set_forward_steps(latent_steps)
        if self.rsr.steps_for_forward() == 0 or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, image_rotary_emb)
        if temb is None:
            raise self.missing_temb()
        ops = block_ops(attn, self.block.norm1, hidden_states, encoder_hidden_states, temb, image_rotary_emb,
                        attention_mask, self.rsr.config, self._attention_backend, self._parallel_config)
        a_x, a_c = self.rsr.run(self.key, hidden_states, temb, ops)  # (B, N, inner), (B, L, inner)
        hidden_states = common.out_project(attn, a_x.contiguous())  # image out-projection (+ dropout)
        return hidden_states, attn.to_add_out(a_c.contiguous())  # text out-projection


def block_ops(attn, norm1, x_tilde: torch.Tensor, c_tilde: torch.Tensor, temb: torch.Tensor, rotary, attention_mask,
              cfg: RSRConfig, backend=None, parallel_config=None) -> BlockOps:
    """Closures over one FluxTransformerBlock's frozen modules; text q/k/v are computed here, once."""
    from diffusers.models.attention_dispatch import dispatch_attention_fn
    from diffusers.models.embeddings import apply_rotary_emb

    L = c_tilde.shape[1]
    hd = attn.head_dim

    def heads(t):  # (B, S, inner) -> (B, S, H, hd), as FluxAttnProcessor
        return t.unflatten(-1, (-1, hd))

    txt_rot = img_rot = None
    if rotary is not None:  # rows 0..L-1 are the text positions, L.. the image positions
        cos, sin = rotary
        txt_rot, img_rot = (cos[:L], sin[:L]), (cos[L:], sin[L:])

    # text q/k/v with the frozen text projections, RMS norms and rotary: computed once, reused at every step
    cq = attn.norm_added_q(heads(attn.add_q_proj(c_tilde)))
    ck = attn.norm_added_k(heads(attn.add_k_proj(c_tilde)))
    cv = heads(attn.add_v_proj(c_tilde))
    if txt_rot is not None:  # elementwise: the same numbers as rotating the joint sequence
        cq = apply_rotary_emb(cq, txt_rot, sequence_dim=1)
        ck = apply_rotary_emb(ck, txt_rot, sequence_dim=1)
    join_q, join_k, join_v = (common.text_joiner(t, dim=1, text_first=True) for t in (cq, ck, cv))  # (B, L+N, H, hd)

    def attend(q, k, v, final):  # same arithmetic as diffusers' FluxAttnProcessor
        q, k, v = attn.norm_q(heads(q)), attn.norm_k(heads(k)), heads(v)  # (B, N, H, hd)
        if img_rot is not None:
            q = apply_rotary_emb(q, img_rot, sequence_dim=1)
            k = apply_rotary_emb(k, img_rot, sequence_dim=1)
        key, value = join_k(k), join_v(v)  # (B, L+N, H, hd): text first
        # intermediate steps need only the image query rows, unless a mask is given (its rows cover L+N queries)
        joint = final or attention_mask is not None
        query = join_q(q) if joint else q
        out = dispatch_attention_fn(query, key, value, attn_mask=attention_mask, backend=backend,
                                    parallel_config=parallel_config)
        out = out.flatten(2, 3).to(query.dtype)  # (B, S_q, inner)
        if not joint:
            return out, None
        return out[:, L:], (out[:, :L] if final else None)  # a_x (B, N, inner), a_c (B, L, inner)

    modulate = common.msa_modulate(norm1, temb, 6) if cfg.remodulate else None  # the block's own adaLN of y
    return common.block_ops(attn, attend, modulate)


# FluxTransformerBlock(hidden, encoder, temb, rotary, jak) and FluxTransformer2DModel(hidden, encoder,
# pooled, timestep, ...) take their arguments in SD3's order: the same hooks.
def install(transformer: nn.Module, rsr: RSRModule) -> dict:
    """Install processors and hooks. Returns {attention path: original processor}."""
    return common.install_joint(transformer, rsr, FluxRSRProcessor)


restore = common.restore_joint  # original processor objects back, hooks removed


# ----- FLOP estimate (multiply-adds x 2) -----------------------------------------------------------
def estimate_forward_flops(transformer: nn.Module, batch: int, image_tokens: int, text_tokens: int,
                           config: RSRConfig | None = None, steps: int | None = None) -> dict:
    """Predicted FLOPs of one forward: {"base", "rsr", "total"}; `rsr` is what the config adds.

    Counts matmuls and attention (q/k norms, rotary and other elementwise work are left out), with the
    same accounting as `sd3.estimate_forward_flops`. Assumes no attention mask.
    """
    cfg_t = transformer.config
    D, B, N, L = transformer.inner_dim, batch, image_tokens, text_tokens
    S = N + L
    f = 2 * B * N * cfg_t.in_channels * D + 2 * B * L * cfg_t.joint_attention_dim * D  # x / context embedders
    f += 2 * B * (256 * D + D * D) * (2 if cfg_t.guidance_embeds else 1)  # timestep (+ guidance) embedding
    f += 2 * B * (cfg_t.pooled_projection_dim * D + D * D)  # pooled text projection
    for block in transformer.transformer_blocks:
        f += 2 * 2 * B * D * 6 * D  # adaLN of both streams
        f += 2 * B * S * 3 * D * D  # q/k/v of both streams
        f += 4 * B * S * S * D  # QK^T and AV over the joint sequence
        f += 2 * B * S * D * D  # out-projections of both streams
        f += 2 * B * S * D * block.ff.net[0].proj.out_features * 2  # MLPs of both streams
    for block in transformer.single_transformer_blocks:
        f += 2 * B * D * 3 * D  # adaLN
        f += 2 * B * S * 3 * D * D + 4 * B * S * S * D  # q/k/v and attention
        f += 2 * B * S * D * block.mlp_hidden_dim  # parallel MLP in
        f += 2 * B * S * (D + block.mlp_hidden_dim) * D  # fused out-projection
    f += 2 * B * D * 2 * D + 2 * B * N * D * transformer.proj_out.out_features  # norm_out + proj_out
    extra = common.rsr_flops(transformer, ATTENTION, config, steps, B, N, S)  # image queries, joint keys
    return {"base": f, "rsr": extra, "total": f + extra}
