"""Seed every random generator a run may touch from its config, before any model is built.

Model initialisation (torch's global generator), RSR experts and LoRA matrices (the same),
and any library that draws from Python's `random` or NumPy's global state then start from the
config's seed, so the same config, seed and thread count give bit-identical weights. Data,
noise and timesteps are drawn from per-sample generators (`thinkpix.training.data`) and do not
depend on this.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)
