"""Routing: the expert each image token goes to, at every RSR layer and latent step (columns), at a few
diffusion steps (rows), traced while one image is drawn; tinted over the finished image."""

from __future__ import annotations

import numpy as np

from ..errors import ThinkpixError
from . import drawing, inputs
from .samples import sample
from .service import Service

SCALE = 4  # 32 px samples -> 128 px tiles


def shown_steps(steps: int) -> list[int]:
    """Five diffusion steps from the first (pure noise) to the last."""
    return sorted({round(i * (steps - 1) / 4) for i in range(5)})


def routing(service: Service, prompt, seed, steps, guidance, name, think):
    """-> (routing picture (H, W, 3), markdown)."""
    from ..integrations.attach import start_trace, stop_trace

    prompt = inputs.prompt(prompt)
    seed, steps, guidance = inputs.sampler(seed, steps, guidance)
    think = inputs.think(think)
    variant = service.variant(name)
    if not variant.rsr:
        raise ThinkpixError(f"{name!r} has no RSR routing to show: choose an RSR adapter (start the page with "
                            "--adapter DIR, an adapter from `thinkpix finetune`)")
    if think < 1:
        raise ThinkpixError("routing needs at least one latent step (T >= 1)")
    transformer = variant.model.transformer
    with service.lock:
        start_trace(transformer)
        try:
            image = sample(variant.model, [prompt], seed, steps, guidance, think)[0]  # (32, 32, 3)
        finally:
            trace = stop_trace(transformer)  # one RSROutput per layer per forward, in forward order
    layers = list(dict.fromkeys(o.layer for o in trace))
    experts = transformer.rsr.config.num_experts
    by_layer = [[o for o in trace if o.layer == layer] for layer in layers]  # per layer: one RSROutput per diffusion step
    rows, labels, usage = [], [], np.zeros((think, experts))
    for j in shown_steps(len(by_layer[0])):
        row = []
        for forwards in by_layer:
            chosen = forwards[j].routing[:, 0, :, 0].long().numpy()  # routing (T, B, N, k), batch 0 = conditional
            row += [drawing.routing_map(chosen[t], image, SCALE) for t in range(think)]  # T tiles (H*s, W*s, 3)
            for t in range(think):
                usage[t] += np.bincount(chosen[t], minlength=experts)
        rows.append(row)
        labels.append(f"diffusion step {j + 1}/{len(by_layer[0])}")
    columns = [f"block {layer.rsplit('.', 1)[-1]}, t={t + 1}" for layer in layers for t in range(think)]
    picture = drawing.labelled_grid(rows, labels, columns, label_width=150)
    share = usage / usage.sum(1, keepdims=True)
    text = (f"**{prompt}**, seed {seed}, T={think}: {len(layers)} RSR layer(s), {experts} experts "
            f"({drawing.legend(experts)}), {rows[0][0].shape[0] // SCALE}px image, "
            f"{trace[0].routing.shape[2]} tokens. Share of tokens per expert at each latent step (rows shown): "
            + "; ".join(f"step {t + 1}: " + "/".join(f"{s:.2f}" for s in share[t]) for t in range(think)))
    return picture, text
