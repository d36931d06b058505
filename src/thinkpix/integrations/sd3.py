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

NAME = "sd3"
PREFIX = "transformer_blocks."


def matches(transformer: nn.Module) -> bool:
    blocks = getattr(transformer, "transformer_blocks", None)
    return blocks is not None and len(blocks) > 0 and all(type(b).__name__ == "JointTransformerBlock" for b in blocks)


def describe(transformer: nn.Module) -> dict:
    """What a saved adapter must match (dims are checked per layer via `layer_dims`)."""
    return {"name": NAME, "class": type(transformer).__name__, "num_blocks": len(transformer.transformer_blocks)}


def num_blocks(transformer: nn.Module) -> int:
    return len(transformer.transformer_blocks)


def layer_dims(transformer: nn.Module, index: int) -> LayerDims:
    block = transformer.transformer_blocks[index]
    attn = block.attn
    d_model, d_inner = attn.to_q.in_features, attn.to_q.out_features
    if d_inner != d_model:  # a = a_x + x~ needs a_x (pre out-projection) in the token space
        raise ThinkpixError(f"block {index}: RSR needs heads*head_dim == width, got {d_inner} != {d_model}")
    return LayerDims(d_model=d_model, d_inner=d_inner, d_cond=block.norm1.linear.in_features)


def check_block(transformer: nn.Module, index: int) -> None:
    attn = transformer.transformer_blocks[index].attn
    proc = attn.processor
    if type(proc).__name__ != "JointAttnProcessor2_0":  # fused q/k/v, IP-adapter, PAG ... are not supported
        hint = ("transformer.unfuse_qkv_projections()" if "Fused" in type(proc).__name__
                else "transformer.set_attn_processor(JointAttnProcessor2_0())")
        raise ThinkpixError(f"block {index}: RSR replaces diffusers' JointAttnProcessor2_0, found "
                            f"{type(proc).__name__}; call {hint} before attach_rsr")


class SD3RSRProcessor(nn.Module):
    """Joint-attention processor running RSR's latent steps on the image stream of one block.

    Holds plain (unregistered) references to the `RSRModule`, the block and the original processor,
    so parameters keep a single owner (`transformer.rsr`). With 0 latent steps it calls the original
    processor: the base model, bit for bit.
    """

    def __init__(self, rsr: RSRModule, key: str, block: nn.Module, original):
        super().__init__()
        object.__setattr__(self, "rsr", rsr)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "original", original)
        self.key = key
        self.temb = None  # set by the block's forward pre-hook, consumed by __call__

    def extra_repr(self) -> str:
        return f"layer={self.key}"

    def __call__(self, attn, hidden_states, encoder_hidden_states=None, attention_mask=None, **kwargs):
        temb, self.temb = self.temb, None
        if self.rsr.steps_for_forward() == 0 or encoder_hidden_states is None:
            return self.original(attn, hidden_states, encoder_hidden_states, attention_mask, **kwargs)
        if temb is None:
            raise RuntimeError(f"RSR block {self.key}: no temb (the block's forward pre-hook did not run); "
                               "call the block or the transformer, not its attention directly")
        ops = block_ops(attn, self.block.norm1, hidden_states, encoder_hidden_states, temb, self.rsr.config)
        a_x, a_c = self.rsr.run(self.key, hidden_states, temb, ops)  # (B, N, inner), (B, L, inner)
        hidden_states = attn.to_out[1](attn.to_out[0](a_x))  # image out-projection (+ dropout)
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
    k_txt_v_txt = (ck, cv)

    def base_qkv(x):  # frozen image projections W
        return attn.to_q(x), attn.to_k(x), attn.to_v(x)

    def attend(q, k, v, final):  # same arithmetic as diffusers' JointAttnProcessor2_0
        q, k, v = split(q), split(k), split(v)  # (B, H, N, hd)
        if attn.norm_q is not None:
            q = attn.norm_q(q)
        if attn.norm_k is not None:
            k = attn.norm_k(k)
        k = torch.cat([k, k_txt_v_txt[0]], dim=2)  # (B, H, N+L, hd)
        v = torch.cat([v, k_txt_v_txt[1]], dim=2)
        if not final:  # intermediate steps: only image queries (text rows would be discarded)
            out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
            return out.transpose(1, 2).reshape(B, -1, heads * head_dim).to(q.dtype), None
        q = torch.cat([q, cq], dim=2)  # (B, H, N+L, hd)
        out = F.scaled_dot_product_attention(q, k, v, dropout_p=0.0, is_causal=False)
        out = out.transpose(1, 2).reshape(B, -1, heads * head_dim).to(q.dtype)  # (B, N+L, inner)
        return out[:, :N], out[:, N:]

    modulate = None
    if cfg.remodulate:
        emb = norm1.linear(norm1.silu(temb))  # the block's own adaLN of y; chunk 0/1 = shift/scale (msa)
        shift, scale = emb.chunk(norm1.linear.out_features // x_tilde.shape[-1], dim=1)[:2]

        def modulate(a):  # modulate(LN(a); shift_x(y), scale_x(y)), as in AdaLayerNormZero
            return norm1.norm(a) * (1 + scale[:, None]) + shift[:, None]

    def project(a_x):
        return attn.to_out[1](attn.to_out[0](a_x))

    return BlockOps(base_qkv=base_qkv, attend=attend, modulate=modulate, project=project)


def _hand_temb(block, args, kwargs):
    """Block forward pre-hook: JointTransformerBlock(hidden, encoder, temb, jak) -> processor.temb."""
    proc = block.attn.processor
    if isinstance(proc, SD3RSRProcessor):
        proc.temb = kwargs["temb"] if "temb" in kwargs else args[2]


def _begin_forward(transformer, args, kwargs):
    """Transformer forward pre-hook: SD3Transformer2DModel(hidden, encoder, pooled, timestep, ...)."""
    rsr = transformer._modules.get("rsr")
    if isinstance(rsr, RSRModule):
        rsr.begin_forward(kwargs["timestep"] if "timestep" in kwargs else (args[3] if len(args) > 3 else None))


# Hooks are module-level functions of their module argument, not closures: a deep copy of the
# transformer (e.g. for EMA) runs its own copy of RSR, and detach finds them by identity.
def install(transformer: nn.Module, rsr: RSRModule) -> dict:
    """Install processors and hooks. Returns {attention path: original processor}."""
    originals = {}
    for key in rsr.layer_dims:
        block = transformer.transformer_blocks[int(key)]
        originals[f"{PREFIX}{key}.attn"] = block.attn.processor
        block.attn.set_processor(SD3RSRProcessor(rsr, key, block, block.attn.processor))
        block.register_forward_pre_hook(_hand_temb, with_kwargs=True)
    transformer.register_forward_pre_hook(_begin_forward, with_kwargs=True)
    return originals


def _remove_pre_hook(module: nn.Module, fn) -> None:
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook is fn:
            del module._forward_pre_hooks[hook_id]
            module._forward_pre_hooks_with_kwargs.pop(hook_id, None)


def restore(transformer: nn.Module, originals: dict) -> None:
    """Undo `install`: original processor objects back, hooks removed."""
    for path, proc in originals.items():
        attn = transformer.get_submodule(path)
        attn.set_processor(proc)
        _remove_pre_hook(transformer.get_submodule(path.rsplit(".", 1)[0]), _hand_temb)
    _remove_pre_hook(transformer, _begin_forward)


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
    extra = 0
    if config is not None:
        T = config.latent_steps if steps is None else steps
        k = config.num_experts if (config.routing == "soft" or config.expert_impl == "dense") else config.top_k
        for i in config.layers if T > 0 else []:
            d = layer_dims(transformer, i)
            gate = 2 * d.d_model * (config.num_experts if config.gate == "linear" else config.gate_hidden)
            gate += 0 if config.gate == "linear" else 2 * config.gate_hidden * config.num_experts
            expert = 2 * d.d_model * 3 * config.rank + 2 * 3 * config.rank * d.d_inner
            extra += T * B * N * (gate + k * expert)
            extra += (T - 1) * 4 * B * N * (N + L) * D  # intermediate steps: image queries only
            if config.base_every_step:
                extra += (T - 1) * 2 * B * N * 3 * D * D
            if config.state == "projected":
                extra += (T - 1) * 2 * B * N * D * D
            if config.remodulate and T > 1:
                extra += 2 * B * d.d_cond * transformer.transformer_blocks[i].norm1.linear.out_features
    return {"base": f, "rsr": extra, "total": f + extra}
