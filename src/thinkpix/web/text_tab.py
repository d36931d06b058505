"""Text to image: samples of the base and of the chosen adapter side by side (an RSR adapter at T = 0,
which is the base exactly, and at the chosen T), the evaluator's verdict and detections drawn on each,
and a strip over T = 0..8 for one seed."""

from __future__ import annotations

import time

import numpy as np

from ..errors import ThinkpixError
from . import drawing, inputs
from .typed_prompt import metadata_for
from .samples import detections_text, judged, sample, verdict_word
from .service import BASE, Service

SCALE = 8  # 32 px samples are shown 256 px wide


def _columns(service: Service, name: str, think: int) -> list[tuple[str, object, int | None]]:
    """(label, model, latent steps or None) for each column of the comparison."""
    variant = service.variant(name)
    if variant.rsr:
        return [("T=0 (base)", variant.model, 0), (f"T={think}", variant.model, think)]
    if think:
        raise ThinkpixError(f"latent steps T={think} need an RSR adapter; {name!r} has none "
                            "(set T to 0, or start the page with --adapter DIR)")
    if variant.method == "lora":
        return [("base", service.variants[BASE].model, None), (f"LoRA {name}", variant.model, None)]
    return [("base", variant.model, None)]


def _header(prompt: str, metadata: dict | None) -> str:
    if metadata is None:
        return (f"**{prompt}**: not one of the shapes world's templates (e.g. *a photo of a red circle and a "
                "blue square*), so there is no verdict; the detections are still drawn.")
    return f"**{prompt}**: GenEval task `{metadata['tag']}`; white boxes count, grey ones fall below the threshold."


def text_to_image(service: Service, prompt, seed, steps, guidance, name, think, n=2):
    """-> (gallery [(image, caption)], markdown report)."""
    prompt = inputs.prompt(prompt)
    seed, steps, guidance = inputs.sampler(seed, steps, guidance)
    think, n = inputs.think(think), inputs.images(n)
    metadata = metadata_for(prompt)
    gallery, lines = [], [_header(prompt, metadata), "", "| image | verdict | why | detections |", "|---|---|---|---|"]
    sampling = judging = 0.0
    for label, model, t in _columns(service, name, think):
        start = time.perf_counter()
        with service.lock:
            images = sample(model, [prompt] * n, seed, steps, guidance, t)  # (n, 32, 32, 3)
        sampling += time.perf_counter() - start
        for i, image in enumerate(images):
            start = time.perf_counter()
            j = judged(image, metadata)
            judging += time.perf_counter() - start
            caption = f"{label}, seed {seed + i}: {verdict_word(j['correct'])}"
            gallery.append((drawing.detections(image, j["details"], j["threshold"], SCALE, j["correct"]), caption))
            why = " / ".join(j["reason"].splitlines()) or ("all clauses hold" if j["correct"] else "")
            lines.append(f"| {label}, seed {seed + i} | {verdict_word(j['correct'])} | {why} | "
                         f"{detections_text(j['details'], j['threshold'])} |")
    lines += ["", f"Sampled in {sampling:.2f} s ({steps} sampler steps), judged in {judging:.2f} s."]
    return gallery, "\n".join(lines)


def strip(service: Service, prompt, seed, steps, guidance, name):
    """-> (gallery of T = 0..8 for image `seed`, markdown); needs an RSR adapter."""
    prompt = inputs.prompt(prompt)
    seed, steps, guidance = inputs.sampler(seed, steps, guidance)
    variant = service.variant(name)
    if not variant.rsr:
        return [], ("The strip over T = 0..8 needs an RSR adapter: choose one above (start the page with "
                    "`--adapter DIR`).")
    metadata = metadata_for(prompt)
    gallery, verdicts = [], []
    for t in range(inputs.MAX_THINK + 1):
        with service.lock:
            image = sample(variant.model, [prompt], seed, steps, guidance, t)[0]
        j = judged(image, metadata)
        verdicts.append(verdict_word(j["correct"]))
        gallery.append((drawing.detections(image, j["details"], j["threshold"], SCALE // 2, j["correct"]),
                        f"T={t}: {verdicts[-1]}"))
    changed = sum(int(not np.array_equal(a[0], b[0])) for a, b in zip(gallery, gallery[1:]))
    return gallery, (f"**{prompt}**, seed {seed}, T = 0..{inputs.MAX_THINK}: " + ", ".join(f"T={t} {v}" for t, v in
                     enumerate(verdicts)) + f". The picture changes between {changed} of {inputs.MAX_THINK} "
                     "consecutive pairs of T.")
