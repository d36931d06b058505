"""Pictures for the page: enlarged samples with the evaluator's detections drawn on them, routing
maps (expert per image token, in colour, over the image) and labelled grids of tiles. All inputs
and outputs are (H, W, 3) uint8 arrays."""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw, ImageFont

PASS, FAIL, WEAK = (40, 200, 80), (230, 50, 50), (150, 150, 150)
# expert colours: distinct hues, then repeated (a routing map with more experts reuses them)
EXPERT_COLOURS = np.array([(31, 119, 180), (255, 127, 14), (44, 160, 44), (214, 39, 40), (148, 103, 189),
                           (140, 86, 75), (227, 119, 194), (127, 127, 127)], dtype=np.float32)
LAKE_FRAMES = {"correct": PASS, "valid-not-shortest": (240, 170, 40), "wrong-position": (240, 170, 40),
               "touches-hole": (150, 60, 220), "broken": (90, 90, 90)}


def load_font(size: int = 12):
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow without FreeType: the fixed bitmap font
        return ImageFont.load_default()


def enlarge(image: np.ndarray, scale: int) -> np.ndarray:
    """Nearest-neighbour upscale: (H, W, 3) -> (H * scale, W * scale, 3)."""
    return np.asarray(image).repeat(scale, 0).repeat(scale, 1)


def frame(image: np.ndarray, colour, width: int = 3) -> np.ndarray:
    out = np.array(image, copy=True)
    out[:width], out[-width:], out[:, :width], out[:, -width:] = colour, colour, colour, colour
    return out


def detections(image: np.ndarray, details: list, threshold: float, scale: int = 8,
               correct: bool | None = None) -> np.ndarray:
    """The image enlarged `scale` times, each detection (`[shape, colour, confidence, (x0, y0, x1, y1)]`,
    as `evaluation.runner.score_image` reports them) boxed and labelled: white boxes count (confidence
    above `threshold`), grey ones do not; a green or red frame for the verdict (none when unknown)."""
    big = Image.fromarray(enlarge(image, scale))
    draw, font = ImageDraw.Draw(big), load_font(11)
    for shape, colour, confidence, (x0, y0, x1, y1) in details:
        counted = confidence > threshold
        box = (x0 * scale, y0 * scale, x1 * scale - 1, y1 * scale - 1)
        draw.rectangle(box, outline=(255, 255, 255) if counted else WEAK, width=2)
        label = f"{colour} {shape} {confidence:.2f}"
        ty = box[1] - 13 if box[1] >= 13 else box[3] + 2
        draw.rectangle((box[0], ty, box[0] + 6 * len(label) + 4, ty + 12), fill=(0, 0, 0))
        draw.text((box[0] + 2, ty), label, fill=(255, 255, 255) if counted else WEAK, font=font)
    out = np.asarray(big)
    return out if correct is None else frame(out, PASS if correct else FAIL)


def routing_map(experts: np.ndarray, image: np.ndarray, scale: int = 4, alpha: float = 0.55) -> np.ndarray:
    """experts (N,) expert index per image token, N = side * side in raster order; image (H, W, 3) ->
    the image enlarged `scale` times with each token's area tinted by its expert's colour."""
    side = int(round(len(experts) ** 0.5))
    if side * side != len(experts):
        raise ValueError(f"{len(experts)} tokens are no square grid")
    colours = EXPERT_COLOURS[np.asarray(experts).reshape(side, side) % len(EXPERT_COLOURS)]  # (side, side, 3)
    big = enlarge(image, scale).astype(np.float32)  # (H*s, W*s, 3)
    cell = big.shape[0] // side
    tint = colours.repeat(cell, 0).repeat(cell, 1)  # (H*s, W*s, 3) when side divides H*s
    out = (1 - alpha) * big + alpha * tint
    return out.clip(0, 255).astype(np.uint8)


def legend(num_experts: int) -> str:
    """Markdown naming each expert's colour."""
    names = ("blue", "orange", "green", "red", "purple", "brown", "pink", "grey")
    return ", ".join(f"expert {m}: {names[m % len(names)]}" for m in range(num_experts))


def labelled_grid(rows: list[list[np.ndarray]], row_labels: list[str], col_labels: list[str],
                  pad: int = 4, label_width: int = 120, label_height: int = 18) -> np.ndarray:
    """Tiles of equal size in rows, a label left of each row and above each column -> one image."""
    h, w = rows[0][0].shape[:2]
    cols = max(len(r) for r in rows)
    width = label_width + cols * (w + pad) + pad
    height = label_height + len(rows) * (h + pad) + pad
    canvas = Image.new("RGB", (width, height), (255, 255, 255))
    draw, font = ImageDraw.Draw(canvas), load_font(12)
    for j, text in enumerate(col_labels):
        draw.text((label_width + pad + j * (w + pad), 2), text, fill=(0, 0, 0), font=font)
    for i, row in enumerate(rows):
        y = label_height + pad + i * (h + pad)
        draw.text((4, y + h // 2 - 6), row_labels[i], fill=(0, 0, 0), font=font)
        for j, tile in enumerate(row):
            canvas.paste(Image.fromarray(np.asarray(tile, dtype=np.uint8)), (label_width + pad + j * (w + pad), y))
    return np.asarray(canvas)
