"""Adapters on a frozen base, as the fine-tuning and sampling commands see them: RSR (the method)
or LoRA (the paper's parameter-matched SFT baseline). One place decides which one a config or a
folder means, so `finetune`, `generate` and `sample` treat both alike."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch
from torch import nn

from ..deprecation import deprecated
from ..errors import ThinkpixError
from ..rsr.config import RSRConfig
from ..rsr.outputs import total_aux_loss
from . import lora
from .adapters import load_rsr, save_rsr
from .attach import attach_rsr, collect_rsr_outputs, detach_rsr, set_latent_steps


@dataclass
class AttachedAdapter:
    method: str  # "rsr" | "lora"
    num_parameters: int

    def step_outputs(self, transformer: nn.Module) -> tuple[torch.Tensor | float, dict]:
        """(auxiliary loss, routing metrics) of the last forward; (0, {}) for LoRA."""
        if self.method != "rsr":
            return 0.0, {}
        outputs = collect_rsr_outputs(transformer)
        if not outputs:
            return 0.0, {}
        usage = torch.stack([o.usage.float().mean(0) for o in outputs if o.steps]).mean(0)  # (M,)
        entropy = float(torch.stack([o.entropy.float().mean() for o in outputs if o.steps]).mean())
        stats = {"routing_entropy": entropy, "expert_usage": [round(float(u), 4) for u in usage]}
        return total_aux_loss(outputs), stats

    def save(self, transformer: nn.Module, path) -> Path:
        return save_rsr(transformer, path) if self.method == "rsr" else lora.save_lora(transformer, path)


def _rsr_parameters(transformer: nn.Module, config: RSRConfig) -> int:
    module = attach_rsr(transformer, config)
    count = sum(p.numel() for p in module.parameters())
    detach_rsr(transformer)
    return count


def attach_adapter(transformer: nn.Module, ft) -> AttachedAdapter:
    """Attach what a `FinetuneConfig` asks for to a frozen transformer."""
    rsr_cfg = RSRConfig.parse(ft.rsr) if ft.rsr else None
    if ft.method == "rsr":
        module = attach_rsr(transformer, rsr_cfg)
        return AttachedAdapter("rsr", sum(p.numel() for p in module.parameters()))
    if ft.method == "lora":
        layers = [int(x) for x in ft.lora_layers.split(",") if x.strip()] if ft.lora_layers else rsr_cfg.layers
        rank = ft.lora_rank or lora.matched_rank(transformer, layers, _rsr_parameters(transformer, rsr_cfg))
        params = lora.attach_lora(transformer, layers, rank)
        return AttachedAdapter("lora", sum(p.numel() for p in params))
    raise ThinkpixError(f"unknown fine-tuning method {ft.method!r}; known: rsr, lora")


def prepare_for_sampling(model, where, adapter=None, latent_steps: int | None = None, **old):
    """A loaded model (a `models.bundle.ImageBundle`) ready to sample. A model trained with RSR in it
    (`meta["rsr"]`, already attached by its loader) takes `latent_steps` but no further adapter; any other
    takes an RSR or LoRA `adapter` folder, and `latent_steps` only with an RSR one. `where` names the model
    in errors. -> the model, in eval mode. (`think_steps=`: deprecated spelling of `latent_steps=`.)"""
    latent_steps = renamed_steps(latent_steps, old)
    if model.meta.get("rsr"):
        if adapter:
            raise ThinkpixError(f"{where} was trained with RSR; it takes no further --adapter")
        set_latent_steps(model.transformer, latent_steps)
    elif adapter:
        load_adapter(model.transformer, adapter, latent_steps)
    elif latent_steps:
        raise ThinkpixError(f"--latent_steps needs an RSR --adapter or a model trained with RSR ({where} has neither)")
    return model.eval()


def renamed_steps(latent_steps: int | None, old: dict) -> int | None:
    """`latent_steps`, or the deprecated keyword `think_steps` in `old` (any other keyword: a TypeError)."""
    unknown = sorted(set(old) - {"think_steps"})
    if unknown:
        raise TypeError(f"unexpected keyword argument(s) {unknown}")
    if "think_steps" in old:
        deprecated("think_steps=", "latent_steps=", stacklevel=4)
        if latent_steps is None:
            return old["think_steps"]
    return latent_steps


def load_adapter(transformer: nn.Module, path, latent_steps: int | None = None, force_base: bool = False,
                 **old) -> str:
    """Load an RSR or LoRA adapter folder into `transformer`; returns the method. `latent_steps`
    sets RSR's latent steps (0 = the base model); it is refused for a LoRA adapter. An RSR adapter
    recorded for another base is refused unless `force_base`. (`think_steps=`: deprecated.)"""
    latent_steps = renamed_steps(latent_steps, old)
    path = Path(path)
    if not path.exists():
        raise ThinkpixError(f"{path}: adapter folder not found")
    if lora.is_lora_adapter(path):
        if latent_steps not in (None, 0, 1):
            raise ThinkpixError(f"{path}: a LoRA adapter has no latent steps (--latent_steps {latent_steps})")
        lora.load_lora(transformer, path, force_base=force_base)
        return "lora"
    load_rsr(transformer, path, force_base=force_base)
    set_latent_steps(transformer, latent_steps)
    return "rsr"
