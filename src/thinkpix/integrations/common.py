"""What the SD3, DiT and FLUX integrations share: the block-list part of the backbone contract, the
processor shell, the frozen closures every `BlockOps` needs, hook bookkeeping and the RSR FLOP count.

All three backbones keep their blocks in `transformer.transformer_blocks`, replace the processor of
one attention per RSR block (`attn` or `attn1`) and start each forward with a transformer pre-hook.
Hooks are module-level functions, not closures: a deep copy of the transformer (e.g. for EMA) runs
its own copy of RSR, and `restore` finds them by identity.
"""

from __future__ import annotations

from functools import partial

import torch
from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import RSRConfig
from thinkpix.rsr.module import LayerDims, RSRModule
from thinkpix.rsr.recursion import BlockOps

PREFIX = "transformer_blocks."


# ----- the backbone contract over `transformer_blocks` --------------------------------------------
def blocks_are(transformer: nn.Module, block_class: str) -> bool:
    """`transformer.transformer_blocks` exists, is not empty and holds only `block_class` blocks."""
    blocks = getattr(transformer, "transformer_blocks", None)
    return blocks is not None and len(blocks) > 0 and all(type(b).__name__ == block_class for b in blocks)


def describe(name: str, transformer: nn.Module) -> dict:
    """What a saved adapter must match (dims are checked per layer via `layer_dims`)."""
    return {"name": name, "class": type(transformer).__name__, "num_blocks": len(transformer.transformer_blocks)}


def num_blocks(transformer: nn.Module) -> int:
    return len(transformer.transformer_blocks)


def layer_dims(transformer: nn.Module, index: int, attn_name: str) -> LayerDims:
    """Widths of block `index` whose RSR attention is `block.<attn_name>`; y is the input of `norm1.linear`."""
    block = transformer.transformer_blocks[index]
    attn = getattr(block, attn_name)
    d_model, d_inner = attn.to_q.in_features, attn.to_q.out_features
    if d_inner != d_model:  # a = a_x + x~ needs a_x (pre out-projection) in the token space
        raise ThinkpixError(f"block {index}: RSR needs heads*head_dim == width, got {d_inner} != {d_model}")
    return LayerDims(d_model=d_model, d_inner=d_inner, d_cond=block.norm1.linear.in_features)


# ----- processors ---------------------------------------------------------------------------------
class RSRProcessor(nn.Module):
    """Shell of an attention processor running RSR's latent steps in one block.

    Holds plain (unregistered) references to the `RSRModule`, the block and the original processor,
    so parameters keep a single owner (`transformer.rsr`). With 0 latent steps a subclass calls the
    original processor: the base model, bit for bit.
    """

    def __init__(self, rsr: RSRModule, key: str, block: nn.Module, original):
        super().__init__()
        object.__setattr__(self, "rsr", rsr)
        object.__setattr__(self, "block", block)
        object.__setattr__(self, "original", original)
        self.key = key

    def extra_repr(self) -> str:
        return f"layer={self.key}"


class TembRSRProcessor(RSRProcessor):
    """A processor of a joint-attention block `(hidden, encoder, temb, ...)` whose y is the block's `temb`."""

    def __init__(self, rsr: RSRModule, key: str, block: nn.Module, original):
        super().__init__(rsr, key, block, original)
        self.temb = None  # set by `hand_temb` (the block's forward pre-hook), consumed by __call__
        self.hidden = None  # the block's raw input x, handed over with temb (loop_body="block" needs it)

    def take_temb(self) -> torch.Tensor | None:
        temb, self.temb = self.temb, None
        return temb

    def take_hidden(self) -> torch.Tensor | None:
        hidden, self.hidden = self.hidden, None
        return hidden

    def missing_temb(self) -> RuntimeError:
        return RuntimeError(f"RSR block {self.key}: no temb (the block's forward pre-hook did not run); "
                            "call the block or the transformer, not its attention directly")


# ----- closures over a block's frozen modules (parts of `BlockOps`) -------------------------------
def base_qkv(attn, x: torch.Tensor):
    """Frozen image projections W: (B, N, D) -> q, k, v each (B, N, inner)."""
    return attn.to_q(x), attn.to_k(x), attn.to_v(x)


def out_project(attn, a_x: torch.Tensor) -> torch.Tensor:
    """Image out-projection (+ dropout): (B, N, inner) -> (B, N, D)."""
    return attn.to_out[1](attn.to_out[0](a_x))


def msa_modulate(norm1, y: torch.Tensor, chunks: int):
    """modulate(LN(a); shift_x(y), scale_x(y)) with the block's own `norm1` adaLN (AdaLayerNormZero).

    `norm1.linear(silu(y))` is cut into `chunks` pieces; pieces 0 and 1 are shift and scale of the
    msa branch. y: (B, d_cond); a: (B, N, D) -> (B, N, D).
    """
    emb = norm1.linear(norm1.silu(y))  # (B, chunks * D)
    shift, scale = emb.chunk(chunks, dim=1)[:2]  # (B, D) each

    def modulate(a):
        return norm1.norm(a) * (1 + scale[:, None]) + shift[:, None]

    return modulate


def text_joiner(text: torch.Tensor, dim: int, text_first: bool = False):
    """-> join(img): `torch.cat` of a step's image part and the fixed text part along `dim`.

    Without autograd (sampling), the joined tensor is one buffer whose text rows are written once; each
    call overwrites only its image rows, in place (the previous step's attention is done with them).
    With autograd, a fresh `cat` per call: an earlier step's attention saved its inputs for backward."""
    buf = None
    L = text.shape[dim]

    def join(img: torch.Tensor) -> torch.Tensor:
        nonlocal buf
        parts = [text, img] if text_first else [img, text]
        if torch.is_grad_enabled() and (img.requires_grad or text.requires_grad):
            return torch.cat(parts, dim=dim)
        if buf is None or buf.shape[dim] != L + img.shape[dim]:
            buf = torch.cat(parts, dim=dim)
        else:
            n = img.shape[dim]
            buf.narrow(dim, L if text_first else 0, n).copy_(img)
        return buf

    return join


def block_ops(attn, attend, modulate, body=None) -> BlockOps:
    """`BlockOps` of a block whose RSR attention `attn` has separate to_q/to_k/to_v and a to_out pair."""
    return BlockOps(base_qkv=partial(base_qkv, attn), attend=attend, modulate=modulate,
                    project=partial(out_project, attn), body=body)


def joint_block_body(block, x: torch.Tensor, y: torch.Tensor):
    """-> body(a_x): the rest of a `JointTransformerBlock` on the image stream, for loop_body="block".

    Same arithmetic as the block's forward after its attention: z = x + gate_msa * out(a_x), then
    z + gate_mlp * ff(modulate(norm2(z); shift_mlp, scale_mlp)), with the block's own adaLN of y.
    x: (B, N, D) the block's raw input; a_x: (B, N, inner) -> z (B, N, D)."""
    if getattr(block, "use_dual_attention", False):
        raise ThinkpixError("loop_body='block' is not implemented for SD3.5 dual-attention blocks")
    emb = block.norm1.linear(block.norm1.silu(y))  # (B, 6 * D)
    _, _, gate_msa, shift_mlp, scale_mlp, gate_mlp = (e[:, None] for e in emb.chunk(6, dim=1))  # (B, 1, D)

    def body(a_x):
        z = x + gate_msa * out_project(block.attn, a_x)  # (B, N, D)
        return z + gate_mlp * block.ff(block.norm2(z) * (1 + scale_mlp) + shift_mlp)

    return body


# ----- hooks --------------------------------------------------------------------------------------
def hand_temb(block, args, kwargs):
    """Block forward pre-hook: block(hidden, encoder, temb, ...) -> processor.temb (SD3, FLUX)."""
    proc = block.attn.processor
    if isinstance(proc, TembRSRProcessor):
        proc.temb = kwargs["temb"] if "temb" in kwargs else args[2]
        if proc.rsr.config.loop_body == "block":
            proc.hidden = kwargs["hidden_states"] if "hidden_states" in kwargs else args[0]


LATENT_STEPS = "latent_steps"  # per-call T: transformer(..., joint_attention_kwargs={"latent_steps": T})


def begin_forward(transformer: nn.Module, args, kwargs, position: int, extra: str = "joint_attention_kwargs"):
    """Start a forward of the attached `RSRModule`; the timestep is kwarg `timestep` or `args[position]`.

    A `latent_steps` entry of the forward's `extra` kwargs dict (`joint_attention_kwargs`, DiT:
    `cross_attention_kwargs`) sets T for this forward only; it is taken out of the dict (returned as the
    new kwargs) so that no other attention processor sees, or warns about, a key it does not know."""
    rsr = transformer._modules.get("rsr")
    if not isinstance(rsr, RSRModule):
        return None
    check_processors(transformer, rsr)
    rsr.begin_forward(kwargs["timestep"] if "timestep" in kwargs
                      else (args[position] if len(args) > position else None))
    given = kwargs.get(extra)
    if not (isinstance(given, dict) and LATENT_STEPS in given):
        return None
    rsr.set_forward_steps(given[LATENT_STEPS])
    rest = {k: v for k, v in given.items() if k != LATENT_STEPS}
    return args, dict(kwargs, **{extra: rest or None})


def check_processors(transformer: nn.Module, rsr: RSRModule) -> None:
    """Refuse a forward whose RSR layers lost their RSR processor (an attention module's `set_processor`,
    `fuse_projections`, ... after attaching): RSR would be off while `get_rsr` still returns it."""
    for path in (rsr.__dict__.get("_attachment") or {}).get("originals", ()):
        attn = transformer.get_submodule(path)
        proc = attn.processor
        if not (isinstance(proc, RSRProcessor) and proc.rsr is rsr) or getattr(attn, "fused_projections", False):
            raise ThinkpixError(f"{path}: its attention processor was replaced ({type(proc).__name__}) or its "
                                "projections fused after RSR was attached, which turns RSR off; detach_rsr before "
                                "changing processors, then attach again")


def begin_joint_forward(transformer, args, kwargs):
    """Transformer forward pre-hook: SD3/FLUX transformer(hidden, encoder, pooled, timestep, ...)."""
    return begin_forward(transformer, args, kwargs, 3)


def install(transformer: nn.Module, rsr: RSRModule, attn_name: str, processor_cls, block_hook,
            forward_hook) -> dict:
    """A `processor_cls` on `block.<attn_name>` of every RSR layer, `block_hook` as a pre-hook on its
    block, `forward_hook` as a pre-hook on the transformer. Returns {attention path: original processor}."""
    originals = {}
    for key in rsr.layer_dims:
        block = transformer.transformer_blocks[int(key)]
        attn = getattr(block, attn_name)
        originals[f"{PREFIX}{key}.{attn_name}"] = attn.processor
        attn.set_processor(processor_cls(rsr, key, block, attn.processor))
        block.register_forward_pre_hook(block_hook, with_kwargs=True)
    transformer.register_forward_pre_hook(forward_hook, with_kwargs=True)
    return originals


def install_joint(transformer: nn.Module, rsr: RSRModule, processor_cls) -> dict:
    """`install` on joint-attention blocks (SD3, FLUX double-stream): `block.attn`, y = the block's temb."""
    return install(transformer, rsr, "attn", processor_cls, hand_temb, begin_joint_forward)


def remove_pre_hook(module: nn.Module, fn) -> None:
    for hook_id, hook in list(module._forward_pre_hooks.items()):
        if hook is fn:
            del module._forward_pre_hooks[hook_id]
            module._forward_pre_hooks_with_kwargs.pop(hook_id, None)


def restore(transformer: nn.Module, originals: dict, block_hook, forward_hook) -> None:
    """Undo `install`: original processor objects back, hooks removed."""
    for path, proc in originals.items():
        transformer.get_submodule(path).set_processor(proc)
        remove_pre_hook(transformer.get_submodule(path.rsplit(".", 1)[0]), block_hook)
    remove_pre_hook(transformer, forward_hook)


def restore_joint(transformer: nn.Module, originals: dict) -> None:
    """Undo `install_joint`."""
    restore(transformer, originals, hand_temb, begin_joint_forward)


# ----- FLOP estimate (multiply-adds x 2) ----------------------------------------------------------
def rsr_flops(transformer: nn.Module, attn_name: str, config: RSRConfig | None, steps: int | None, batch: int,
              image_tokens: int, key_tokens: int) -> int:
    """FLOPs RSR adds to one forward: gates, experts, the intermediate steps' attention of the N image
    queries over `key_tokens` keys (N + L with a text stream, N without), and the switches' extras."""
    if config is None:
        return 0
    D, B, N, S = transformer.inner_dim, batch, image_tokens, key_tokens
    T = config.latent_steps if steps is None else steps
    k = config.num_experts if (config.routing == "soft" or config.expert_impl == "dense") else config.top_k
    extra = 0
    for i in config.layers if T > 0 else []:
        d = layer_dims(transformer, i, attn_name)
        gate = 2 * d.d_model * (config.num_experts if config.gate == "linear" else config.gate_hidden)
        gate += 0 if config.gate == "linear" else 2 * config.gate_hidden * config.num_experts
        expert = 2 * d.d_model * 3 * config.rank + 2 * 3 * config.rank * d.d_inner
        extra += T * B * N * (gate + k * expert)
        extra += (T - 1) * 4 * B * N * S * D  # intermediate steps: image queries only
        if config.base_every_step:
            extra += (T - 1) * 2 * B * N * 3 * D * D
        if config.loop_body == "block":  # out-projection and a 4x MLP per intermediate step
            extra += (T - 1) * 18 * B * N * D * D
        if config.state == "projected":
            extra += (T - 1) * 2 * B * N * D * D
        if config.remodulate and T > 1:
            extra += 2 * B * d.d_cond * transformer.transformer_blocks[i].norm1.linear.out_features
    return extra
