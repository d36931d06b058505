"""Sampling a bundled model (text-to-image or class-conditional) with classifier-free guidance and
per-sample seeds: the flow sampler every bundled base and the lake world share.

Sample i of a call with `seed` s starts from the noise of seed s + i, and the network sees each
sample independently. `thinkpix.sampling` adds the dispatch over every base and the folder writers.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .. import flow
from .c2i import ClassToImage
from .t2i import TextToImage


def _guided(forward: Callable[..., torch.Tensor], cond: tuple, uncond: tuple | None, guidance: float):
    """forward(x, t, *cond) -> velocity. With guidance != 1 the conditional and unconditional halves
    run as one batch: v = v_u + guidance (v_c - v_u)."""
    if uncond is None or guidance == 1.0:
        return lambda x, t: forward(x, t, *cond)
    both = tuple(torch.cat([c, u]) for c, u in zip(cond, uncond))  # (2b, ...): conditional, then unconditional

    def velocity(x, t):
        v_cond, v_uncond = forward(torch.cat([x, x]), torch.cat([t, t]), *both).chunk(2)  # (b, ...) each
        return v_uncond + guidance * (v_cond - v_uncond)

    return velocity


def integrate(model, items: list, seed: int, batch_size: int, velocity_for, steps: int, method: str, shift: float,
               callback) -> torch.Tensor:
    """Sample `items` in chunks; item i starts from the noise of seed + i. -> (N, C, h, w)."""
    device = next(model.transformer.parameters()).device
    out = []
    for start in range(0, len(items), batch_size):
        chunk = items[start : start + batch_size]
        noise = flow.seeded_noise(model.latent_shape, [seed + start + i for i in range(len(chunk))]).to(device)
        out.append(flow.sample(velocity_for(chunk, device), noise, steps, method, shift, callback))
    return torch.cat(out)


def _text_velocity(model: TextToImage, chunk: list[str], guidance: float, device):
    """Prompts -> guided velocity; the unconditional prompt is the empty one."""
    cond = tuple(v.to(device) for v in model.encode_text(chunk))  # (b, L, D), (b, D)
    uncond = tuple(v.to(device) for v in model.encode_text([""] * len(chunk))) if guidance != 1.0 else None
    return _guided(model.velocity, cond, uncond, guidance)


def _class_velocity(model: ClassToImage, chunk: list[int], guidance: float, device):
    """Class labels -> guided velocity; the unconditional label is the DiT's null class."""
    cond = torch.tensor(chunk, dtype=torch.long, device=device)  # (b,)
    return _guided(model.velocity, (cond,), (torch.full_like(cond, model.null_label),), guidance)


@torch.no_grad()
def generate_latents(
    model: TextToImage | ClassToImage,
    conditions: list,
    seed: int = 0,
    steps: int = 20,
    guidance: float = 3.0,
    method: str = "euler",
    shift: float = 1.0,
    batch_size: int = 64,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Prompts (text-to-image) or class labels (class-conditional) -> model-space samples (N, C, h, w)."""
    if isinstance(model, ClassToImage):
        conditions, build = [int(x) for x in conditions], _class_velocity
    else:
        build = _text_velocity

    def velocity_for(chunk: list, device):
        return build(model, chunk, guidance, device)

    return integrate(model, conditions, seed, batch_size, velocity_for, steps, method, shift, callback)


def bundled_images(model: TextToImage | ClassToImage, conditions: list, **kwargs) -> torch.Tensor:
    """-> (N, H, W, 3) uint8 images of a bundled model. Keyword arguments as `generate_latents`."""
    return model.x0_to_images(generate_latents(model, conditions, **kwargs))
