"""Attach RSR to a diffusers transformer, detach it, and drive it at run time.

    rsr = attach_rsr(transformer, RSRConfig(layers=[4, 8, 12], num_experts=2, latent_steps=2, rank=8))
    optimizer = torch.optim.AdamW(rsr.parameters())   # == transformer.rsr.parameters(); the base is frozen
    out = transformer(...); outputs = collect_rsr_outputs(transformer)   # aux losses + routing stats
    set_latent_steps(transformer, 0)                   # the base model, bit for bit (`with`: for a block)
    detach_rsr(transformer)                            # original processors, hooks and requires_grad back

Backbone-specific code is in one module per backbone (`sd3.py`, `dit.py`, `flux.py`), each
providing matches / describe / num_blocks / layer_dims / check_block / install / restore, and
optionally check_layers (a backbone-specific refusal of layer indices, e.g. FLUX single-stream blocks).
What the three share (processor shell, hooks, adaLN re-modulation, RSR FLOPs) is in `common.py`.
"""

from __future__ import annotations

import types
import warnings

from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import RSRConfig
from thinkpix.rsr.module import RSRModule
from thinkpix.rsr.outputs import RSROutput

from . import dit, flux, sd3

BACKBONES = [sd3, dit, flux]  # tried in order


def backbone_of(transformer: nn.Module):
    for mod in BACKBONES:
        if mod.matches(transformer):
            return mod
    raise ThinkpixError(f"RSR does not know how to attach to {type(transformer).__name__}; "
                        f"supported: {[m.NAME for m in BACKBONES]}")


def unwrap_model(model: nn.Module) -> nn.Module:
    while not hasattr(model, "rsr") and isinstance(getattr(model, "module", None), nn.Module):
        model = model.module  # DDP / accelerate wrappers
    return model


def get_rsr(transformer: nn.Module) -> RSRModule:
    """The RSRModule attached to `transformer` (or a DDP wrapper of it); ThinkpixError if none."""
    rsr = getattr(unwrap_model(transformer), "rsr", None)
    if not isinstance(rsr, RSRModule):
        raise ThinkpixError(f"{type(transformer).__name__} has no RSR attached (use attach_rsr first)")
    return rsr


def attach_rsr(transformer: nn.Module, config: RSRConfig, freeze_base: bool = True) -> RSRModule:
    """Install RSR on `config.layers` and return the module holding every added parameter.

    The module is registered as `transformer.rsr`. With `freeze_base` (default) every base
    parameter gets requires_grad=False (restored by `detach_rsr`). New weights are fp32 on the
    transformer's device and stay fp32 if the transformer is cast later. Attach before wrapping
    the model in DDP.
    """
    if isinstance(getattr(transformer, "rsr", None), RSRModule):
        raise ThinkpixError("RSR is already attached to this transformer; detach_rsr it first")
    backbone = backbone_of(transformer)
    if config.loop_body == "block" and backbone is not sd3:
        raise ThinkpixError(f"loop_body='block' is implemented for SD3 joint blocks only, not {backbone.NAME}")
    if hasattr(backbone, "check_layers"):
        backbone.check_layers(transformer, config.layers)
    n = backbone.num_blocks(transformer)
    bad = [i for i in config.layers if i >= n]
    if bad:
        raise ThinkpixError(f"RSR layers {bad} do not exist: the transformer has {n} blocks (0..{n - 1})")
    layers = sorted(config.layers)
    for i in layers:
        backbone.check_block(transformer, i)
    dims = {str(i): backbone.layer_dims(transformer, i) for i in layers}
    rsr = RSRModule(config, dims, backbone.describe(transformer), prefix=getattr(backbone, "PREFIX", ""))
    rsr.train(transformer.training)  # follow the transformer's train/eval mode
    param = next(transformer.parameters(), None)
    if param is not None:
        rsr.to(param.device)  # dtype stays fp32
    grad_flags = {name: p.requires_grad for name, p in transformer.named_parameters()}
    transformer.rsr = rsr  # registered submodule: optimisers, state_dict, DDP see it
    originals = backbone.install(transformer, rsr)
    # plain attribute (not a buffer): what detach needs; survives copy.deepcopy of the transformer
    rsr.__dict__["_attachment"] = {"backbone": backbone.NAME, "originals": originals,
                                   "requires_grad": grad_flags if freeze_base else None}
    if freeze_base:
        for name, p in transformer.named_parameters():
            p.requires_grad_(name.startswith("rsr."))
    if hasattr(transformer, "save_pretrained"):  # diffusers' own save (also what pipe.save_pretrained calls)
        transformer.save_pretrained = types.MethodType(save_pretrained_without_rsr, transformer)
    for name in PROCESSOR_CHANGES:  # each would replace RSR's processors: refused while RSR is attached
        if hasattr(transformer, name):
            transformer.__dict__[name] = types.MethodType(_refuse_processor_change(name), transformer)
    return rsr


def detach_rsr(transformer: nn.Module) -> RSRModule:
    """Remove RSR: the original processor objects, no hooks, base requires_grad as before. Returns the module."""
    transformer = unwrap_model(transformer)
    rsr = get_rsr(transformer)
    att = rsr.__dict__.pop("_attachment")
    backbone = next(m for m in BACKBONES if m.NAME == att["backbone"])
    backbone.restore(transformer, att["originals"])
    del transformer.rsr
    transformer.__dict__.pop("save_pretrained", None)
    for name in PROCESSOR_CHANGES:
        transformer.__dict__.pop(name, None)
    if att["requires_grad"] is not None:
        for name, p in transformer.named_parameters():
            p.requires_grad_(att["requires_grad"].get(name, p.requires_grad))
    return rsr


PROCESSOR_CHANGES = ("fuse_qkv_projections", "set_attn_processor", "set_default_attn_processor")


def _refuse_processor_change(name: str):
    def refuse(transformer, *args, **kwargs):
        raise ThinkpixError(f"{type(transformer).__name__}.{name}() would replace the attention processors that run "
                            "RSR and turn it off silently; call it before attach_rsr/load_rsr, or detach_rsr first")

    return refuse


def save_pretrained_without_rsr(transformer: nn.Module, save_directory, *args, **kwargs):
    """`transformer.save_pretrained` while RSR is attached: saves the base exactly as it is without RSR
    (no `rsr.*` tensor in the file) and warns that the adapter was left out; never a half-saved adapter."""
    rsr = transformer._modules.pop("rsr", None)
    if rsr is not None:
        warnings.warn(f"{type(transformer).__name__}.save_pretrained({str(save_directory)!r}): the RSR adapter is "
                      "attached and was LEFT OUT; the base weights are saved unchanged. Save the adapter with "
                      "thinkpix.save_rsr(transformer, ADAPTER_DIR) and load it after the base with load_rsr.",
                      UserWarning, stacklevel=2)
    try:
        return type(transformer).save_pretrained(transformer, save_directory, *args, **kwargs)
    finally:
        if rsr is not None:
            transformer._modules["rsr"] = rsr


def _keep_signature():  # pipe.save_pretrained inspects the signature to pass safe_serialization, variant ...
    from diffusers import ModelMixin

    save_pretrained_without_rsr.__wrapped__ = ModelMixin.save_pretrained


_keep_signature()


class set_latent_steps:
    """Latent steps T of the RSR attached to `transformer`; 0 runs the original processors (the base model).

        set_latent_steps(transformer, 4)        # every following forward
        with set_latent_steps(transformer, 4):  # the forwards inside the block; the T before is restored
            ...

    `steps=None` changes nothing (no RSR needed). For one call of a diffusers pipeline or transformer,
    `joint_attention_kwargs={"latent_steps": T}` (DiT: `cross_attention_kwargs`) does the same."""

    def __init__(self, transformer: nn.Module, steps: int | None):
        self.rsr = None if steps is None else get_rsr(transformer)
        if self.rsr is not None:
            self.before = self.rsr.latent_steps
            self.rsr.set_latent_steps(steps)

    def __enter__(self) -> "set_latent_steps":
        return self

    def __exit__(self, *exc) -> None:
        if self.rsr is not None:
            self.rsr.set_latent_steps(self.before)


def collect_rsr_outputs(transformer: nn.Module) -> list[RSROutput]:
    """The RSROutput of every RSR layer for the most recent forward, in block order; clears the buffer."""
    return get_rsr(transformer).collect()


def start_trace(transformer: nn.Module, states: bool = False) -> None:
    """Record routing decisions (expert per token, layer, latent step; with the diffusion timestep) of
    every forward until `stop_trace`; with `states`, also the image state after each latent step."""
    get_rsr(transformer).start_trace(states)


def stop_trace(transformer: nn.Module) -> list[RSROutput]:
    """Stop tracing; the traced RSROutputs (`.routing`: (steps, B, N, k) int16, `.timestep`, `.layer`)."""
    return get_rsr(transformer).stop_trace()
