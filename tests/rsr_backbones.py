"""Tiny diffusers transformers RSR attaches to (SD3, SD3.5-style, DiT, FLUX), their inputs, and the
helpers the RSR backbone tests share. Not a test module: imported by `test_rsr_*.py`."""

from __future__ import annotations

from dataclasses import dataclass, field
from functools import partial
from typing import Callable

import torch
from diffusers import DiTTransformer2DModel, FluxTransformer2DModel, SD3Transformer2DModel
from torch import nn

from thinkpix.integrations import collect_rsr_outputs
from thinkpix.integrations.dit import DiTRSRProcessor
from thinkpix.integrations.flux import FluxRSRProcessor
from thinkpix.integrations.sd3 import SD3RSRProcessor

N_IMAGE = 16  # image tokens of every tiny backbone: (8 / 2) ** 2 patches, FLUX a 4 x 4 grid

# ----- SD3 / SD3.5 ---------------------------------------------------------------------------------
SD3 = dict(sample_size=8, patch_size=2, in_channels=4, num_layers=3, attention_head_dim=8, num_attention_heads=4,
           joint_attention_dim=32, caption_projection_dim=32, pooled_projection_dim=16, out_channels=4,
           pos_embed_max_size=16)
SD35 = dict(SD3, dual_attention_layers=(0,), qk_norm="rms_norm")
SD3_CONFIGS = {"sd3": SD3, "sd35": SD35}


def make_sd3(kind="sd3", seed=0, **over):
    torch.manual_seed(seed)
    return SD3Transformer2DModel(**dict(SD3_CONFIGS[kind], **over)).eval()


def sd3_inputs(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(batch, 4, 8, 8, generator=g),
                encoder_hidden_states=torch.randn(batch, 5, 32, generator=g),
                pooled_projections=torch.randn(batch, 16, generator=g),
                timestep=torch.rand(batch, generator=g) * 1000, return_dict=False)


# ----- DiT (class-conditional, adaLN-Zero self-attention) ------------------------------------------
DIT = dict(num_attention_heads=2, attention_head_dim=8, in_channels=4, out_channels=8, num_layers=3, sample_size=8,
           patch_size=2, num_embeds_ada_norm=10, norm_type="ada_norm_zero")


def make_dit(seed=0, label_dropout=None, **over):
    torch.manual_seed(seed)
    model = DiTTransformer2DModel(**dict(DIT, **over)).eval()
    if label_dropout is not None:  # diffusers' class-label dropout (CFG), active in training mode only
        for b in model.transformer_blocks:
            b.norm1.emb.class_embedder.dropout_prob = label_dropout
    return model


def dit_inputs(batch=2, seed=1):
    g = torch.Generator().manual_seed(seed)
    return dict(hidden_states=torch.randn(batch, 4, 8, 8, generator=g),
                timestep=torch.randint(0, 1000, (batch,), generator=g),
                class_labels=torch.randint(0, 10, (batch,), generator=g), return_dict=False)


# ----- FLUX (double-stream blocks; one single-stream block) ----------------------------------------
FLUX = dict(patch_size=1, in_channels=4, num_layers=2, num_single_layers=1, attention_head_dim=16,
            num_attention_heads=2, joint_attention_dim=32, pooled_projection_dim=32, axes_dims_rope=(4, 4, 8))
N_TEXT = 5  # FLUX text tokens


def make_flux(seed=0, **over):
    torch.manual_seed(seed)
    return FluxTransformer2DModel(**dict(FLUX, **over)).eval()


def flux_inputs(batch=2, seed=1, guidance=False):
    g = torch.Generator().manual_seed(seed)
    grid = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(4.0), torch.arange(4.0), indexing="ij"), -1)
    x = dict(hidden_states=torch.randn(batch, N_IMAGE, 4, generator=g),
             encoder_hidden_states=torch.randn(batch, N_TEXT, 32, generator=g),
             pooled_projections=torch.randn(batch, 32, generator=g), timestep=torch.rand(batch, generator=g),
             img_ids=grid.reshape(-1, 3), txt_ids=torch.zeros(N_TEXT, 3), return_dict=False)
    if guidance:
        x["guidance"] = torch.full((batch,), 3.5)
    return x


# ----- one record per backbone ---------------------------------------------------------------------
@dataclass(frozen=True)
class Backbone:
    name: str  # the saved adapter's backbone name
    make: Callable[..., nn.Module]  # make(seed=0, **config overrides) -> a transformer in eval mode
    inputs: Callable[..., dict]  # inputs(batch=2, seed=1) -> forward kwargs
    layers: list[int]  # every block RSR can take (the last one included)
    attn: str  # the block attribute holding the attention RSR replaces the processor of
    processor: type
    width: int  # token width D = heads * head_dim
    float_inputs: tuple[str, ...]  # inputs cast to bf16 with the base
    unbatched: tuple[str, ...] = ()  # inputs without a batch dimension
    no_dropout: dict = field(default_factory=dict)  # make() overrides: no random numbers of its own in train mode


JOINT_FLOATS = ("hidden_states", "encoder_hidden_states", "pooled_projections")
BACKBONES = {
    "sd3": Backbone("sd3", make_sd3, sd3_inputs, [0, 1, 2], "attn", SD3RSRProcessor, 32, JOINT_FLOATS),
    "sd35": Backbone("sd3", partial(make_sd3, "sd35"), sd3_inputs, [0, 1, 2], "attn", SD3RSRProcessor, 32,
                     JOINT_FLOATS),
    "dit": Backbone("dit", make_dit, dit_inputs, [0, 1, 2], "attn1", DiTRSRProcessor, 16, ("hidden_states",),
                    no_dropout={"label_dropout": 0.0}),
    "flux": Backbone("flux", make_flux, flux_inputs, [0, 1], "attn", FluxRSRProcessor, 32, JOINT_FLOATS,
                     unbatched=("img_ids", "txt_ids")),
}
VARIANTS = dict(BACKBONES, flux_guidance=Backbone(  # FLUX-dev style: a guidance embedding in temb
    "flux", partial(make_flux, guidance_embeds=True), partial(flux_inputs, guidance=True), [0, 1], "attn",
    FluxRSRProcessor, 32, JOINT_FLOATS, unbatched=("img_ids", "txt_ids")))


# ----- helpers -------------------------------------------------------------------------------------
def randomize(rsr, seed=3, gate_std=1.0):
    """A trained-looking adapter: non-zero experts and gates that spread tokens over the experts."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for e in rsr.experts.values():
            e.B.normal_(0, 0.2, generator=g)
        for gate in rsr.gates.values():
            last = gate.out if gate.out is not None else gate.token_in
            last.weight.normal_(0, gate_std, generator=g)


def run(model, x):
    with torch.no_grad():
        return model(**x)[0]


def train_step(model, x, seed=5):
    """One training forward + backward under a fixed seed: (loss, this forward's RSROutputs)."""
    torch.manual_seed(seed)
    out = model(**x)[0]
    outs = collect_rsr_outputs(model)
    loss = out.square().mean() + sum(o.aux_loss for o in outs)
    loss.backward()
    return loss.detach(), outs


def sample(x: dict, i: int, bb: Backbone) -> dict:
    """Sample i of a batch of inputs, as a batch of one."""
    return {k: (v[i:i + 1] if torch.is_tensor(v) and k not in bb.unbatched else v) for k, v in x.items()}


def processors(model) -> dict:
    """{attention module name: processor object} (not every model has an `attn_processors` property)."""
    return {name: m.processor for name, m in model.named_modules() if hasattr(m, "set_processor")}


def hooks(model) -> list:
    """How many forward (pre-)hooks, with and without kwargs, every module of `model` has."""
    kinds = ("_forward_pre_hooks", "_forward_pre_hooks_with_kwargs", "_forward_hooks", "_forward_hooks_with_kwargs")
    return [(name, *(len(getattr(m, k, {})) for k in kinds)) for name, m in model.named_modules()]
