"""Compute precision of training and sampling: `fp32`, `bf16` or `auto`.

    with autocast(resolve("auto")):             # bf16 autocast where it pays, else a no-op
        loss = objective(step, indices)

`bf16` is autocast only (`torch.autocast(..., dtype=torch.bfloat16)`): the matmuls, convolutions and
attention of the transformer (and of RSR/LoRA adapters attached to it) run in bf16, while every
weight, gradient, optimiser state, EMA shadow, router and loss stays fp32. The frozen text encoder
and autoencoder run in fp32 inside `full_precision()` (their outputs are cached and are the loss
targets), so a run in one precision never depends on what another precision filled a cache with.

`auto` resolves to bf16 on a CUDA GPU that supports it and on an x86 CPU with bf16 matrix units
(the `amx_bf16` or `avx512_bf16` flags of /proc/cpuinfo), else to fp32.
"""

from __future__ import annotations

import contextlib
import functools
from pathlib import Path

import torch
import torch.nn.functional as F
from torch.overrides import TorchFunctionMode

from .errors import ThinkpixError

PRECISIONS = ("fp32", "bf16", "auto")
CPU_BF16_FLAGS = ("amx_bf16", "avx512_bf16")  # x86 instruction sets with bf16 dot products / tiles
CPUINFO = Path("/proc/cpuinfo")


@functools.lru_cache(maxsize=1)
def cpu_bf16_flags() -> tuple[str, ...]:
    """The bf16 matrix-unit flags this CPU reports (empty where /proc/cpuinfo is absent or silent)."""
    try:
        text = CPUINFO.read_text(encoding="utf-8", errors="replace")
    except OSError:
        return ()
    for line in text.splitlines():
        if line.startswith("flags"):
            flags = set(line.split(":", 1)[-1].split())
            return tuple(f for f in CPU_BF16_FLAGS if f in flags)
    return ()


def check(precision: str, what: str = "precision") -> str:
    if precision not in PRECISIONS:
        raise ThinkpixError(f"{what} must be one of {', '.join(PRECISIONS)}, got {precision!r}")
    return precision


def resolve(precision: str, device: torch.device | str = "cpu") -> str:
    """'fp32' | 'bf16' | 'auto' -> 'fp32' or 'bf16' for `device` (see the module doc for `auto`)."""
    device = torch.device(device)
    if check(precision) != "auto":
        return precision
    if device.type == "cuda":
        return "bf16" if torch.cuda.is_available() and torch.cuda.is_bf16_supported() else "fp32"
    if device.type == "cpu":
        return "bf16" if cpu_bf16_flags() else "fp32"
    return "fp32"


class Fp32TrainingAttention(TorchFunctionMode):
    """Under CPU bf16 autocast, attention that will be differentiated runs in fp32: torch's CPU flash
    attention backward is slower in bf16 than in fp32 at this project's shapes (88 tokens, heads of 64;
    docs/training.md, Precision). Inputs and output stay bf16; sampling (no gradient) keeps bf16
    attention."""

    def __torch_function__(self, func, types, args=(), kwargs=None):
        kwargs = kwargs or {}
        if (func is F.scaled_dot_product_attention and torch.is_grad_enabled()
                and torch.is_autocast_enabled("cpu") and args[0].device.type == "cpu"):
            q, k, v = (x.float() for x in args[:3])
            with torch.autocast("cpu", enabled=False):
                out = func(q, k, v, *args[3:], **kwargs)
            return out.to(args[0].dtype if args[0].dtype != torch.float32 else torch.bfloat16)
        return func(*args, **kwargs)


@contextlib.contextmanager
def autocast(precision: str, device: torch.device | str = "cpu"):
    """A context in which `precision` (resolved for `device`) applies: bf16 autocast (on a CPU with
    `Fp32TrainingAttention`), or nothing for fp32."""
    device = torch.device(device)
    if resolve(precision, device) != "bf16":
        yield
        return
    with torch.autocast(device.type, dtype=torch.bfloat16):
        if device.type == "cpu":
            with Fp32TrainingAttention():
                yield
        else:
            yield


def full_precision(device: torch.device | str = "cpu"):
    """A context that switches autocast off (fp32) inside an autocast region, e.g. for frozen encoders."""
    return torch.autocast(torch.device(device).type, enabled=False)
