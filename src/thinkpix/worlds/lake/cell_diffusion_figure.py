"""Decoded latent steps of the lake diffusion model: what it predicts after T latent steps, at a few noise levels.

For a held-out map, the true path layer x0 is noised to x_t = (1 - t) x0 + t noise at t = 0.8, 0.5, 0.2
(fixed noise); the model's prediction of the clean path, x0_hat = x_t - t v(x_t, t), is decoded after
T = 0 (the RSR loop removed), 1, 2, 4, 8 and 16 latent steps. A loop that computes sharpens the path
with T; an inert one leaves every column alike. Rows: map and noise level; columns: the map, x_t, x0_hat
per T, the truth.

    python -m thinkpix.worlds.lake.cell_diffusion_figure --runs RUNS --arm rsr-refined-every-step-b2 --out FIG.png
    python -m thinkpix.worlds.lake.cell_diffusion_figure --curves RESULTS.json --out CURVES.png   # T curves per arm
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

from thinkpix import flow

from . import ladder_task as task
from .cell_diffusion import path_layer, trained
from .ladder_figure import panel_row, pick_maps, save_grid
from .ladder_models import arm_named

NOISE_LEVELS = (0.8, 0.5, 0.2)
STEPS = (0, 1, 2, 4, 8, 16)


@torch.no_grad()
def predictions(model, grids: list[np.ndarray], t: float, steps=STEPS, seed: int = 0):
    """x_t (B, 8, 8) and x0_hat per T: (len(steps), B, 8, 8), from one fixed noise draw per map."""
    maps, _, _ = task.encode(grids)
    x0 = path_layer(grids, np.random.default_rng(seed))  # (B, 1, 8, 8)
    noise = flow.seeded_noise((1, task.CANVAS, task.CANVAS), list(range(len(grids))))
    ts = torch.full((len(grids),), t)
    x_t = flow.interpolate(x0, noise, ts)
    x0_hat = [x_t - t * model.velocity(x_t, ts, maps, T) for T in steps]
    return x_t[:, 0].numpy(), torch.cat(x0_hat, 1).permute(1, 0, 2, 3).numpy(), x0[:, 0].numpy()


def draw(runs: Path, arm: str, out: Path, seed: int = 0, count: int = 2) -> Path:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    cmap = matplotlib.colormaps["magma"].with_extremes(bad=(0.15, 0.2, 0.35))  # holes: the map's hole colour
    grids = pick_maps(count)
    model = trained(runs, arm_named(arm), seed)
    steps = STEPS if model.solver.arm.kind in ("rsr", "adapter") else STEPS[1:]
    rows = [(i, t) for i in range(len(grids)) for t in NOISE_LEVELS]
    cols = len(steps) + 3
    fig, axes = plt.subplots(len(rows), cols, figsize=(cols * 0.9, len(rows) * 0.95))
    cache = {t: predictions(model, grids, t, steps) for t in NOISE_LEVELS}
    titles = ["map", "x_t"] + [f"T={T}" for T in steps] + ["truth"]
    for r, (i, t) in enumerate(rows):
        g, n = grids[i], grids[i].shape[0]
        x_t, x0_hat, truth = cache[t]
        panels = [x_t[i]] + [x0_hat[k, i] for k in range(len(steps))] + [truth[i]]
        panel_row(axes[r], g, panels, f"{n}x{n}, {task.path_length(g)} mv\nt={t}", titles if r == 0 else None,
                  (-1, 1), cmap)
    fig.suptitle(f"{arm} (seed {seed}): predicted clean path x0_hat after T latent steps, bright = on the path, "
                 "holes blue", fontsize=6)
    return save_grid(fig, out, len(rows))


def draw_curves(result: dict, out: Path) -> Path:
    """Accuracy against T (mean over seeds, the seeds' range shaded) per arm, on the deciding maps and on the
    longer maps, from a `cell_diffusion_table` result."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, 2, figsize=(7.5, 2.8), sharey=True)
    for ax, (name, title) in zip(axes, (("curve_deciding", "in-range maps, 4-6 moves"),
                                        ("curve_longer", "longer maps, 7-10 moves"))):
        for role, arm in result["roles"].items():
            seeds = list(result["arms"][arm].values())
            steps = sorted({int(T) for r in seeds for T in r[name]})
            acc = np.array([[r[name].get(str(T), r[name]["1"]) for T in steps] for r in seeds])  # (seeds, T)
            line = ax.plot(steps, acc.mean(0), marker="o", ms=3, label=f"{role}: {arm}")[0]
            ax.fill_between(steps, acc.min(0), acc.max(0), color=line.get_color(), alpha=0.15)
        ax.set_xscale("symlog", linthresh=1)
        ax.set_xticks([0, 1, 2, 4, 8, 16], ["0", "1", "2", "4", "8", "16"])
        ax.set_xlabel("latent steps T (training: 1-8)")
        ax.set_title(title, fontsize=8)
    axes[0].set_ylabel("exact-map accuracy")
    axes[0].legend(fontsize=6)
    fig.tight_layout()
    out.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(out, dpi=110)
    plt.close(fig)
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.cell_diffusion_figure",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, help="the run folder (the decoded-steps figure)")
    parser.add_argument("--arm", help="the arm whose latent steps to decode")
    parser.add_argument("--curves", type=Path, help="instead: draw the T curves of a cell_diffusion_table results file")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    if args.curves is not None:
        print(draw_curves(json.loads(args.curves.read_text()), args.out))
    elif args.runs is None or args.arm is None:
        parser.error("--runs and --arm are required for the decoded-steps figure (or give --curves)")
    else:
        print(draw(args.runs, args.arm, args.out, args.seed))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
