"""Sampling any base (a bundled model through `models.sampler`, a pipeline base through its own
`generate`) and writing GenEval-style and class folders that a killed run resumes.

Sample i of a call with `seed` s starts from the noise of seed s + i, and the network sees
each sample independently. The same batch size reproduces an image bit for bit; another batch
size can move a rare pixel value by one (float rounding of shape-dependent BLAS kernels; measured
in docs/guarantees.md, no evaluator verdict changed).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from .models.c2i import ClassToImage
from .models.sampler import bundled_images, generate_latents
from .models.t2i import TextToImage


def generate_images(model: TextToImage | ClassToImage, conditions: list, **kwargs) -> torch.Tensor:
    """-> (N, H, W, 3) uint8 images. Keyword arguments as `generate_latents`. A base of
    `models.pipeline_base` (e.g. a diffusers pipeline) samples with its own `generate`."""
    if hasattr(model, "generate"):
        return model.generate(conditions, **kwargs)
    return bundled_images(model, conditions, **kwargs)


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
