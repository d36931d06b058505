"""Lake diffusion with one token per cell: a rectified-flow model that draws a shortest path.

The generated "image" is the path layer at one latent value per cell on the 8 x 8 canvas: x0 = +1 on
the cells of one shortest start -> goal path (start and goal included; a random one of the shortest
paths per training example), -1 elsewhere. The map enters as five input channels (one-hot cell kind,
`ladder_task.encode`) beside the noisy path channel, so map and latent share a token per cell and the
model spends nothing on copying the map. The transformer is the ladder's (`ladder_models.Solver`, any
arm: a plain stack, the looped control, an RSR reading), here with the diffusion timestep.

A sample is judged exactly: the cells above 0 must be one shortest path (start and goal in, no hole,
connected, exactly L + 1 cells for a shortest length L). Any shortest path counts.

    python -m thinkpix.worlds.lake.ladder train --task diffusion --arm stack-2 --seed 0 --runs RUNS
"""

from __future__ import annotations

from dataclasses import asdict
from pathlib import Path

import numpy as np
import torch

from thinkpix import flow
from thinkpix.files import write_json

from . import ladder_task as task
from .ladder import Budget, fit, load_finished, run_dir
from .ladder_models import Arm, Solver, arm_named
from .maps import GOAL, HOLE, START, find, neighbours, shortest_path

SAMPLER_STEPS = 10
SCORE_STEPS = (0, 1, 2, 4, 8, 16)  # latent steps T at test time (0 = the base without RSR; loops start at 1)
# Validation maps (drawn with VALIDATION_SEED, never the test maps): the whole training range, 300 maps, so
# that the base rule (in-range accuracy >= 0.50) and the choice of T can be read without the test splits.
VALIDATION = (task.Split("in-range", task.TRAIN_SIZES, task.TRAIN_LENGTHS, 25),)


def path_layer(grids: list[np.ndarray], rng: np.random.Generator) -> torch.Tensor:
    """(B, 1, 8, 8): +1 on one random shortest path per map (start and goal included), -1 elsewhere."""
    x0 = -np.ones((len(grids), 1, task.CANVAS, task.CANVAS), dtype=np.float32)
    for i, grid in enumerate(grids):
        for cell in shortest_path(grid, rng):
            x0[i, 0][cell] = 1.0
    return torch.from_numpy(x0)


def is_shortest_path(drawn: np.ndarray, grid: np.ndarray) -> bool:
    """`drawn` (n, n) bool is exactly one shortest start -> goal path of `grid`."""
    start, goal, n = find(grid, START), find(grid, GOAL), grid.shape[0]
    if not (drawn[start] and drawn[goal]) or (drawn & (grid == HOLE)).any():
        return False
    if drawn.sum() != task.path_length(grid) + 1:
        return False
    seen, frontier = {start}, [start]
    while frontier:
        cell = frontier.pop()
        for nb in neighbours(cell, n):
            if drawn[nb] and nb not in seen:
                seen.add(nb)
                frontier.append(nb)
    return goal in seen


class CellDiffusion(torch.nn.Module):
    """velocity(x_t (B, 1, 8, 8), t (B,), maps (B, 5, 8, 8), T latent steps) -> (B, 1, 8, 8)."""

    def __init__(self, arm: Arm, seed: int, base: torch.nn.Module | None = None):
        super().__init__()
        self.solver = Solver(arm, seed, base, in_channels=task.KINDS + 1)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, maps: torch.Tensor, steps: int) -> torch.Tensor:
        return self.solver(torch.cat([maps, x_t], 1), steps, timestep=t * 1000)[:, None]  # (B, 1, 8, 8)

    @torch.no_grad()
    def sample(self, maps: torch.Tensor, seeds: list[int], steps: int, sampler_steps: int = SAMPLER_STEPS):
        noise = flow.seeded_noise((1, task.CANVAS, task.CANVAS), seeds)
        return flow.sample(lambda x, t: self.velocity(x, t, maps, steps), noise, sampler_steps)


def forward_flops(arm: Arm, steps: int) -> int:
    """FLOPs of one velocity call on one map at T = `steps` (torch's FLOP counter: matmuls and attention)."""
    from thinkpix.models.flops import count_flops

    model = CellDiffusion(arm, 0).eval()
    x, maps, t = torch.zeros(1, 1, task.CANVAS, task.CANVAS), torch.zeros(1, task.KINDS, task.CANVAS, task.CANVAS), torch.ones(1)
    with torch.no_grad():
        return count_flops(lambda: model.velocity(x, t, maps, steps))


def compute_matched_stack(arm: Arm, steps: int) -> Arm:
    """The plain stack whose forward FLOPs are nearest to `arm`'s at T = `steps`."""
    per_block = forward_flops(arm_named("stack-2"), 1) - forward_flops(arm_named("stack-1"), 1)
    rest = forward_flops(arm_named("stack-1"), 1) - per_block  # embeddings and the output head
    blocks = max(1, round((forward_flops(arm, steps) - rest) / per_block))
    return arm_named(f"stack-{blocks}")


def loss(model: CellDiffusion, grids: list[np.ndarray], depth: int, rng: np.random.Generator) -> torch.Tensor:
    """Rectified-flow loss on the cells inside each map; the path is a random shortest one (from `rng`),
    noise and timesteps from torch's global generator (which the checkpoints hold)."""
    maps, _, mask = task.encode(grids)
    x0 = path_layer(grids, rng)  # (B, 1, 8, 8)
    noise, t = torch.randn(x0.shape), flow.sample_timesteps(len(grids))
    return flow.flow_loss(lambda x, s: model.velocity(x, s, maps, depth), x0, noise, t, weight=mask[:, None].float())


def train(arm: Arm, seed: int, runs: Path, budget: Budget = Budget(), log=print, splits=task.SPLITS,
          precision: str = "fp32") -> Path:
    """Train a cell-diffusion model of `arm` into RUNS/diffusion-<arm>/seed<seed>/ (resumes), then score it
    (in fp32). `precision`: of the training forward (`ladder.fit`)."""
    folder = run_dir(runs, f"diffusion-{arm.name}", seed)
    if (folder / "scores.json").is_file():
        return folder
    torch.manual_seed(seed)
    model = CellDiffusion(arm, seed)
    record = fit(model, folder, seed, budget, lambda grids, depth, rng: loss(model, grids, depth, rng), log,
                 precision=precision)
    write_json(folder / "train.json", {"arm": asdict(arm), **record})
    write_json(folder / "scores.json", score(model, splits=splits, log=log))
    return folder


def trained(runs: Path, arm: Arm, seed: int) -> CellDiffusion:
    """The cell-diffusion model of a finished run (ThinkpixError naming the command that makes it, if none)."""
    return load_finished(CellDiffusion(arm, seed), run_dir(runs, f"diffusion-{arm.name}", seed),
                         f"train --task diffusion --arm {arm.name} --seed {seed}")


def validate(runs: Path, log=print) -> list[Path]:
    """Score every finished diffusion run without `validation.json` on the validation maps at T = 1 and 8:
    what choices (the base's recipe, the best T) read, never the test maps."""
    written = []
    for scores in sorted(Path(runs).glob("diffusion-*/seed*/scores.json")):
        folder = scores.parent
        if (folder / "validation.json").is_file():
            continue
        arm = arm_named(folder.parent.name.removeprefix("diffusion-"))
        model = trained(runs, arm, int(folder.name.removeprefix("seed")))
        write_json(folder / "validation.json", score(model, (1, 8), VALIDATION, task.VALIDATION_SEED, log))
        written.append(folder / "validation.json")
    return written


@torch.no_grad()
def score(model: CellDiffusion, steps=SCORE_STEPS, splits=task.SPLITS, seed: int = task.TEST_SEED, log=print) -> dict:
    """{split: {"lengths", "sizes", "T": {T: [0/1 per map]}}}: one sample per map (noise seed = map index).
    A plain stack (or LoRA) ignores T: it is sampled once and its row repeated; a loop has no T = 0."""
    kind = model.solver.arm.kind
    steps = [T for T in steps if T >= 1 or kind in ("rsr", "adapter")]
    model.eval()
    out = {}
    for split in splits:
        grids = task.split_maps(split, seed)
        maps, _, _ = task.encode(grids)
        rows = {}
        for T in steps:
            if kind in ("stack", "lora") and rows:
                rows[str(T)] = next(iter(rows.values()))
                continue
            x = model.sample(maps, list(range(len(grids))), T)[:, 0].numpy()  # (B, 8, 8)
            rows[str(T)] = [int(is_shortest_path(x[i, :g.shape[0], :g.shape[0]] > 0, g)) for i, g in enumerate(grids)]
        out[split.name] = {"lengths": [task.path_length(g) for g in grids], "sizes": [g.shape[0] for g in grids],
                           "T": rows}
        log(f"  {split.name}: " + " ".join(f"T{T}={np.mean(rows[str(T)]):.3f}" for T in steps))
    model.train()
    return out
