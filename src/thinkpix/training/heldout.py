"""A held-out validation loss for choosing settings without touching `data/eval/`.

The set is fixed: n samples drawn from their own seeds (a namespace no training run uses), each with
a fixed noise seed and a fixed timestep. Text-to-image samples come from the six compositional
GenEval tasks of the shapes world, with every prompt that appears in `data/eval/` dropped; class
samples from the class world. Timesteps are the n stratified quantiles of the training
distribution (logit-normal), assigned to samples by a fixed permutation, so the estimate has little
variance. The loss is the mean of per-sample rectified-flow losses, with the model in eval mode (no
dropout, no Gumbel noise): the same for every run and, up to float rounding, every batch size.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .. import flow
from ..errors import ThinkpixError
from ..worlds.classes.sets import class_sample
from ..worlds.shapes.prompts import TASKS
from ..worlds.shapes.stream import TrainingStream
from .data import sample_seed

VALIDATION_SEED = 0x7A11DA7E  # its own seed space: training draws SeedSequence([cfg.seed, step, j])
EVAL_PROMPTS = "eval/geneval.jsonl"  # the committed evaluation set, shipped with the package (thinkpix.resources)


@dataclass
class ValidationSet:
    conditions: list  # prompts (str) or class labels (int), one per sample
    images: torch.Tensor  # (n, H, W, 3) uint8
    noise_seeds: list[int]  # (n,) noise of sample i: flow.seeded_noise(shape, [noise_seeds[i]])
    timesteps: torch.Tensor  # (n,) fixed t in (0, 1)

    def __len__(self) -> int:
        return len(self.conditions)


def eval_prompts(path: Path | None = None) -> set[str]:
    """Every prompt of the committed evaluation set (or of the prompt file `path`)."""
    import json

    from ..resources import resource

    path = Path(path) if path is not None else resource(EVAL_PROMPTS)
    return {json.loads(line)["prompt"] for line in path.read_text().splitlines() if line.strip()}


def stratified_timesteps(n: int, seed: int = VALIDATION_SEED) -> torch.Tensor:
    """(n,) the logit-normal quantiles at (k + 0.5) / n, in a fixed random order."""
    u = (torch.arange(n, dtype=torch.float64) + 0.5) / n
    t = torch.sigmoid(math.sqrt(2.0) * torch.special.erfinv(2 * u - 1)).float()  # (n,) logit-normal(0, 1) quantiles
    order = torch.from_numpy(np.random.default_rng(seed).permutation(n))
    return t[order]


def text_validation_set(n: int, canvas: int, exclude: set[str] | None = None) -> ValidationSet:
    """n compositional (prompt, image) pairs whose prompts are not in `exclude` (default: data/eval's)."""
    exclude = eval_prompts() if exclude is None else exclude
    mix = {task: 1.0 for task in TASKS}
    prompts, images, seeds = [], [], []
    for k in range(200 * n):
        s = sample_seed(VALIDATION_SEED, 0, k)
        prompt, image = TrainingStream(seed=s, canvas=canvas, mix=mix).sample()
        if prompt in exclude:
            continue
        prompts.append(prompt)
        images.append(image)
        seeds.append(s)
        if len(prompts) == n:
            return ValidationSet(prompts, torch.from_numpy(np.stack(images)), seeds, stratified_timesteps(n))
    raise ThinkpixError(f"could not draw {n} validation prompts outside the evaluation set")


def class_validation_set(n: int, canvas: int) -> ValidationSet:
    labels, images, seeds = [], [], []
    for k in range(n):
        s = sample_seed(VALIDATION_SEED, 0, k)
        label, image = class_sample(np.random.default_rng(s), canvas)
        labels.append(int(label))
        images.append(image)
        seeds.append(s)
    return ValidationSet(labels, torch.from_numpy(np.stack(images)), seeds, stratified_timesteps(n))


def validation_set_for(model, n: int) -> ValidationSet:
    """The validation set of `model`'s track (text-to-image or class-conditional)."""
    canvas = model.meta["canvas"] if hasattr(model, "meta") else 32
    return class_validation_set(n, canvas) if hasattr(model, "null_label") else text_validation_set(n, canvas)


def velocity_fn(model, conditions: list):
    """The model's velocity for these samples' conditions: (x_t, t) -> v."""
    if hasattr(model, "null_label"):  # class-conditional
        labels = torch.tensor(conditions, dtype=torch.long)
        return lambda x_t, t: model.velocity(x_t, t, labels.to(x_t.device))
    tokens, pooled = model.encode_text(list(conditions))
    return lambda x_t, t: model.velocity(x_t, t, tokens.to(x_t.device), pooled.to(x_t.device))


def model_inputs(model, vset: ValidationSet, index: slice):
    """(x0 (b, C, h, w), noise (b, C, h, w), t (b,), velocity) of samples `index` of the set."""
    device = next(model.transformer.parameters()).device
    x0 = model.images_to_x0(vset.images[index]).to(device)
    noise = flow.seeded_noise(tuple(x0.shape[1:]), vset.noise_seeds[index]).to(device)
    return x0, noise, vset.timesteps[index].to(device), velocity_fn(model, vset.conditions[index])


@torch.no_grad()
def validation_loss(model, vset: ValidationSet, batch_size: int = 32) -> float:
    """Mean over the set of each sample's rectified-flow loss (model in eval mode while it runs)."""
    was_training = model.transformer.training
    model.eval()
    total = 0.0
    try:
        for start in range(0, len(vset), batch_size):
            x0, noise, t, velocity = model_inputs(model, vset, slice(start, start + batch_size))
            pred = velocity(flow.interpolate(x0, noise, t), t)  # (b, C, h, w)
            per_sample = (pred.float() - (noise - x0).float()).pow(2).flatten(1).mean(1)  # (b,)
            total += float(per_sample.double().sum())
    finally:
        model.train(was_training)
    return total / len(vset)
