"""Lake figures (small PNGs under docs/figures/).

    python -m benchmarks.lake_figures think-steps --model RUN/final [--adapter A] --out docs/figures/lake_think_steps.png
    python -m benchmarks.lake_figures arms --arm base=RUN_A/final --arm rsr_in=RUN_B/final --out docs/figures/lake_arms.png
    python -m benchmarks.lake_figures routing --model RUN/final [--adapter A] --out docs/figures/lake_routing.png

think-steps: "decoding the state after latent step t" - the network run with t as its last latent
step (the frozen base projection joins there, as at the end of every RSR forward) - for maps of
increasing path length, with the same noise in every column. Each map gets two rows: the clean-image
prediction of the very first diffusion step (from pure noise, x0 = x_1 - v) and the finished sample
(20 Euler steps), each for T = 0..8; then a row of the first layer's routing over the grid (expert
per cell, black/white) at the first diffusion step for the largest T.
arms: for the same maps and noise, the map, the ground truth and each arm's sample.
routing: for one map, the expert each cell is sent to at every latent step (columns) of every RSR
layer, at five diffusion steps from pure noise to the last (rows), traced while the sample is drawn.
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

from thinkpix.worlds.lake.evaluation import ground_truth_image, judge
from thinkpix.imaging import grid, save_png
from thinkpix.integrations.attach import start_trace, stop_trace
from thinkpix.worlds.lake.sampling import generate_lake_images, load_lake
from thinkpix.worlds.lake.model import map_inputs
from thinkpix.worlds.lake import random_map, render

FRAME = {"correct": (60, 200, 90), "valid-not-shortest": (240, 170, 40), "touches-hole": (150, 60, 220),
         "broken": (90, 90, 90)}


def framed(image: np.ndarray, verdict: str | None) -> np.ndarray:
    """A 1-pixel frame coloured by the verdict (none: the image as it is)."""
    out = image.copy()
    if verdict:
        out[0, :] = out[-1, :] = out[:, 0] = out[:, -1] = FRAME[verdict]
    return out


def figure_maps(count: int, size: int = 5) -> list[np.ndarray]:
    return [random_map(np.random.default_rng([99, i]), size, 2 + 2 * i) for i in range(count)]


@torch.no_grad()
def first_prediction(model, grids, seed: int) -> torch.Tensor:
    """x0 predicted at t = 1 from the sampling noise: (B, H, W, 3) uint8."""
    from thinkpix import flow

    noise = flow.seeded_noise(model.latent_shape, [seed + i for i in range(len(grids))])
    map_x, kinds = map_inputs(grids, model.meta["canvas"])
    v = model.velocity(noise, torch.ones(len(grids)), map_x, kinds)
    return model.x0_to_images(noise - v)


def routing_row(model, grids, seed: int, steps: int) -> list[np.ndarray]:
    """Per map and latent step, layer 0's expert per token (8x8, upscaled to 32x32), first diffusion step."""
    model.transformer.rsr.set_latent_steps(steps)
    start_trace(model.transformer)
    first_prediction(model, grids, seed)
    trace = stop_trace(model.transformer)[0].routing  # (steps, B, N, k)
    return [expert_tiles(trace[:, b, :, 0], 2) for b in range(len(grids))]


def expert_tiles(experts: torch.Tensor, num_experts: int) -> np.ndarray:
    """(T, 64) expert index per cell -> (T, 32, 32, 3) uint8 tiles: black = expert 0, white = the last
    expert, grey levels between; one 8x8 cell grid upscaled 4x."""
    cells = experts.view(-1, 8, 8).float() / max(num_experts - 1, 1)  # (T, 8, 8)
    images = (cells * 255).to(torch.uint8).repeat_interleave(4, -1).repeat_interleave(4, -2)  # (T, 32, 32)
    return images[..., None].expand(-1, -1, -1, 3).numpy()


def routing_over_sampling(model, g: np.ndarray, seed: int, steps: int = 20,
                          at: tuple[int, ...] = (0, 5, 10, 15, 19)) -> tuple[list[list[np.ndarray]], np.ndarray]:
    """Routing of every RSR layer while one map's sample is drawn: rows[layer * len(at) + j] holds, for
    diffusion step at[j], the expert of each cell (8x8, upscaled to 32x32 RGB, black = expert 0) at each
    latent step; and the finished sample. Experts beyond two are shown as grey levels."""
    start_trace(model.transformer)
    try:
        sample = generate_lake_images(model, [g], seed=seed, steps=steps)[0].numpy()
    finally:
        traces = stop_trace(model.transformer)  # one RSROutput per layer per forward, in forward order
    layers = sorted({o.layer for o in traces})
    experts = model.transformer.rsr.config.num_experts
    rows = []
    for layer in layers:
        forwards = [o for o in traces if o.layer == layer]  # (diffusion steps,)
        for j in at:
            rows.append(list(expert_tiles(forwards[j].routing[:, 0, :, 0], experts)))  # routing: (T, B=1, N, k)
    return rows, sample


def routing(model_path: str, adapter: str | None, out: str, seed: int = 0) -> None:
    g = figure_maps(4)[-1]  # the longest path of the think-steps figure
    model = load_lake(model_path, adapter)
    rows, sample = routing_over_sampling(model, g, seed)
    first = [render(g), framed(sample, judge(sample, g)["verdict"])]
    blank = [np.zeros_like(first[0])] * 2
    tiles = [im for i, row in enumerate(rows) for im in (first if i == 0 else blank) + row]
    save_png(grid(np.stack(tiles), cols=len(rows[0]) + 2, upscale=3), out)
    print(f"written to {out} (rows: layers x diffusion steps 0, 5, 10, 15, 19; columns: map, sample, latent steps)")


def think_steps(model_path: str, adapter: str | None, out: str, maps: int = 4, seed: int = 0,
                max_t: int = 8) -> None:
    grids = figure_maps(maps)
    rows = []
    for g in grids:
        pred_row, sample_row = [render(g)], [ground_truth_image(g)]
        for t in range(max_t + 1):
            model = load_lake(model_path, adapter, latent_steps=t)
            pred_row.append(first_prediction(model, [g], seed)[0].numpy())
            image = generate_lake_images(model, [g], seed=seed, steps=20)[0].numpy()
            sample_row.append(framed(image, judge(image, g)["verdict"]))
        rows += [pred_row, sample_row]
    model = load_lake(model_path, adapter, latent_steps=max_t)
    for g, steps in zip(grids, routing_row(model, grids, seed, max_t)):
        rows.append([render(g), np.zeros_like(render(g))] + list(steps))
    save_png(grid(np.stack([im for row in rows for im in row]), cols=max_t + 2, upscale=3), out)
    print(f"written to {out}")


def arms(specs: list[str], out: str, maps: int = 8, seed: int = 0) -> None:
    grids = [random_map(np.random.default_rng([7, i]), 4 + i % 3, 2 + i) for i in range(maps)]
    columns = [[render(g) for g in grids], [ground_truth_image(g) for g in grids]]
    for spec in specs:
        path, _, adapter = spec.split("=", 1)[1].partition("+")
        images = generate_lake_images(load_lake(path, adapter or None), grids, seed=seed, steps=20).numpy()
        columns.append([framed(im, judge(im, g)["verdict"]) for im, g in zip(images, grids)])
    tiles = [columns[c][r] for r in range(maps) for c in range(len(columns))]
    save_png(grid(np.stack(tiles), cols=len(columns), upscale=3), out)
    print(f"written to {out} (columns: map, ground truth, {', '.join(s.split('=')[0] for s in specs)})")


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("figure", choices=["think-steps", "arms", "routing"])
    p.add_argument("--model", default=None)
    p.add_argument("--adapter", default=None)
    p.add_argument("--arm", action="append", default=[])
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--out", required=True)
    args = p.parse_args()
    torch.set_num_threads(2)
    if args.figure == "think-steps":
        think_steps(args.model, args.adapter, args.out, seed=args.seed)
    elif args.figure == "routing":
        routing(args.model, args.adapter, args.out, seed=args.seed)
    else:
        arms(args.arm, args.out, seed=args.seed)


if __name__ == "__main__":
    main()
