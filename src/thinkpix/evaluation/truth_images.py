"""Images for evaluation: ground-truth renders in GenEval's folder layout, and contact sheets
of scored folders."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ThinkpixError
from ..worlds.shapes.scene import DEFAULT_CANVAS, PlacementError, SceneObject, render, scene_from_metadata


def image_rng(seed: int, prompt_index: int, sample_index: int) -> np.random.Generator:
    """The generator for one image: any image of a set re-renders alone, identically."""
    return np.random.default_rng([seed, prompt_index, sample_index])


def ground_truth(metadata: dict, rng: np.random.Generator, canvas: int = DEFAULT_CANVAS,
                 distractors: int = 0) -> list[SceneObject]:
    """Objects of a ground-truth scene for a GenEval or dense metadata line."""
    return scene_from_metadata(metadata, rng, canvas, distractors)


def write_folder(metas: list[dict], out: Path, images_per_prompt: int = 4, seed: int = 0,
                 distractors: int = 0, canvas: int = DEFAULT_CANVAS, progress: bool = False,
                 labels: list[str] | None = None) -> Path:
    """Render ground truth for each metadata line into GenEval's layout:
    out/<00000>/metadata.jsonl and out/<00000>/samples/<0000>.png. A scene that cannot be
    placed raises `ThinkpixError` naming `labels[i]` (e.g. 'prompts.jsonl:7')."""
    out = Path(out)
    items = enumerate(metas)
    if progress:
        from tqdm import tqdm

        items = tqdm(items, total=len(metas), desc="render", unit="prompt")
    for i, meta in items:
        folder = out / f"{i:05d}"
        (folder / "samples").mkdir(parents=True, exist_ok=True)
        (folder / "metadata.jsonl").write_text(json.dumps(meta) + "\n", encoding="utf-8")
        for j in range(images_per_prompt):
            try:
                objects = ground_truth(meta, image_rng(seed, i, j), canvas, distractors)
            except PlacementError as exc:
                where = labels[i] if labels else f"prompt {i}"
                raise ThinkpixError(f"{where}: {exc} on a {canvas}x{canvas} canvas") from None
            Image.fromarray(render(objects, canvas)).save(folder / "samples" / f"{j:04d}.png")
    return out


def contact_sheet(root: Path, results: list[dict], out: Path, scale: int = 3, max_prompts: int = 30,
                  per_row: int = 3) -> Path:
    """A grid of prompts (`per_row` per row, up to `max_prompts`): each prompt's images side by
    side, framed green (correct) or red (wrong), with the prompt written underneath."""
    from PIL import ImageDraw, ImageFont

    root = Path(root)
    prompts: dict[str, list[dict]] = {}
    for r in results:
        if r["folder"] in prompts or len(prompts) < max_prompts:
            prompts.setdefault(r["folder"], []).append(r)
    blocks = []
    for folder, rows in prompts.items():
        framed = []
        for r in rows:
            with Image.open(root / folder / "samples" / r["sample"]) as im:
                img = np.asarray(im.convert("RGB")).repeat(scale, 0).repeat(scale, 1)
            img = np.pad(img, ((2, 2), (2, 2), (0, 0)))
            img[:2] = img[-2:] = img[:, :2] = img[:, -2:] = (60, 200, 90) if r["correct"] else (230, 50, 50)
            framed.append(img)
        blocks.append((np.concatenate(framed, axis=1), rows[0]["prompt"]))
    cell_w = max(b.shape[1] for b, _ in blocks) + 12
    cell_h = max(b.shape[0] for b, _ in blocks) + 18
    n_rows = -(-len(blocks) // per_row)
    sheet = Image.new("RGB", (cell_w * min(per_row, len(blocks)), cell_h * n_rows), (0, 0, 0))
    draw, font = ImageDraw.Draw(sheet), ImageFont.load_default()
    for k, (block, prompt) in enumerate(blocks):
        x, y = (k % per_row) * cell_w, (k // per_row) * cell_h
        sheet.paste(Image.fromarray(block), (x, y))
        text = prompt if draw.textlength(prompt, font=font) <= cell_w - 12 else prompt[: (cell_w - 12) // 6 - 1] + "..."
        draw.text((x + 2, y + block.shape[0] + 3), text, fill=(220, 220, 220), font=font)
    out = Path(out)
    out.parent.mkdir(parents=True, exist_ok=True)
    sheet.save(out, optimize=True)
    return out
