"""Figures the docs show (small, compressed PNGs under docs/figures/).

    python -m benchmarks.make_figures base-samples     # docs/figures/base_samples.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

BASE_PROMPTS = [
    "a photo of a red circle",
    "a photo of two blue squares",
    "a photo of three yellow triangles",
    "a photo of a green square left of a pink circle",
    "a photo of an orange triangle and a white circle",
    "a photo of a purple circle above a blue triangle",
]


def base_samples(out: str = "docs/figures/base_samples.png", model: str = "shapes-base") -> None:
    from thinkpix.bundled import resolve_model
    from thinkpix.imaging import grid, save_png
    from thinkpix.models.t2i import TextToImage
    from thinkpix.sampling import generate_images

    m = TextToImage.load(resolve_model(model))
    rows = [grid(generate_images(m, [p] * 4, seed=0, steps=20, guidance=3.0), cols=4, upscale=3) for p in BASE_PROMPTS]
    sheet = np.concatenate([np.concatenate(rows[i : i + 2], axis=1) for i in range(0, len(rows), 2)], axis=0)
    print(f"wrote {save_png(sheet, out)} (rows, left to right: {BASE_PROMPTS})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figure", choices=["base-samples"])
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.figure == "base-samples":
        base_samples()


if __name__ == "__main__":
    main()
