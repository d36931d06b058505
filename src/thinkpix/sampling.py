"""Text-to-image and class-conditional sampling with classifier-free guidance and per-sample seeds.

Sample i of a call with `seed` s starts from the noise of seed s + i, and the network sees
each sample independently, so an image does not depend on its batch-mates or batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import flow
from .models.c2i import ClassToImage
from .models.t2i import TextToImage


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


def _integrate(model, items: list, seed: int, batch_size: int, velocity_for, steps: int, method: str, shift: float,
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

    return _integrate(model, conditions, seed, batch_size, velocity_for, steps, method, shift, callback)


def generate_images(model: TextToImage | ClassToImage, conditions: list, **kwargs) -> torch.Tensor:
    """-> (N, H, W, 3) uint8 images. Keyword arguments as `generate_latents`. A base of
    `models.pipeline_base` (e.g. a diffusers pipeline) samples with its own `generate`."""
    if hasattr(model, "generate"):
        return model.generate(conditions, **kwargs)
    return model.x0_to_images(generate_latents(model, conditions, **kwargs))


# Class-conditional names, kept for readability at call sites that sample classes.
generate_class_latents = generate_latents
generate_class_images = generate_images


def write_geneval_folder(model: TextToImage, rows: list[dict], out, images_per_prompt: int = 4, seed: int = 0,
                         batch_size: int = 64, progress: bool = True, digits: int = 4, **kwargs) -> None:
    """Generate images for GenEval metadata `rows` into GenEval's layout: out/<00000>/metadata.jsonl
    and out/<00000>/samples/<0000>.png (`digits` 5: <00000>.png, as GenEval's own generation script).
    Image k of prompt i uses noise seed `seed + i * n + k`."""
    import json
    from pathlib import Path

    from tqdm import tqdm

    from .imaging import save_png

    out, n = Path(out), images_per_prompt
    per_call = max(1, batch_size // n)  # prompts per generation call
    for start in tqdm(range(0, len(rows), per_call), desc="sampling", unit="batch", disable=not progress):
        chunk = rows[start : start + per_call]
        prompts = [r["prompt"] for r in chunk for _ in range(n)]
        images = generate_images(model, prompts, seed=seed + start * n, batch_size=len(prompts), **kwargs)
        for i, row in enumerate(chunk):
            folder = out / f"{start + i:05d}"
            (folder / "samples").mkdir(parents=True, exist_ok=True)
            (folder / "metadata.jsonl").write_text(json.dumps(row) + "\n")
            for k in range(n):
                save_png(images[i * n + k].numpy(), folder / "samples" / f"{k:0{digits}d}.png")


def write_class_folder(model: ClassToImage, out, images_per_class: int = 4, seed: int = 0, batch_size: int = 64,
                       progress: bool = True, **kwargs) -> list:
    """Images of every class of a class-conditional model: out/<NN>_<class_name>/<0000>.png
    (e.g. out/00_red_circle/0000.png). Image k of class i uses noise seed `seed + i * n + k`.
    Returns the class folders."""
    from pathlib import Path

    from tqdm import tqdm

    from .imaging import save_png

    out, n = Path(out), images_per_class
    labels = [label for label in range(len(model.classes)) for _ in range(n)]
    images = torch.cat([generate_class_images(model, labels[i : i + batch_size], seed=seed + i, batch_size=batch_size,
                                              **kwargs)
                        for i in tqdm(range(0, len(labels), batch_size), desc="sampling", unit="batch",
                                      disable=not progress)])
    folders = [out / f"{label:02d}_{name.replace(' ', '_')}" for label, name in enumerate(model.classes)]
    for j, image in enumerate(images):
        save_png(image.numpy(), folders[labels[j]] / f"{j % n:04d}.png")
    return folders
