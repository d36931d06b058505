"""Every word the shapes world's prompts use (for the small learned word encoder)."""

from __future__ import annotations

from .geometry import RELATIONS
from .palette import COLOR_NAMES
from .prompts import NUMBER_WORDS, plural
from .templates import SHAPES

FUNCTION_WORDS = ("a", "an", "and", "photo", "of", "the", "to", "is", "are", "there", "with")


def world_vocabulary() -> list[str]:
    words = set(FUNCTION_WORDS) | set(COLOR_NAMES) | set(NUMBER_WORDS.values())
    words |= set(SHAPES) | {plural(s) for s in SHAPES}
    words |= {w for rel in RELATIONS for w in rel.split()}
    return sorted(words)
