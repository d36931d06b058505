"""Training on the lake world with the project's trainer and flow objective.

The config, `LakeTrainConfig` (the usual `TrainConfig` plus a `lake` section), is read by
`worlds.lake.config.lake_config`. Rectified flow on (map, solution) pairs:
- `LakeFlowObjective`: the lake MMDiT from scratch; with `lake.rsr` set, RSR is attached from the start
  with the base weights trainable (random depth and input re-injection as the spec says);
- an RSR or LoRA adapter on a frozen trained lake model (`finetune.*`): the shared `FinetuneObjective`
  with a `LakeFlowObjective` of that model as its part (`build_lake_objective`).
"""

from __future__ import annotations

import numpy as np
import torch

from ...training.data import sample_seed
from ...training.objectives import FinetuneObjective, FlowObjective
from .config import LakeTrainConfig
from .maps import random_map
from .model import LakeModel, map_inputs
from .render import render
from .sampling import generate_lake_images, load_lake
from .sets import parse_range, training_pair


def lake_batch(cfg: LakeTrainConfig, step: int, indices: range):
    """-> solutions (B, H, W, 3) uint8, seeds (B,), the velocity's conditioning: map channels
    (B, 3, H, W), cell kinds (B, 64) [, ks (B,) for the position target]. Sample j of step s comes
    from its own seed (seed, s, j), as in `training.data`."""
    sizes, lengths = parse_range(cfg.lake.sizes), parse_range(cfg.lake.lengths)
    grids, solutions, seeds, ks = [], [], [], []
    for j in indices:
        s = sample_seed(cfg.seed, step, j)
        grid, solution, k = training_pair(np.random.default_rng(s), sizes, lengths, cfg.lake.random_path,
                                          cfg.lake.target)
        grids.append(grid)
        solutions.append(render(solution, cfg.model.canvas))
        seeds.append(s)
        ks.append(k)
    conditions = map_inputs(grids, cfg.model.canvas, ks if cfg.lake.target == "position" else None)
    return torch.from_numpy(np.stack(solutions)), seeds, conditions


def preview_maps(cfg: LakeTrainConfig, n: int) -> tuple[list[np.ndarray], list[int] | None]:
    """n fixed held-out maps cycling over the training sizes and lengths (for sample grids), and
    their ks (position target: k = L // 2; path target: None)."""
    sizes, lengths = parse_range(cfg.lake.sizes), parse_range(cfg.lake.lengths)
    rng = np.random.default_rng(12345)
    pairs = [(s, L) for L in lengths for s in sizes if L <= 2 * s and (L >= 2 or cfg.lake.target == "path")]
    pairs = [pairs[i % len(pairs)] for i in range(n)]
    return [random_map(rng, *p) for p in pairs], [L // 2 for _, L in pairs] if cfg.lake.target == "position" else None


class LakeFlowObjective(FlowObjective):
    """Rectified flow on (map, solution) pairs; the map is the velocity's conditioning."""

    def __init__(self, cfg: LakeTrainConfig, model: LakeModel | None = None):
        super().__init__(cfg, model or LakeModel.create(cfg.model.size, cfg.lake.depth, cfg.model.canvas,
                                                        cfg.lake.target, cfg.lake.patch_context))
        if cfg.lake.rsr and model is None:
            self.train_recursion_in(cfg.lake.rsr)

    def batch(self, step: int, indices: range):
        return lake_batch(self.cfg, step, indices)

    def loss_weight(self, x0: torch.Tensor, conditions) -> torch.Tensor | None:
        """`lake.path_weight` on the pixels where the solution x0 (B, 3, H, W) differs from the rendered map
        (conditions[0], (B, 3, H, W), both in [-1, 1]), 1 elsewhere: (B, 1, H, W), or None at weight 1."""
        if self.cfg.lake.path_weight == 1.0:
            return None
        differs = (x0 - conditions[0]).abs().amax(1, keepdim=True) > 1e-3  # (B, 1, H, W)
        return 1.0 + (self.cfg.lake.path_weight - 1.0) * differs.float()

    @torch.no_grad()
    def preview(self, step: int, n: int = 16) -> torch.Tensor:
        """Solutions for fixed maps: (n, H, W, 3) uint8."""
        grids, ks = preview_maps(self.cfg, n)
        return generate_lake_images(self.model, grids, seed=0, steps=20, ks=ks)


def build_lake_objective(cfg: LakeTrainConfig):
    """A lake model from scratch (`LakeFlowObjective`), or with `finetune.*` an RSR or LoRA adapter on a frozen
    trained lake model (finetune.base: a lake model folder): the one `FinetuneObjective` with that model's
    rectified flow as its part."""
    if cfg.finetune.method == "none":
        return LakeFlowObjective(cfg)
    base = load_lake(cfg.finetune.base)
    base.requires_grad_(False)
    cfg.model.canvas = base.meta["canvas"]
    cfg.lake.target = base.target  # the data follows the base model's target
    return FinetuneObjective(cfg, LakeFlowObjective(cfg, base))
