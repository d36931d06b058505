"""One base, two origins: a bundled thinkpix folder or a diffusers pipeline (SD3 / SD3.5, FLUX, DiT),
behind one small interface, so that fine-tuning and sampling never branch on where the base came from.

    base = load_base("path/to/sd3-pipeline", device="auto", dtype="auto")   # or a bundled name/folder
    cond = base.encode_condition(["a red bench"])        # {name: (B, ...) tensor}; cacheable on CPU
    x0 = base.encode_images(pixels)                      # (B, 3, H, W) in [-1, 1] -> (B, C, h, w) latents
    loss = base.loss(x0, cond, noise, sigmas, weights)   # the base's own training objective
    images = base.generate(["a red bench"], seed=0)      # (N, H, W, 3) uint8, the pipeline's own sampler

A diffusers base uses the pipeline's own text encoders, VAE and scheduler: rectified flow (velocity
noise - x0 at x_t = (1 - sigma) x0 + sigma noise) for SD3 and FLUX, DDPM epsilon prediction for DiT.
A hub id is resolved from the local cache only (`local_files_only=True`): nothing is downloaded.
"""

from __future__ import annotations

from pathlib import Path

import torch

from ..errors import ThinkpixError
from . import pipeline_kinds

DTYPES = {"fp32": torch.float32, "float32": torch.float32, "bf16": torch.bfloat16, "bfloat16": torch.bfloat16,
          "fp16": torch.float16, "float16": torch.float16}


def resolve_device(device: str = "auto") -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise ThinkpixError(f"--device {device}: no CUDA device is available (use --device cpu or auto)")
    if device != "cpu" and not device.startswith("cuda"):
        raise ThinkpixError(f"--device must be auto, cpu or cuda[:N], got {device!r}")
    return torch.device(device)


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """The dtype of the base's weights. 'auto': bf16 on a GPU that supports it, else fp32. On a CPU the
    weights stay fp32 (exact fine-tuning targets); bf16 compute there is `--precision` autocast
    (`thinkpix.precision`), which on CPUs with bf16 matrix units is several times faster."""
    if dtype == "auto":
        return torch.bfloat16 if device.type == "cuda" and torch.cuda.is_bf16_supported() else torch.float32
    if dtype not in DTYPES:
        raise ThinkpixError(f"--dtype must be auto, fp32, bf16 or fp16, got {dtype!r}")
    return DTYPES[dtype]


def is_pipeline_folder(path: Path) -> bool:
    return (Path(path) / "model_index.json").is_file()


def load_base(name_or_path: str, device: str = "auto", dtype: str = "auto"):
    """A bundled thinkpix model (name or folder with thinkpix.json) or a diffusers pipeline (folder with
    model_index.json, or a hub id found in the local cache) -> a base with the interface above."""
    dev = resolve_device(device)
    dt = resolve_dtype(dtype, dev)
    path = Path(name_or_path)
    if (path / "thinkpix.json").is_file() or (not path.exists() and "/" not in str(name_or_path)):
        from ..bundled import resolve_model

        return pipeline_kinds.BundledBase.load(resolve_model(str(name_or_path)), dev, dt)
    return pipeline_kinds.DiffusersBase.load(str(name_or_path), dev, dt)
