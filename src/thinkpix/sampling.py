"""Text-to-image sampling with classifier-free guidance and per-sample seeds.

Sample i of a call with `seed` s starts from the noise of seed s + i, and the network sees
each sample independently, so an image does not depend on its batch-mates or batch size.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from . import flow
from .models.t2i import TextToImage


@torch.no_grad()
def generate_latents(
    model: TextToImage,
    prompts: list[str],
    seed: int = 0,
    steps: int = 20,
    guidance: float = 3.0,
    method: str = "euler",
    shift: float = 1.0,
    batch_size: int = 64,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """-> model-space samples (N, C, h, w)."""
    device = next(model.transformer.parameters()).device
    out = []
    for start in range(0, len(prompts), batch_size):
        chunk = prompts[start : start + batch_size]
        noise = flow.seeded_noise(model.latent_shape, [seed + start + i for i in range(len(chunk))]).to(device)
        tokens, pooled = (v.to(device) for v in model.encode_text(chunk))  # (b, L, D), (b, D)
        if guidance != 1.0:
            empty_tokens, empty_pooled = (v.to(device) for v in model.encode_text([""] * len(chunk)))
            tokens2 = torch.cat([tokens, empty_tokens])  # (2b, L, D): conditional, then unconditional
            pooled2 = torch.cat([pooled, empty_pooled])

            def velocity(x, t):
                v = model.velocity(torch.cat([x, x]), torch.cat([t, t]), tokens2, pooled2)  # (2b, ...)
                v_cond, v_uncond = v.chunk(2)
                return v_uncond + guidance * (v_cond - v_uncond)
        else:

            def velocity(x, t):
                return model.velocity(x, t, tokens, pooled)

        out.append(flow.sample(velocity, noise, steps, method, shift, callback))
    return torch.cat(out)


def generate_images(model: TextToImage, prompts: list[str], **kwargs) -> torch.Tensor:
    """-> (N, H, W, 3) uint8 images. Keyword arguments as `generate_latents`."""
    return model.x0_to_images(generate_latents(model, prompts, **kwargs))


def write_geneval_folder(model: TextToImage, rows: list[dict], out, images_per_prompt: int = 4, seed: int = 0,
                         batch_size: int = 64, progress: bool = True, **kwargs) -> None:
    """Generate images for GenEval metadata `rows` into GenEval's layout: out/<00000>/metadata.jsonl
    and out/<00000>/samples/<0000>.png. Image k of prompt i uses noise seed `seed + i * n + k`."""
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
                save_png(images[i * n + k].numpy(), folder / "samples" / f"{k:04d}.png")
