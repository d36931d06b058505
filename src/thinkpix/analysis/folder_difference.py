"""How much two arms' images differ: the mean absolute pixel difference (0..255) over the samples two
sampled folders have in common (same layout, e.g. two `compare_adapters` arms on identical prompts and
noise). A flat accuracy curve with images that still move is a different finding from one with images
that do not move at all.

    python -m benchmarks.folder_difference R/compare/rsr_T1 R/compare/rsr_T4
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
from PIL import Image


def mean_pixel_difference(a: str | Path, b: str | Path) -> tuple[float, int]:
    """(mean |a - b| over every pixel and channel of the paired samples, number of pairs)."""
    a, b = Path(a), Path(b)
    diffs = []
    for image in sorted(a.glob("*/samples/*.png")):
        other = b / image.relative_to(a)
        if other.is_file():
            x = np.asarray(Image.open(image).convert("RGB"), dtype=np.float64)
            y = np.asarray(Image.open(other).convert("RGB"), dtype=np.float64)
            diffs.append(np.abs(x - y).mean())
    if not diffs:
        raise SystemExit(f"{a} and {b} have no samples in common (expected DIR/NNNNN/samples/NNNN.png)")
    return float(np.mean(diffs)), len(diffs)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("a")
    parser.add_argument("b")
    args = parser.parse_args()
    value, pairs = mean_pixel_difference(args.a, args.b)
    print(f"{value:.2f} / 255 mean absolute pixel difference over {pairs} paired images")


if __name__ == "__main__":
    main()
