"""Deterministic training batches from the shapes world.

Global sample j of step s is drawn from its own generator seeded by (seed, s, j), so a batch
is the same whether it is made by one process or split across data-parallel ranks, and a run
resumed at step s sees exactly the data an uninterrupted run would.

With `pool` = N > 0 the data is a fixed set of N samples (pool item k drawn from its own seed),
and global sample j of step s is item `sample_seed(seed, s, j) % N`: a small fine-tuning set (the
paper's 1,000 pairs) seen for many epochs, still independent of how a batch is split. Noise,
timestep and caption dropout follow the draw's seed, so they differ between epochs."""

from __future__ import annotations

import functools

import numpy as np
import torch

from ..errors import ThinkpixError
from ..worlds.classes.sets import class_sample, class_weights
from ..worlds.shapes.stream import DEFAULT_MIX, TrainingStream, parse_mix  # noqa: F401 (parse_mix: re-exported)


def sample_seed(seed: int, step: int, index: int) -> int:
    """A 63-bit seed for global sample `index` of `step`."""
    return int(np.random.SeedSequence([seed, step, index]).generate_state(2, dtype=np.uint32).view(np.uint64)[0] >> 1)


POOL_STEP = 2**32 - 1  # the pseudo-step whose samples form a fixed pool (training never reaches it)


def draw_seeds(seed: int, step: int, j: int, pool: int) -> tuple[int, int]:
    """(seed of the content of global sample j of `step`, seed of this draw). Without a pool both are
    the sample's own seed; with one the content is pool item `draw % pool`."""
    draw = sample_seed(seed, step, j)
    return (sample_seed(seed, POOL_STEP, draw % pool) if pool else draw), draw


@functools.lru_cache(maxsize=8192)
def _pool_item(content: int, canvas: int, mix: str) -> tuple[str, np.ndarray]:
    prompt, image = TrainingStream(seed=content, canvas=canvas, mix=parse_mix(mix)).sample()
    image.setflags(write=False)
    return prompt, image


def world_batch(seed: int, step: int, indices: range, canvas: int, cond_dropout: float, mix: str = "",
                pool: int = 0):
    """-> prompts (list[str], '' where dropped for CFG), images (B, H, W, 3) uint8, seeds (B,).
    `mix` weights the stream's kinds (six GenEval tasks + 'free'), e.g. 'position=2,free=1'."""
    prompts, images, seeds = [], [], []
    weights = parse_mix(mix)
    if weights and set(weights) - set(DEFAULT_MIX):
        raise ThinkpixError(f"text-stream mix: unknown kind(s) {sorted(set(weights) - set(DEFAULT_MIX))}; "
                            f"known: {list(DEFAULT_MIX)}")
    for j in indices:
        content, s = draw_seeds(seed, step, j, pool)
        if pool:  # a pool item is rendered once per process
            prompt, image = _pool_item(content, canvas, mix)
            dropped = np.random.default_rng(s).random() < cond_dropout
        else:
            stream = TrainingStream(seed=content, canvas=canvas, mix=weights)
            prompt, image = stream.sample()
            dropped = stream.rng.random() < cond_dropout
        if dropped:
            prompt = ""
        prompts.append(prompt)
        images.append(image)
        seeds.append(s)
    return prompts, torch.from_numpy(np.stack(images)), seeds


def class_batch(seed: int, step: int, indices: range, canvas: int, cond_dropout: float, mix: str = "",
                pool: int = 0):
    """Class-conditional batch -> labels (B,) int64, images (B, H, W, 3) uint8, dropped (B,) bool
    (labels to replace by the null class for CFG, decided once per sample), seeds (B,).
    `mix` weights colours and shapes, e.g. 'circle=3' (`worlds.classes.sets.class_weights`)."""
    weights = class_weights(parse_mix(mix))
    labels, images, dropped, seeds = [], [], [], []
    for j in indices:
        content, s = draw_seeds(seed, step, j, pool)
        rng = np.random.default_rng(content)
        label, image = class_sample(rng, canvas, weights=weights)
        labels.append(label)
        images.append(image)
        dropped.append(bool((np.random.default_rng(s) if pool else rng).random() < cond_dropout))
        seeds.append(s)
    return torch.tensor(labels), torch.from_numpy(np.stack(images)), torch.tensor(dropped), seeds
