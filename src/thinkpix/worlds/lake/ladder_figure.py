"""Decoded latent steps: what a trained ladder arm answers after each latent step, next to the truth.

The paper's FrozenLake analysis reads successive latent steps as successive agent positions. Here every
arm was trained with random depth, so its answer at depth T is a read-out of T latent steps: the
`loop` control's head after each pass, an RSR arm's output when run with T latent steps. Each row: the
map, the read-out (probability that a cell is on a shortest path) at T = 1..8, the truth.

    python -m thinkpix.worlds.lake.ladder_figure --runs RUNS --arms loop rsr-every-step --out FIG.png
"""

from __future__ import annotations

import argparse
from pathlib import Path

import numpy as np
import torch

from . import ladder_task as task
from .ladder import trained
from .ladder_models import arm_named
from .maps import GOAL, HOLE, START

STEPS = tuple(range(1, 9))


def pick_maps(count: int, seed: int = task.TEST_SEED) -> list[np.ndarray]:
    """Held-out in-range maps with the longest training paths (6 moves) and larger, longer ones."""
    inr = [g for g in task.split_maps(task.SPLITS[0], seed) if task.path_length(g) == 6]
    longer = task.split_maps(task.SPLITS[2], seed)
    half = count // 2
    return inr[:: max(1, len(inr) // half)][:half] + longer[:: max(1, len(longer) // (count - half))][:count - half]


def map_rgb(grid: np.ndarray) -> np.ndarray:
    """(n, n, 3) picture of a map: ice light, holes dark blue, start green, goal red."""
    rgb = np.ones((*grid.shape, 3)) * 0.85
    rgb[grid == HOLE] = (0.15, 0.2, 0.35)
    rgb[grid == START] = (0.2, 0.7, 0.3)
    rgb[grid == GOAL] = (0.85, 0.2, 0.2)
    return rgb


def save_grid(fig, out: Path, rows: int) -> Path:
    """Lay out a grid figure of `rows` rows under its title, write it to `out` (folders made) and close it."""
    import matplotlib.pyplot as plt

    fig.tight_layout(pad=0.2, rect=(0, 0, 1, 1 - 0.25 / rows))
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def panel_row(axes, grid: np.ndarray, panels: list[np.ndarray], label: str, titles: list[str] | None,
              limits: tuple[float, float], cmap) -> None:
    """One figure row: the map, then each (8, 8) panel cropped to the map with holes masked; titles on top."""
    n = grid.shape[0]
    for c, ax in enumerate(axes):
        ax.set_xticks([]), ax.set_yticks([])
        if c == 0:
            ax.imshow(map_rgb(grid))
            ax.set_ylabel(label, fontsize=5)
        else:
            ax.imshow(np.where(grid == HOLE, np.nan, panels[c - 1][:n, :n]), vmin=limits[0], vmax=limits[1], cmap=cmap)
        if titles is not None:
            ax.set_title(titles[c], fontsize=6)


@torch.no_grad()
def readouts(model, grids: list[np.ndarray]) -> np.ndarray:
    """(T, B, 8, 8) probabilities after T = 1..8 latent steps."""
    maps, _, _ = task.encode(grids)
    if model.arm.kind == "loop":
        outs = model.readouts(maps, max(STEPS))
    else:
        outs = [model(maps, T) for T in STEPS]
    return torch.stack(outs).sigmoid().numpy()


def draw(runs: Path, arms: list[str], out: Path, seed: int = 0, count: int = 4) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = matplotlib.colormaps["magma"].with_extremes(bad=(0.15, 0.2, 0.35))  # holes: the map's hole colour
    grids = pick_maps(count)
    _, target, _ = task.encode(grids)
    rows = [(a, i) for a in arms for i in range(len(grids))]
    cols = len(STEPS) + 2  # the map, T = 1..8, the truth
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 0.95))
    probs = {a: readouts(trained(runs, arm_named(a), seed), grids) for a in arms}
    titles = ["map"] + [f"T={T}" for T in STEPS] + ["truth"]
    for r, (arm, i) in enumerate(rows):
        g, n = grids[i], grids[i].shape[0]
        panels = [probs[arm][t, i] for t in range(len(STEPS))] + [target[i].numpy()]
        panel_row(axes[r], g, panels, f"{arm}\n{n}x{n}, {task.path_length(g)} mv", titles if r == 0 else None,
                  (0, 1), cmap)
    fig.suptitle(f"Decoded latent steps (training seed {seed}): P(cell on a shortest path), bright = 1, "
                 "holes blue", fontsize=7)
    return save_grid(fig, out, len(rows))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.ladder_figure", description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--arms", nargs="+", default=["loop", "rsr-paper"])
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    print(draw(args.runs, args.arms, args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
