"""Lake: solve the edited map with the lake model at T latent steps; the route, the exact evaluator's
verdict, and the route decoded at each latent step (the network run with t as its last latent step,
the same noise for every t, as `benchmarks/lake_figures.py think-steps` draws it)."""

from __future__ import annotations

import numpy as np

from ..errors import ThinkpixError
from . import drawing, inputs
from .lake_board import parse
from .service import Service

ZOOM = 12  # pixels per canvas pixel: a 4 px cell is shown 48 px wide

NO_MODEL = ("No lake model: start the page with `--lake_model DIR` (a folder from `thinkpix lake train`, "
            "optionally `--lake_adapter DIR` from `thinkpix lake finetune`). The map can still be edited.")


def solvable(text: str) -> np.ndarray:
    """The map, refused with a message when no route joins start and goal."""
    from ..worlds.lake import shortest_length

    grid = parse(text)
    if shortest_length(grid) < 0:
        raise ThinkpixError("this map has no path from start to goal: remove a hole (click it in 'ice / hole' mode)")
    return grid


def _solve(service: Service, grid: np.ndarray, seed: int, steps: int, think: int | None) -> np.ndarray:
    from ..integrations.attach import set_latent_steps
    from ..worlds.lake.sampling import generate_lake_images

    with service.lock:
        if think is not None:
            set_latent_steps(service.lake.transformer, think)
        return generate_lake_images(service.lake, [grid], seed=seed, steps=steps)[0].numpy()  # (32, 32, 3)


def _crop(image: np.ndarray, n: int) -> np.ndarray:
    """The map's N x N cells of the 8 x 8 canvas (the rest is the black outside)."""
    px = image.shape[0] // 8
    return image[: n * px, : n * px]


def solve(service: Service, text, think, seed, steps):
    """-> (route picture (map | sample | a shortest path), markdown verdict, gallery per latent step)."""
    from ..worlds.lake.evaluation import ground_truth_image, judge
    from ..worlds.lake import render, shortest_length

    grid = solvable(text)
    if service.lake is None:
        raise ThinkpixError(NO_MODEL)
    seed, steps, _ = inputs.sampler(seed, steps, 1.0)
    think = inputs.think(think)
    if service.lake.target != "path":
        raise ThinkpixError(f"the page solves path-target lake models; this one draws the {service.lake.target}")
    if think and not service.lake_rsr:
        raise ThinkpixError(f"latent steps T={think} need a lake model with RSR (trained in, or --lake_adapter); "
                            "set T to 0")
    n = grid.shape[0]
    per_step, gallery = {}, []
    for t in (range(think + 1) if service.lake_rsr else [None]):
        image = _solve(service, grid, seed, steps, t)
        per_step[t] = (image, judge(image, grid))
        if t is not None:
            tile = drawing.frame(drawing.enlarge(_crop(image, n), ZOOM), drawing.LAKE_FRAMES[per_step[t][1]["verdict"]])
            gallery.append((tile, f"T={t}: {per_step[t][1]['verdict']}"))
    image, verdict = per_step[think if service.lake_rsr else None]
    route = drawing.frame(drawing.enlarge(_crop(image, n), ZOOM), drawing.LAKE_FRAMES[verdict["verdict"]])
    side = [drawing.enlarge(_crop(render(grid), n), ZOOM), route, drawing.enlarge(_crop(ground_truth_image(grid), n), ZOOM)]
    picture = drawing.labelled_grid([side], [""], ["map", f"model, T={think}", "a shortest path"], label_width=4)
    text = (f"**Verdict: {verdict['verdict']}** ({verdict['reason']}). {verdict['drawn']} cells drawn, "
            f"{verdict.get('on_path', 0)} on a shortest path; a shortest path has {shortest_length(grid)} moves. "
            f"Seed {seed}, {steps} sampler steps.")
    if service.lake_rsr:
        text += " Per latent step: " + ", ".join(f"T={t} {v['verdict']}" for t, (_, v) in per_step.items()) + "."
    return picture, text, gallery
