"""Class DiT: images of one class of the class-conditional model, judged by the class track's rule
(exactly one object, of that colour and shape), at latent steps T when the DiT has an RSR adapter."""

from __future__ import annotations

from ..errors import ThinkpixError
from . import drawing, inputs
from .samples import judged, sample
from .service import Service

SCALE = 8


def class_images(service: Service, name, seed, steps, guidance, think, n=4):
    """-> (gallery [(image, caption)], markdown)."""
    from ..worlds.classes.evaluation import judge

    if service.dit is None:
        raise ThinkpixError("no class-conditional model loaded (start the page with --class_model DIR)")
    name = inputs.text(name if name is not None else "", "class", allow_empty=False).strip()
    seed, steps, guidance = inputs.sampler(seed, steps, guidance)
    think, n = inputs.think(think), inputs.images(n)
    label = service.dit.label_of(name)  # a ThinkpixError listing the classes if unknown
    if think and not service.dit_rsr:
        raise ThinkpixError(f"latent steps T={think} need an RSR adapter on the class DiT (start the page with "
                            "--class_adapter DIR); set T to 0")
    with service.lock:
        images = sample(service.dit, [label] * n, seed, steps, guidance, think if service.dit_rsr else None)
    gallery, lines = [], [f"**{service.dit.classes[label]}**, T={think}", "", "| image | verdict | why |", "|---|---|---|"]
    for i, image in enumerate(images):
        ok, reason = judge(image, label)
        j = judged(image, None)
        gallery.append((drawing.detections(image, j["details"], j["threshold"], SCALE, ok),
                        f"seed {seed + i}: {'correct' if ok else 'wrong'}"))
        lines.append(f"| seed {seed + i} | {'correct' if ok else 'wrong'} | {reason} |")
    return gallery, "\n".join(lines)
