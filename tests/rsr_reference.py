"""An independent, readable re-statement of one RSR block's forward, for the reference tests.

Written from `docs/paper.md`'s pseudocode (and the defaults table), in plain torch. It
does NOT call `thinkpix.rsr` (no `rsr_attention`, `route_tokens`, `LoRAExperts.forward`, `Gate.forward`)
nor `thinkpix.integrations`: it reads only the adapter's raw tensors (A, B, the gate's linear weights)
and the block's frozen linear layers and norms, and redoes the attention arithmetic (softmax(q k^T /
sqrt(d)) v, FLUX's rotary) by hand. Eval-mode routing only (no Gumbel noise), so it is deterministic.

    a = x~
    for t in 1..T:
        u = x~ if t == 1 else (modulate(LN(a); shift_x(y), scale_x(y)) if remodulate else a)
        w = route(gate(u, y))                           # top-k of softmax(g / tau), or all of it (soft)
        q,k,v = sum_m w_m * scale * (u A_m) B_m          # LoRA experts only ...
        q,k,v += W(x~) if t == T else W(u) if base_every_step else 0   # ... the base joins at the end
        a_x, a_c = joint_attention(q,k,v ; fixed text q,k,v)
        if t < T: a = (out0(a_x) if state == "projected" else a_x) + (x~ if reinject else 0)
                  (detached if step t is before the last grad_steps steps)
    final_input: the final W sees x~ ("x0"), u_T ("refined") or x~ + g (u_T - x~) ("gated")
    loop_body "block": a = x + gate_msa * out0(a_x); a += gate_mlp * ff(modulate2(LN(a))) (the block's rest)
    return out_projections(a_x, a_c)

`capture` runs a real model once and records what the RSR attention of one block received and
returned, so the reference can be fed the same x~, c~, y (and FLUX's rotary tables).
"""

from __future__ import annotations

import torch
import torch.nn.functional as F


# ----- the attention arithmetic, by hand -----------------------------------------------------------
def softmax_attention(q, k, v):
    """q (B, Sq, H, d), k/v (B, Sk, H, d) -> (B, Sq, H, d): softmax(q k^T / sqrt(d)) v per head."""
    scores = torch.einsum("bqhd,bkhd->bhqk", q, k) / q.shape[-1] ** 0.5
    return torch.einsum("bhqk,bkhd->bqhd", scores.softmax(-1), v)


def rotate(x, cos, sin):
    """FLUX rotary: pairs (x0, x1) of the last dim rotate by the angle whose cos/sin are given per position.
    x (B, S, H, d); cos, sin (S, d) with each pair's value repeated."""
    pairs = x.unflatten(-1, (-1, 2))  # (B, S, H, d/2, 2)
    turned = torch.stack([-pairs[..., 1], pairs[..., 0]], -1).flatten(-2)  # (-x1, x0) per pair
    return x * cos[None, :, None] + turned * sin[None, :, None]


def linear(lin, x):
    return x @ lin.weight.T + (lin.bias if lin.bias is not None else 0)


def maybe(norm, x):
    return x if norm is None else norm(x)


class ReferenceBlock:
    """The frozen parts of one block, as the reference sees them: W, the text q/k/v, the joint
    attention, the adaLN re-modulation and the out-projections."""

    def __init__(self, kind: str, attn, norm1, x_tilde, c_tilde, y, rotary=None, block=None, x=None):
        self.kind, self.attn, self.norm1, self.block, self.x = kind, attn, norm1, block, x
        self.x_tilde, self.y, self.rotary = x_tilde, y, rotary
        self.head_dim = attn.to_k.out_features // attn.heads
        if c_tilde is not None:  # text q/k/v: frozen text projections, once
            self.cq = maybe(attn.norm_added_q, self.heads(linear(attn.add_q_proj, c_tilde)))
            self.ck = maybe(attn.norm_added_k, self.heads(linear(attn.add_k_proj, c_tilde)))
            self.cv = self.heads(linear(attn.add_v_proj, c_tilde))
        # the msa shift/scale of the block's own adaLN: the first two chunks of norm1.linear(silu(y))
        emb = linear(norm1.linear, F.silu(y))  # (B, chunks * D)
        D = x_tilde.shape[-1]
        self.shift, self.scale = emb[:, :D], emb[:, D:2 * D]
        self.gate_msa, self.shift_mlp, self.scale_mlp, self.gate_mlp = (emb[:, i * D:(i + 1) * D] for i in range(2, 6))
        assert norm1.norm.weight is None, "adaLN's LayerNorm has no affine part"
        self.eps = norm1.norm.eps

    def heads(self, t):  # (B, S, inner) -> (B, S, H, d)
        return t.unflatten(-1, (-1, self.head_dim))

    def base(self, x):
        a = self.attn
        return linear(a.to_q, x), linear(a.to_k, x), linear(a.to_v, x)

    def modulate(self, a):
        return F.layer_norm(a, a.shape[-1:], eps=self.eps) * (1 + self.scale[:, None]) + self.shift[:, None]

    def joint(self, q, k, v):
        """Image q/k/v (B, N, inner) -> a_x (B, N, inner), a_c (B, L, inner) or None (DiT)."""
        a = self.attn
        q, k, v = maybe(a.norm_q, self.heads(q)), maybe(a.norm_k, self.heads(k)), self.heads(v)
        N = q.shape[1]
        if self.kind == "dit":  # self-attention over the image tokens only
            return softmax_attention(q, k, v).flatten(2), None
        if self.kind == "flux":  # text first, then rotary over all L + N positions
            Q, K, V = (torch.cat(p, 1) for p in ((self.cq, q), (self.ck, k), (self.cv, v)))
            cos, sin = self.rotary
            out = softmax_attention(rotate(Q, cos, sin), rotate(K, cos, sin), V).flatten(2)
            L = out.shape[1] - N
            return out[:, L:], out[:, :L]
        Q, K, V = (torch.cat(p, 1) for p in ((q, self.cq), (k, self.ck), (v, self.cv)))  # SD3: image first
        out = softmax_attention(Q, K, V).flatten(2)
        return out[:, :N], out[:, N:]

    def project(self, a_x):
        return linear(self.attn.to_out[0], a_x)

    def rest_of_block(self, a_x):
        """SD3 JointTransformerBlock after its attention, on the image stream, by hand (tanh-GELU MLP)."""
        z = self.x + self.gate_msa[:, None] * self.project(a_x)
        m = F.layer_norm(z, z.shape[-1:], eps=1e-6) * (1 + self.scale_mlp[:, None]) + self.shift_mlp[:, None]
        ff = self.block.ff.net
        h = F.gelu(linear(ff[0].proj, m), approximate="tanh")
        return z + self.gate_mlp[:, None] * linear(ff[2], h)

    def outputs(self, a_x, a_c):
        """What the attention module returns: image (and text) after their out-projections."""
        img = self.project(a_x)
        if self.kind == "dit":
            return img
        txt = a_c if self.attn.context_pre_only else linear(self.attn.to_add_out, a_c)
        return img, txt


# ----- the adapter's pieces, from its raw tensors ---------------------------------------------------
def gate_logits(gate, kind: str, u, y):
    """u (B, N, D), y (B, Dy) -> (B, N, M): linear [u ; y], or MLP on [u ; proj(y)] / on u alone."""
    h = linear(gate.token_in, u)
    if kind != "tokens_only":
        h = h + (F.silu(y) @ gate.cond_in.weight.T)[:, None]
    return h if kind == "linear" else linear(gate.out, F.gelu(h))


def routing_weights(logits, cfg):
    """(B, N, M) logits -> (B, N, M) expert weights; zero for experts a token did not select."""
    p = torch.softmax(logits / cfg.temperature, -1)
    if cfg.routing == "soft":
        return p
    top = p.topk(cfg.top_k, -1).indices
    chosen = torch.zeros_like(p).scatter(-1, top, 1.0)
    if cfg.scale_by_prob:
        return p * chosen
    return chosen + (p - p.detach()) * chosen  # value 1, gradient of p (straight-through)


def expert_qkv(A, B, cfg, u, w):
    """sum_m w_m * scale * (u A_m[:, p]) B_m[p] for p = q, k, v.  A (M, D, 3r), B (M, 3, r, inner)."""
    r = cfg.rank
    scale = 1.0 if cfg.alpha is None else cfg.alpha / cfg.rank
    out = []
    for p in range(3):
        per_expert = torch.stack([(u @ A[m][:, p * r:(p + 1) * r]) @ B[m, p] for m in range(A.shape[0])], -1)
        out.append(scale * (per_expert * w[..., None, :]).sum(-1))  # (B, N, inner)
    return out


def rsr_block(ref: ReferenceBlock, gate, A, B, cfg, T: int, mix=None):
    """docs/paper.md's forward pass of one RSR block; returns what the block's attention module returns."""
    x_tilde, y = ref.x_tilde, ref.y
    a = x_tilde
    for t in range(1, T + 1):
        if t == 1:
            u = x_tilde
        else:
            u = ref.modulate(a) if cfg.remodulate else a
        w = routing_weights(gate_logits(gate, cfg.gate, u, y), cfg)
        q, k, v = expert_qkv(A, B, cfg, u, w)
        if t == T:
            final_in = {"x0": x_tilde, "refined": u}.get(cfg.final_input)
            bq, bk, bv = ref.base(final_in if final_in is not None else x_tilde + mix * (u - x_tilde))
            q, k, v = q + bq, k + bk, v + bv
        elif cfg.base_every_step:
            bq, bk, bv = ref.base(u)
            q, k, v = q + bq, k + bk, v + bv
        a_x, a_c = ref.joint(q, k, v)
        if t < T and cfg.loop_body == "block":
            a = ref.rest_of_block(a_x)
        elif t < T:
            s = ref.project(a_x) if cfg.state == "projected" else a_x
            a = s + x_tilde if cfg.reinject else s
            if cfg.grad_steps is not None and t <= T - cfg.grad_steps:
                a = a.detach()  # only the last grad_steps steps are differentiated
    return ref.outputs(a_x, a_c)


# ----- feeding it what a real block saw -------------------------------------------------------------
def capture(model, block_index: int, attn_name: str, inputs: dict, grad: bool = False):
    """Run `model(**inputs)` once; return {x_tilde, c_tilde, y, rotary, output} of block `block_index`'s
    `attn_name` attention (its inputs detached, its output as returned, with grad if `grad`)."""
    block = model.transformer_blocks[block_index]
    attn = getattr(block, attn_name)
    seen = {}

    def on_block(module, args, kwargs):  # SD3 / FLUX blocks: y is the block's temb, x its raw input
        seen.setdefault("y", kwargs["temb"] if "temb" in kwargs else args[2])
        seen.setdefault("x", kwargs["hidden_states"] if "hidden_states" in kwargs else args[0])

    def on_emb(module, args, output):  # DiT: y is the block's timestep + class embedding
        seen.setdefault("y", output)

    def on_attn(module, args, kwargs, output):
        seen["x_tilde"] = kwargs.get("hidden_states", args[0] if args else None)
        seen["c_tilde"] = kwargs.get("encoder_hidden_states")
        seen["rotary"] = kwargs.get("image_rotary_emb")
        seen["output"] = output

    handles = [attn.register_forward_hook(on_attn, with_kwargs=True)]
    if getattr(block.norm1, "emb", None) is not None:  # the first call is the block's own
        handles.append(block.norm1.emb.register_forward_hook(on_emb))
    else:
        handles.append(block.register_forward_pre_hook(on_block, with_kwargs=True))
    try:
        with torch.set_grad_enabled(grad):
            model(**inputs)
    finally:
        for h in handles:
            h.remove()
    for key in ("x_tilde", "c_tilde", "y", "x"):
        if seen.get(key) is not None:
            seen[key] = seen[key].detach()
    return seen
