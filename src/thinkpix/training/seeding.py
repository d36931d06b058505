"""Seed every random generator a run may touch from its config, before any model is built.

Model initialisation (torch's global generator), RSR experts and LoRA matrices (the same),
and any library that draws from Python's `random` or NumPy's global state then start from the
config's seed, so the same config, seed and thread count give bit-identical weights. Data,
noise and timesteps are drawn from per-sample generators (`thinkpix.training.data`) and do not
depend on this. What is drawn from the global generators during training (RSR's Gumbel noise and
random depth) continues from their state, which every checkpoint records (`rng_state`) and a resume
restores (`restore_rng`), so a resumed run draws what the uninterrupted one drew.
"""

from __future__ import annotations

import random

import numpy as np
import torch


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def rng_state(device: torch.device | None = None) -> tuple[dict[str, torch.Tensor], dict]:
    """The global generators' states now -> (tensors, JSON scalars), for a checkpoint.

    Runs draw from them after the model is built: RSR's Gumbel noise and random depth (torch's
    generator, CUDA's on a GPU), and any library using Python's `random` or NumPy's global state. A
    checkpoint that did not hold them would resume with the draws of step 0, not those of its step."""
    version, mt, gauss = random.getstate()
    name, key, pos, has_gauss, cached = np.random.get_state()
    tensors = {"torch_cpu": torch.get_rng_state(),  # (5056,) uint8
               "python_mt": torch.tensor(mt, dtype=torch.int64),  # (625,) Mersenne Twister words
               "numpy_key": torch.from_numpy(key.astype(np.int64))}  # (624,)
    if device is not None and device.type == "cuda":
        tensors["torch_cuda"] = torch.cuda.get_rng_state(device)
    scalars = {"python": [version, gauss], "numpy": [name, int(pos), int(has_gauss), float(cached)]}
    return tensors, scalars


def restore_rng(tensors: dict[str, torch.Tensor], scalars: dict, device: torch.device | None = None) -> None:
    """Put the generators back into the state `rng_state` recorded."""
    torch.set_rng_state(tensors["torch_cpu"])
    if "torch_cuda" in tensors and device is not None and device.type == "cuda":
        torch.cuda.set_rng_state(tensors["torch_cuda"], device)
    version, gauss = scalars["python"]
    random.setstate((version, tuple(int(x) for x in tensors["python_mt"].tolist()), gauss))
    name, pos, has_gauss, cached = scalars["numpy"]
    np.random.set_state((name, tensors["numpy_key"].numpy().astype(np.uint32), pos, has_gauss, cached))
