"""Text-to-image and class-conditional sampling with classifier-free guidance and per-sample seeds.

Sample i of a call with `seed` s starts from the noise of seed s + i, and the network sees
each sample independently. The same batch size reproduces an image bit for bit; another batch
size can move a rare pixel value by one (float rounding of shape-dependent BLAS kernels; measured
in docs/guarantees.md, no evaluator verdict changed).
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


def _chunks_to_do(count: int, per_call: int, complete) -> list[range]:
    """Chunks of `per_call` items anchored at multiples of `per_call` (so a resumed run batches an
    item exactly as an uninterrupted run would), keeping those with an incomplete item."""
    chunks = [range(s, min(s + per_call, count)) for s in range(0, count, per_call)]
    return [c for c in chunks if not all(complete(i) for i in c)]


def write_geneval_folder(model: TextToImage | None, rows: list[dict], out, images_per_prompt: int = 4, seed: int = 0,
                         batch_size: int = 64, progress: bool = True, digits: int = 4,
                         generate: Callable[[range, int], torch.Tensor] | None = None, **kwargs) -> dict:
    """Generate images for GenEval metadata `rows` into GenEval's layout: out/<00000>/metadata.jsonl
    and out/<00000>/samples/<0000>.png (`digits` 5: <00000>.png, as GenEval's own generation script).
    Image k of prompt i uses noise seed `seed + i * n + k`. Complete prompt folders (see
    `sample_record`) are kept, so a killed run resumes; the images are those of an uninterrupted run
    with the same batch size. `generate(rows_range, first_seed) -> (len(range) * n, H, W, 3) uint8`
    replaces the text-to-image sampler (e.g. the lake world's); `model` and `kwargs` are then unused.
    -> {"kept": K, "generated": G} prompts."""
    import json
    from pathlib import Path

    from tqdm import tqdm

    from .files import write_atomic
    from .imaging import save_png
    from .sample_record import prompt_folder_complete

    out, n = Path(out), images_per_prompt
    per_call = max(1, batch_size // n)  # prompts per generation call

    def complete(i: int) -> bool:
        return prompt_folder_complete(out / f"{i:05d}", rows[i], n, digits)

    if generate is None:
        def generate(chunk: range, first_seed: int) -> torch.Tensor:
            prompts = [rows[i]["prompt"] for i in chunk for _ in range(n)]
            return generate_images(model, prompts, seed=first_seed, batch_size=len(prompts), **kwargs)

    todo = _chunks_to_do(len(rows), per_call, complete)
    generated = 0
    for chunk in tqdm(todo, desc="sampling", unit="batch", disable=not progress):
        images = generate(chunk, seed + chunk.start * n)  # (len(chunk) * n, H, W, 3)
        for j, i in enumerate(chunk):
            folder = out / f"{i:05d}"
            if complete(i):
                continue
            for k in range(n):
                save_png(images[j * n + k].numpy(), folder / "samples" / f"{k:0{digits}d}.png")
            write_atomic(folder / "metadata.jsonl", json.dumps(rows[i]) + "\n")  # last: marks the folder complete
            generated += 1
    return {"kept": len(rows) - generated, "generated": generated}


def class_folders(model: ClassToImage, out) -> list:
    """out/<NN>_<class name> for every class, the name reduced to a safe path component."""
    from pathlib import Path

    from .validation import safe_name

    return [Path(out) / f"{label:02d}_{safe_name(name)}" for label, name in enumerate(model.classes)]


def write_class_folder(model: ClassToImage, out, images_per_class: int = 4, seed: int = 0, batch_size: int = 64,
                       progress: bool = True, **kwargs) -> list:
    """Images of every class of a class-conditional model: out/<NN>_<class_name>/<0000>.png
    (e.g. out/00_red_circle/0000.png). Image k of class i uses noise seed `seed + i * n + k`.
    Images already written are kept (chunks of `batch_size` images are redone only when one of
    their images is missing). Returns the class folders."""
    from tqdm import tqdm

    from .imaging import save_png

    n = images_per_class
    labels = [label for label in range(len(model.classes)) for _ in range(n)]
    folders = class_folders(model, out)
    paths = [folders[label] / f"{j % n:04d}.png" for j, label in enumerate(labels)]
    for chunk in tqdm(_chunks_to_do(len(labels), batch_size, lambda j: paths[j].is_file()), desc="sampling",
                      unit="batch", disable=not progress):
        images = generate_class_images(model, labels[chunk.start:chunk.stop], seed=seed + chunk.start,
                                       batch_size=batch_size, **kwargs)
        for j, image in zip(chunk, images):
            if not paths[j].is_file():
                save_png(image.numpy(), paths[j])
    return folders
