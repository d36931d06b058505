"""Sampling the lake model: solutions for maps, per-sample seeds, the GenEval-style folder layout.

Image k of map i in a folder run uses noise seed `seed + i * n + k`; a sample depends only on its own
seed and map, not on its batch-mates.
"""

from __future__ import annotations

import numpy as np
import torch

from ...errors import ThinkpixError
from ...models.sampler import integrate
from .model import LakeModel, map_inputs



def load_lake(path, adapter=None, latent_steps: int | None = None, **old) -> LakeModel:
    """A lake model folder, with its own RSR (trained in) or an `adapter` folder loaded; `latent_steps`
    sets RSR's latent steps (0 = the network without RSR). (`think_steps=`: deprecated.)"""
    from ...integrations.methods import prepare_for_sampling, renamed_steps

    return prepare_for_sampling(LakeModel.load(path), path, adapter, renamed_steps(latent_steps, old))


@torch.no_grad()
def generate_lake_images(model: LakeModel, grids: list[np.ndarray], seed: int = 0, steps: int = 20,
                         method: str = "euler", batch_size: int = 64, callback=None,
                         ks: list[int] | None = None) -> torch.Tensor:
    """Maps (N_i, N_i) -> (len, H, W, 3) uint8 solutions; item i starts from the noise of seed + i.
    A position-target model needs `ks` (moves after which to draw the agent), one per map."""
    canvas = model.meta["canvas"]
    if (model.target == "position") != (ks is not None):
        raise ThinkpixError(f"a {model.target}-target lake model " + ("needs" if ks is None else "takes no") + " k")
    items = list(zip(grids, ks)) if ks is not None else [(g, None) for g in grids]

    def velocity_for(chunk, device):
        gs, kk = [g for g, _ in chunk], [k for _, k in chunk]
        conditions = [v.to(device) for v in map_inputs(gs, canvas, kk if ks is not None else None)]
        return lambda x, t: model.velocity(x, t, *conditions)  # map (b, 3, H, W), kinds (b, 64)[, ks (b,)]

    x0 = integrate(model, items, seed, batch_size, velocity_for, steps, method, 1.0, callback)
    return model.x0_to_images(x0)


def write_lake_folder(model: LakeModel, metas: list[dict], out, images_per_map: int = 1, seed: int = 0,
                      steps: int = 20, batch_size: int = 64, progress: bool = True) -> float:
    """Solutions for metadata lines into out/<00000>/metadata.jsonl + samples/<0000>.png, with the
    shapes sampler's folder writer (complete map folders are kept, so a killed run resumes with the
    images of an uninterrupted one; metadata written last, atomically). Image k of map i uses noise
    seed `seed + i * n + k`. Returns the sampling seconds (network time, without PNG writing)."""
    import time

    from ...sampling import write_geneval_folder
    from .sets import map_of

    n = images_per_map
    grids = [map_of(m) for m in metas]
    targets = {m.get("target", "path") for m in metas}
    if targets != {model.target}:
        raise ThinkpixError(f"the maps ask for target(s) {sorted(targets)}, the model draws {model.target!r}")
    seconds = 0.0

    def generate(chunk: range, first_seed: int) -> torch.Tensor:
        nonlocal seconds
        maps = [grids[i] for i in chunk for _ in range(n)]
        ks = [metas[i]["k"] for i in chunk for _ in range(n)] if model.target == "position" else None
        t0 = time.perf_counter()
        images = generate_lake_images(model, maps, seed=first_seed, steps=steps, batch_size=len(maps), ks=ks)
        seconds += time.perf_counter() - t0
        return images  # (len(chunk) * n, H, W, 3) uint8

    write_geneval_folder(None, metas, out, n, seed, batch_size, progress, generate=generate)
    return seconds
