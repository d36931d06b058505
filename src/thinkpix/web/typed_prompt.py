"""A free-typed prompt -> GenEval metadata, when the prompt is one of the shapes world's templates.

The evaluator judges an image against metadata (`worlds.shapes.prompts.random_metadata` writes it for
GenEval's six templates); in the page a person types the prompt, so this reads the templates
back: 'a photo of a red circle', 'a photo of three squares', 'a photo of a circle left of a
square', 'a photo of a red circle and a blue triangle'. Anything else gets no metadata (the page
then shows the detections without a verdict)."""

from __future__ import annotations

import re

from ..worlds.shapes.geometry import RELATIONS
from ..worlds.shapes.palette import COLOR_NAMES
from ..worlds.shapes.prompts import NUMBER_WORDS, plural
from ..worlds.shapes.templates import SHAPES

_PREFIX = "a photo of "
_PLURALS = {plural(s): s for s in SHAPES}
_NUMBERS = {w: n for n, w in NUMBER_WORDS.items() if n > 1}


def _object(phrase: str) -> tuple[str, str | None] | None:
    """'a red circle' / 'an orange square' / 'a circle' -> (shape, colour or None)."""
    words = phrase.split()
    if len(words) not in (2, 3) or words[0] not in ("a", "an"):
        return None
    *colour, shape = words[1:]
    if shape not in SHAPES or (colour and colour[0] not in COLOR_NAMES):
        return None
    return shape, (colour[0] if colour else None)


def _include(shape: str, colour: str | None, count: int = 1) -> dict:
    return {"class": shape, "count": count} | ({"color": colour} if colour else {})


def metadata_for(prompt: str) -> dict | None:
    """GenEval metadata for a templated prompt (case and spacing ignored), None for any other text."""
    text = " ".join(prompt.lower().split())
    if not text.startswith(_PREFIX):
        return None
    body = text[len(_PREFIX):]
    words = body.split()
    if len(words) == 2 and words[0] in _NUMBERS and words[1] in _PLURALS:  # counting
        n, shape = _NUMBERS[words[0]], _PLURALS[words[1]]
        return {"tag": "counting", "include": [{"class": shape, "count": n}],
                "exclude": [{"class": shape, "count": n + 1}], "prompt": prompt}
    for rel in RELATIONS:  # position: 'a circle left of a square'
        parts = re.split(rf" {rel} ", body)
        if len(parts) == 2:
            a, b = _object(parts[0]), _object(parts[1])
            if a and b and a[1] is None and b[1] is None and a[0] != b[0]:
                return {"tag": "position", "include": [_include(b[0], None), {**_include(a[0], None),
                        "position": [rel, 0]}], "prompt": prompt}
            return None
    objects = [_object(p) for p in body.split(" and ")]
    if not objects or len(objects) > 2 or any(o is None for o in objects):
        return None
    if len(objects) == 2 and objects[0][0] == objects[1][0]:
        return None  # 'a circle and a circle' is no GenEval template
    coloured = [o[1] is not None for o in objects]
    if len(objects) == 1:
        tag = "colors" if coloured[0] else "single_object"
    elif all(coloured):
        tag = "color_attr"
    elif not any(coloured):
        tag = "two_object"
    else:
        return None
    return {"tag": tag, "include": [_include(*o) for o in objects], "prompt": prompt}
