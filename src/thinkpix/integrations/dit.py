"""RSR on diffusers' `DiTTransformer2DModel` (class-conditional DiT: `BasicTransformerBlock`, adaLN-Zero).

What is DiT-specific lives here; the mechanism itself is `thinkpix.rsr`. A DiT block has no text
stream: its self-attention `attn1` sees only image tokens, so the recursion runs over all image
tokens and the "fixed context" of the joint attention is empty (`a_c` is None). Per RSR block:
- `attn1` gets a `DiTRSRProcessor` (an `nn.Module` with `__call__`, replacing `AttnProcessor2_0`);
- the gate's conditioning vector y is the block's own timestep + class embedding `emb`, the output
  of `block.norm1.emb` (`CombinedTimestepLabelEmbeddings`). It is captured, not recomputed: in
  training mode that embedding drops class labels at random (classifier-free guidance dropout),
  so recomputing it would draw other labels than the block used and shift the global RNG. A
  forward pre-hook on the block arms the capture and a forward hook on `norm1.emb` takes its
  output (the transformer's final layer also calls block 0's `norm1.emb`; unarmed, it is ignored);
- re-modulation between latent steps uses the block's own `norm1` adaLN shift/scale of the msa
  branch: `norm1.linear(silu(y))` chunks 0 and 1, exactly as `AdaLayerNormZero` computes them;
- a forward pre-hook on the transformer starts each forward (`RSRModule.begin_forward`).
Refused: blocks that are not adaLN-Zero self-attention (PixArt-style `ada_norm_single`, cross-attention
blocks), processors other than `AttnProcessor2_0` (fused q/k/v, IP-adapter, ...).
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

NAME = "dit"
ATTENTION = "attn1"  # the attention module of a block that RSR (and the LoRA baseline) refine
PREFIX = common.PREFIX
num_blocks = common.num_blocks


def matches(transformer: nn.Module) -> bool:
    return common.blocks_are(transformer, "BasicTransformerBlock")


def describe(transformer: nn.Module) -> dict:
    """What a saved adapter must match (dims are checked per layer via `layer_dims`)."""
    return common.describe(NAME, transformer)


def layer_dims(transformer: nn.Module, index: int) -> LayerDims:
    return common.layer_dims(transformer, index, ATTENTION)


def check_block(transformer: nn.Module, index: int) -> None:
    block = transformer.transformer_blocks[index]
    if getattr(block, "norm_type", None) != "ada_norm_zero" or getattr(block.norm1, "emb", None) is None:
        raise ThinkpixError(f"block {index}: RSR on a DiT needs adaLN-Zero blocks with a timestep + class embedding "
                            f"(norm_type='ada_norm_zero', num_embeds_ada_norm set), found "
                            f"norm_type={getattr(block, 'norm_type', None)!r}")
    if block.only_cross_attention or block.pos_embed is not None or block.attn1.is_cross_attention:
        raise ThinkpixError(f"block {index}: RSR on a DiT needs plain self-attention in attn1 "
                            "(no cross-attention, no per-block positional embedding)")
    attn = block.attn1
    proc = attn.processor
    if type(proc).__name__ != "AttnProcessor2_0":  # fused q/k/v, IP-adapter, PAG ... are not supported
        raise ThinkpixError(f"block {index}: RSR replaces diffusers' AttnProcessor2_0 (separate q/k/v projections), "
                            f"found {type(proc).__name__}; call transformer.transformer_blocks[{index}].attn1"
                            ".set_processor(AttnProcessor2_0()) before attach_rsr")
    if attn.spatial_norm is not None or attn.group_norm is not None:
        raise ThinkpixError(f"block {index}: RSR does not support attention with spatial_norm or group_norm")


class DiTRSRProcessor(common.RSRProcessor):
    """Self-attention processor running RSR's latent steps on the image tokens of one DiT block.

    With 0 latent steps it calls the original processor: the base model, bit for bit.
    """

    def __init__(self, rsr: RSRModule, key: str, block: nn.Module, original):
        super().__init__(rsr, key, block, original)
        self.armed = False  # set by the block's forward pre-hook: the next norm1.emb output is this block's y
        self.y = None  # captured by the norm1.emb forward hook, consumed by __call__

    def capture_y(self, module, args, output):
        """Forward hook on `block.norm1.emb`: keep the block's timestep + class embedding (once per block call)."""
        if self.armed:
            self.y, self.armed = output, False

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, temb=None,
                 latent_steps=None, **kwargs):
        y, self.y = self.y, None
        if latent_steps is not None:  # named, so diffusers passes it through (per-call T)
            self.rsr.set_forward_steps(latent_steps)
        if self.rsr.steps_for_forward() == 0 or encoder_hidden_states is not None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, temb, **kwargs)
        if y is None:
            raise RuntimeError(f"RSR block {self.key}: no class/timestep embedding (the block's hooks did not run); "
                               "call the block or the transformer, not its attention directly")
        if hidden_states.ndim != 3:
            raise RuntimeError(f"RSR block {self.key}: expected (B, N, D) tokens, got {tuple(hidden_states.shape)}")
        ops = block_ops(attn, self.block.norm1, hidden_states, y, attention_mask, self.rsr.config)
        a_x, _ = self.rsr.run(self.key, hidden_states, y, ops)  # (B, N, inner)
        out = common.out_project(attn, a_x)  # out-projection (+ dropout), as in AttnProcessor2_0
        if attn.residual_connection:
            out = out + hidden_states
        return out / attn.rescale_output_factor


def block_ops(attn, norm1, x_tilde: torch.Tensor, y: torch.Tensor, attention_mask, cfg: RSRConfig) -> BlockOps:
    """Closures over one BasicTransformerBlock's frozen modules. No text stream: the context is empty."""
    B, N, _ = x_tilde.shape
    heads = attn.heads
    if attention_mask is not None:  # as AttnProcessor2_0 does (self-attention: every query row is an image token)
        attention_mask = attn.prepare_attention_mask(attention_mask, N, B)
        attention_mask = attention_mask.view(B, heads, -1, attention_mask.shape[-1])

    def attend(q, k, v, final):  # same arithmetic as diffusers' AttnProcessor2_0 (self-attention)
        head_dim = k.shape[-1] // heads
        q, k, v = (t.view(B, -1, heads, head_dim).transpose(1, 2) for t in (q, k, v))  # (B, H, N, hd)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        out = F.scaled_dot_product_attention(q, k, v, attn_mask=attention_mask, dropout_p=0.0, is_causal=False)
        return out.transpose(1, 2).reshape(B, -1, heads * head_dim).to(q.dtype), None  # (B, N, inner); no text

    modulate = common.msa_modulate(norm1, y, 6) if cfg.remodulate else None  # the block's own adaLN of y
    return common.block_ops(attn, attend, modulate)


def _arm(block, args, kwargs):
    """Block forward pre-hook: the next `norm1.emb` output belongs to this block call."""
    proc = block.attn1.processor
    if isinstance(proc, DiTRSRProcessor):
        proc.y, proc.armed = None, True


def _begin_forward(transformer, args, kwargs):
    """Transformer forward pre-hook: DiTTransformer2DModel(hidden, timestep, class_labels, ...)."""
    return common.begin_forward(transformer, args, kwargs, 1, extra="cross_attention_kwargs")


# The block and transformer hooks are module-level functions (found by identity at detach); the
# norm1.emb hook is the processor's bound method, which a deep copy of the transformer (e.g. for EMA)
# rebinds to the copy's processor.
def install(transformer: nn.Module, rsr: RSRModule) -> dict:
    """Install processors and hooks. Returns {attention path: original processor}."""
    originals = common.install(transformer, rsr, ATTENTION, DiTRSRProcessor, _arm, _begin_forward)
    for key in rsr.layer_dims:
        block = transformer.transformer_blocks[int(key)]
        block.norm1.emb.register_forward_hook(block.attn1.processor.capture_y)
    return originals


def restore(transformer: nn.Module, originals: dict) -> None:
    """Undo `install`: original processor objects back, hooks removed."""
    for path in originals:
        emb = transformer.get_submodule(path.rsplit(".", 1)[0]).norm1.emb
        for hook_id, hook in list(emb._forward_hooks.items()):
            if isinstance(getattr(hook, "__self__", None), DiTRSRProcessor):
                del emb._forward_hooks[hook_id]
    common.restore(transformer, originals, _arm, _begin_forward)


# ----- FLOP estimate (multiply-adds x 2) -----------------------------------------------------------
def estimate_forward_flops(transformer: nn.Module, batch: int, image_tokens: int,
                           config: RSRConfig | None = None, steps: int | None = None) -> dict:
    """Predicted FLOPs of one forward: {"base", "rsr", "total"}; `rsr` is what the config adds."""
    cfg_t = transformer.config
    D, B, N = transformer.inner_dim, batch, image_tokens
    p, cin, cout = cfg_t.patch_size, cfg_t.in_channels, transformer.out_channels
    temb = 2 * B * (256 * D + D * D)  # timestep embedding MLP (the class embedding is a lookup)
    f = 2 * B * N * p * p * cin * D  # patch embedding
    for block in transformer.transformer_blocks:
        f += temb + 2 * B * D * block.norm1.linear.out_features  # every block embeds (t, class) and its adaLN
        f += 2 * B * N * 3 * D * D  # q/k/v
        f += 4 * B * N * N * D  # QK^T and AV
        f += 2 * B * N * D * D  # out-projection
        f += 2 * B * N * D * block.ff.net[0].proj.out_features * 2  # MLP (in and out)
    f += temb + 2 * B * D * 2 * D + 2 * B * N * D * p * p * cout  # final adaLN + proj_out
    extra = common.rsr_flops(transformer, ATTENTION, config, steps, B, N, N)  # full self-attention over the image
    return {"base": f, "rsr": extra, "total": f + extra}
