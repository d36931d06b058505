"""The class-conditional shapes world (the DiT track): one object per image, class = colour x shape, its
seeded samples and held-out set (`sets`), and its class accuracy from the exact detector (`evaluation`).
See docs/class_track.md."""

from .sets import CLASS_PARTS, CLASSES, HELDOUT_KEY, class_index, class_sample, class_weights, heldout_set

__all__ = ["CLASSES", "CLASS_PARTS", "HELDOUT_KEY", "class_index", "class_sample", "class_weights", "heldout_set"]
