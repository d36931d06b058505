"""The paper's SFT baseline: a plain LoRA (peft) on the image-stream q/k/v of the same blocks RSR
uses, no recursion, optionally with its rank chosen to match an RSR adapter's parameter count.
The attention is the one RSR refines, named by each backbone's `ATTENTION`: `attn` in SD3 and FLUX
blocks, `attn1` (self-attention) in DiT blocks.

An adapter directory holds `pytorch_lora_weights.safetensors` (peft's state dict in diffusers' LoRA
format: keys `transformer.<module>.lora_A.weight`, the LoRA config in the `lora_adapter_metadata` entry, so
that diffusers' `pipe.load_lora_weights(FOLDER)` loads it) and `lora_config.json` (layers, rank, alpha,
target modules, parameter count, sha256, the base it was trained on), both sealed in `checksums.json`,
and a model card `README.md`, which (like any other file) may change. Never pickle. Adapters saved
before this hold `lora_adapter.safetensors` with unprefixed keys; they load as before.
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.files import read_checked_record, save_tensors, sha256_file, write_atomic, write_manifest

from .attach import backbone_of

FORMAT = "thinkpix-lora-adapter"
WEIGHTS = "pytorch_lora_weights.safetensors"  # diffusers' LORA_WEIGHT_NAME_SAFE
OLD_WEIGHTS = "lora_adapter.safetensors"  # adapters saved before the diffusers format
PREFIX = "transformer."  # diffusers' key prefix of the transformer's LoRA layers
CONFIG = "lora_config.json"
ADAPTER_NAME = "sft"
PROJECTIONS = ("to_q", "to_k", "to_v")  # the image stream's projections in diffusers' Attention


def target_modules(transformer: nn.Module, layers: list[int]) -> list[str]:
    attn = backbone_of(transformer).ATTENTION  # the attention RSR refines: `attn` (SD3, FLUX), `attn1` (DiT)
    return [f"transformer_blocks.{i}.{attn}.{p}" for i in layers for p in PROJECTIONS]


def attach_lora(transformer: nn.Module, layers: list[int], rank: int, alpha: float | None = None) -> list[nn.Parameter]:
    """Freeze the transformer and add a LoRA (B = 0: starts as the base) on `layers`' image q/k/v.
    Returns the new trainable parameters."""
    from peft import LoraConfig

    n = len(transformer.transformer_blocks)
    if not layers or any(not 0 <= i < n for i in layers):
        raise ThinkpixError(f"LoRA layers {layers} must be block indices in 0..{n - 1}")
    if rank < 1:
        raise ThinkpixError(f"LoRA rank must be >= 1, got {rank}")
    transformer.requires_grad_(False)
    config = LoraConfig(r=rank, lora_alpha=alpha or rank, target_modules=target_modules(transformer, layers),
                        init_lora_weights=True)
    if hasattr(transformer, "add_adapter"):  # diffusers' PeftAdapterMixin (SD3, FLUX)
        transformer.add_adapter(config, adapter_name=ADAPTER_NAME)
    else:  # DiTTransformer2DModel has no PeftAdapterMixin: peft injects the same LoRA layers directly
        from peft import inject_adapter_in_model

        inject_adapter_in_model(config, transformer, adapter_name=ADAPTER_NAME)
    transformer._thinkpix_lora = {"layers": sorted(layers), "rank": rank, "alpha": alpha or rank}
    params = [p for n_, p in transformer.named_parameters() if "lora_" in n_]
    for p in params:
        p.requires_grad_(True)
    return params


def lora_parameter_count(transformer: nn.Module, layers: list[int], rank: int) -> int:
    """Parameters a LoRA of `rank` on `layers`' q/k/v adds (in + out features, times rank)."""
    total = 0
    for name in target_modules(transformer, layers):
        lin = transformer.get_submodule(name)
        total += rank * (lin.in_features + lin.out_features)
    return total


def matched_rank(transformer: nn.Module, layers: list[int], target_parameters: int) -> int:
    """The LoRA rank whose parameter count is closest to `target_parameters`."""
    per_rank = lora_parameter_count(transformer, layers, 1)
    return max(1, round(target_parameters / per_rank))


def save_lora(transformer: nn.Module, path, base_name: str | None = None) -> Path:
    """Write the attached LoRA to folder `path` in diffusers' LoRA format, with its record (the base's
    identity: `base_name`, default the transformer's `_name_or_path`, and its config sha256) and a card."""
    from peft.utils import get_peft_model_state_dict

    from .attach import unwrap_model
    from .base_identity import base_identity
    from .card import CARD, lora_card_text

    meta = getattr(unwrap_model(transformer), "_thinkpix_lora", None)
    if meta is None:
        raise ThinkpixError("this transformer has no thinkpix LoRA attached")
    transformer = unwrap_model(transformer)
    out = Path(path)
    out.mkdir(parents=True, exist_ok=True)
    state = get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)
    tensors = {PREFIX + k: v.detach().to("cpu", torch.float32).contiguous() for k, v in state.items()}
    targets = target_modules(transformer, meta["layers"])
    peft_config = {f"{PREFIX}{k}": v for k, v in dict(r=meta["rank"], lora_alpha=meta["alpha"],
                                                       target_modules=targets, init_lora_weights=True).items()}
    save_tensors(tensors, out / WEIGHTS, metadata={"format": "pt", "thinkpix_format": FORMAT,
                                                   "lora_adapter_metadata": json.dumps(peft_config, sort_keys=True)})
    (out / OLD_WEIGHTS).unlink(missing_ok=True)  # a folder rewritten in place holds one weights file
    record = dict(meta, format=FORMAT, targets=targets, weights=WEIGHTS, base=base_identity(transformer, base_name),
                  num_parameters=int(sum(v.numel() for v in tensors.values())), sha256=sha256_file(out / WEIGHTS))
    write_atomic(out / CONFIG, json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_atomic(out / CARD, lora_card_text(record))
    write_manifest(out, sealed=(WEIGHTS, CONFIG))  # other files (the card) may change
    return out


def is_lora_adapter(path) -> bool:
    return (Path(path) / CONFIG).is_file()


def load_lora(transformer: nn.Module, path, force_base: bool = False) -> None:
    """Attach a LoRA from `path` (refuses a damaged file, one made for other blocks/widths and, unless
    `force_base` (which warns instead), one recorded for a base whose transformer config differs)."""
    import warnings

    from peft.utils import set_peft_model_state_dict
    from safetensors.torch import load_file

    from .base_identity import check_base

    d = Path(path)
    weights = WEIGHTS if (d / WEIGHTS).is_file() or not (d / OLD_WEIGHTS).is_file() else OLD_WEIGHTS
    record = read_checked_record(d, CONFIG, weights, FORMAT, "LoRA adapter", loose=True)
    forced = check_base(record.get("base"), transformer, d, force_base)
    if forced:
        warnings.warn(forced, UserWarning, stacklevel=2)
    attach_lora(transformer, record["layers"], record["rank"], record["alpha"])
    tensors = {k.removeprefix(PREFIX): v for k, v in load_file(d / weights).items()}
    expected = {k: tuple(v.shape) for k, v in _peft_state(transformer).items()}
    got = {k: tuple(v.shape) for k, v in tensors.items()}
    if expected != got:
        raise ThinkpixError(f"{d}: LoRA tensors do not fit this transformer (saved for other widths or blocks)")
    set_peft_model_state_dict(transformer, tensors, adapter_name=ADAPTER_NAME)
    transformer.eval()


def _peft_state(transformer):
    from peft.utils import get_peft_model_state_dict

    return get_peft_model_state_dict(transformer, adapter_name=ADAPTER_NAME)
