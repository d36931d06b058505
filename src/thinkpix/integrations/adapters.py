"""Save and load RSR adapters: their own safetensors file plus a JSON config, never pickle.

An adapter is a directory holding
    rsr_adapter.safetensors   every RSR tensor (fp32), keys as in `transformer.rsr.state_dict()`
    checksums.json            sha256 of the two files above, verified on load (`thinkpix.files`); the
                              card and any other file are listed, not sealed: they may be edited,
                              removed or added (what people do to model cards on the Hub)
    rsr_config.json           format tag and version, the RSRConfig, what backbone and layer widths it
                              was trained on, every tensor's shape, the sha256 of the tensor file, and
                              the base it was trained on (name + transformer config sha256)
    README.md                 a short model card (base, layers, M, T, rank, data, steps)
It is independent of the base weights (diffusers' LoRA loaders reject non-LoRA keys, so RSR does
not go through them). `load_rsr` refuses, with a ThinkpixError naming the file and the mismatch,
anything that does not fit the transformer or fails its checksum.
"""

from __future__ import annotations

import json
import warnings
from pathlib import Path

import torch
from torch import nn

from thinkpix.errors import ThinkpixError
from thinkpix.files import save_tensors, sha256_file, verify_manifest, write_atomic, write_manifest
from thinkpix.rsr.config import RSRConfig
from thinkpix.rsr.module import RSRModule

from .attach import attach_rsr, backbone_of, detach_rsr, get_rsr, unwrap_model
from .base_identity import base_identity, check_base
from .card import write_card

FORMAT = "thinkpix-rsr-adapter"
FORMAT_VERSION = 1
WEIGHTS = "rsr_adapter.safetensors"
CONFIG = "rsr_config.json"
SEALED = (WEIGHTS, CONFIG)  # what the loader reads: weights + the config it builds RSR from


def _adapter_dir(path) -> Path:
    p = Path(path)
    return p.parent if p.name in (WEIGHTS, CONFIG) else p


def save_rsr(transformer_or_module: nn.Module, path, base_name: str | None = None, card: dict | None = None) -> Path:
    """Write the adapter of `transformer_or_module` (a transformer with RSR, or its RSRModule) to directory `path`.

    Given the transformer, `rsr_config.json` records its base (`base_name`, default the transformer's
    `_name_or_path`, and the sha256 of its config), and a model card `README.md` is written (`card`:
    extra rows such as data, steps, scores)."""
    from ..version import __version__

    rsr = transformer_or_module if isinstance(transformer_or_module, RSRModule) else get_rsr(transformer_or_module)
    out = _adapter_dir(path)
    out.mkdir(parents=True, exist_ok=True)
    tensors = {k: v.detach().to("cpu", torch.float32).contiguous() for k, v in rsr.state_dict().items()}
    config = rsr.config
    meta = {"format": FORMAT, "config": config.to_json()}
    save_tensors(tensors, out / WEIGHTS, metadata=meta)  # a full disk: one line naming the file, no temp file
    record = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "thinkpix_version": __version__,
        "config": config.to_dict(),
        "backbone": rsr.backbone,
        "layers": {k: d.to_dict() for k, d in rsr.layer_dims.items()},
        "tensors": {k: list(v.shape) for k, v in tensors.items()},
        "num_parameters": int(sum(v.numel() for v in tensors.values())),
        "sha256": sha256_file(out / WEIGHTS),
    }
    if not isinstance(transformer_or_module, RSRModule):
        record["base"] = base_identity(unwrap_model(transformer_or_module), base_name)
    write_atomic(out / CONFIG, json.dumps(record, indent=2, sort_keys=True) + "\n")
    write_card(out, record, card)
    write_manifest(out, sealed=SEALED)
    return out


def read_adapter_config(path) -> tuple[RSRConfig, dict]:
    """(RSRConfig, full JSON record) of the adapter at `path`, validated but without loading tensors."""
    d = _adapter_dir(path)
    cfg_path, w_path = d / CONFIG, d / WEIGHTS
    for p in (cfg_path, w_path):
        if not p.is_file():
            raise ThinkpixError(f"{d}: not an RSR adapter (missing {p.name}; expected {CONFIG} and {WEIGHTS})")
    verify_manifest(d, "RSR adapter", sealed=SEALED)  # the files the loader reads; the card may change
    try:
        record = json.loads(cfg_path.read_text())
    except (json.JSONDecodeError, UnicodeDecodeError) as e:
        raise ThinkpixError(f"{cfg_path}: corrupted adapter config, not valid JSON ({e})") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ThinkpixError(f"{cfg_path}: not an RSR adapter config (format is not {FORMAT!r})")
    if record.get("format_version") != FORMAT_VERSION:
        raise ThinkpixError(f"{cfg_path}: adapter format version {record.get('format_version')} is not supported "
                            f"(this thinkpix reads version {FORMAT_VERSION})")
    for key in ("config", "backbone", "layers", "tensors", "sha256"):
        if key not in record:
            raise ThinkpixError(f"{cfg_path}: corrupted adapter config, missing {key!r}")
    try:
        config = RSRConfig.from_dict(record["config"])
    except (ThinkpixError, TypeError) as e:
        raise ThinkpixError(f"{cfg_path}: invalid RSR config: {e}") from None
    return config, record


def load_rsr(transformer: nn.Module, path, strict_config: bool = True, force_base: bool = False) -> RSRModule:
    """Load the adapter at `path` into `transformer`, attaching RSR with the saved config if needed.

    If RSR is already attached, its config must equal the saved one (latent_steps and expert_impl
    may differ) unless `strict_config=False`, in which case only the tensors must fit.
    Refuses with ThinkpixError: missing/corrupted files (checksum), another backbone or block count,
    other layer widths, a different config, missing/unexpected/misshaped tensors, and (unless
    `force_base`, which warns instead) a base whose transformer config differs from the recorded one.
    """
    from safetensors import safe_open

    config, record = read_adapter_config(path)
    d = _adapter_dir(path)
    w_path = d / WEIGHTS
    if sha256_file(w_path) != record["sha256"]:
        raise ThinkpixError(f"{w_path}: corrupted adapter weights (sha256 does not match {CONFIG})")

    backbone = backbone_of(transformer)
    here, saved = backbone.describe(transformer), record["backbone"]
    for key in ("name", "num_blocks"):
        if saved.get(key) != here.get(key):
            raise ThinkpixError(f"{d}: adapter was saved for {key}={saved.get(key)!r}, this transformer has "
                                f"{key}={here.get(key)!r}")
    for key, dims in record["layers"].items():
        now = backbone.layer_dims(transformer, int(key)).to_dict()
        if now != dims:
            raise ThinkpixError(f"{d}: adapter layer {key} was saved for widths {dims}, this transformer has {now}")
    forced = check_base(record.get("base"), unwrap_model(transformer), d, force_base)
    if forced:
        warnings.warn(forced, UserWarning, stacklevel=2)

    try:
        with safe_open(str(w_path), framework="pt", device="cpu") as f:
            meta = f.metadata() or {}
            tensors = {k: f.get_tensor(k) for k in f.keys()}
    except Exception as e:  # safetensors raises its own error types for a damaged header/body
        raise ThinkpixError(f"{w_path}: corrupted adapter weights ({type(e).__name__}: {e})") from None
    if meta.get("format") != FORMAT:
        raise ThinkpixError(f"{w_path}: not an RSR adapter tensor file (metadata format is not {FORMAT!r})")
    bad = [k for k, v in tensors.items() if not torch.isfinite(v).all()]
    if bad:
        raise ThinkpixError(f"{w_path}: adapter tensors contain NaN/Inf ({bad[:5]})")

    existing = getattr(transformer, "rsr", None)
    if isinstance(existing, RSRModule):
        rsr, attached_here = existing, False
        diff = config.differences(rsr.config)
        if diff and strict_config:
            lines = ", ".join(f"{k}: saved={a!r} attached={b!r}" for k, (a, b) in sorted(diff.items()))
            raise ThinkpixError(f"{d}: adapter config does not match the attached RSR ({lines})")
    else:
        rsr, attached_here = attach_rsr(transformer, config), True

    expected = {k: list(v.shape) for k, v in rsr.state_dict().items()}
    got = {k: list(v.shape) for k, v in tensors.items()}
    if got != expected:
        if attached_here:
            detach_rsr(transformer)
        missing = sorted(set(expected) - set(got))
        unexpected = sorted(set(got) - set(expected))
        shapes = sorted(k for k in set(got) & set(expected) if got[k] != expected[k])
        raise ThinkpixError(f"{w_path}: tensors do not fit the RSR config (missing {missing[:5]}, unexpected "
                            f"{unexpected[:5]}, wrong shape {[(k, got[k], expected[k]) for k in shapes[:5]]})")
    rsr.load_state_dict(tensors, strict=True)
    return rsr
