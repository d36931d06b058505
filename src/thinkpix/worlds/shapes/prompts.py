"""GenEval-style prompts and metadata for the shapes world (GenEval's templates and schema).

Metadata schema (one JSON object per line): `tag`, `prompt`, `include` (items with `class`,
`count`, optional `color`, optional `position: [relation, group index]`), optional `exclude`.
"""

from __future__ import annotations

import numpy as np

from .geometry import RELATIONS
from .palette import COLOR_NAMES
from .templates import SHAPES

TASKS: tuple[str, ...] = ("single_object", "two_object", "counting", "colors", "position", "color_attr")
NUMBER_WORDS = {1: "one", 2: "two", 3: "three", 4: "four", 5: "five", 6: "six"}
COUNT_RANGE = (2, 4)


def with_article(phrase: str) -> str:
    """'a circle', 'an orange square' (GenEval: 'an' before a vowel sound)."""
    return ("an " if phrase[0] in "aeiou" else "a ") + phrase


def plural(noun: str) -> str:
    return noun + "es" if noun.endswith(("s", "x", "ch", "sh")) else noun + "s"


def _pick(rng: np.random.Generator, options, k: int = 1, distinct: bool = True) -> list:
    idx = rng.choice(len(options), size=k, replace=not distinct)
    return [options[int(i)] for i in np.atleast_1d(idx)]


def random_metadata(task: str, rng: np.random.Generator) -> dict:
    """One GenEval metadata line for `task`, with GenEval's template for its prompt."""
    if task == "single_object":
        (a,) = _pick(rng, SHAPES)
        return {"tag": task, "include": [{"class": a, "count": 1}], "prompt": f"a photo of {with_article(a)}"}
    if task == "two_object":
        a, b = _pick(rng, SHAPES, 2)
        return {
            "tag": task,
            "include": [{"class": a, "count": 1}, {"class": b, "count": 1}],
            "prompt": f"a photo of {with_article(a)} and {with_article(b)}",
        }
    if task == "counting":
        (a,) = _pick(rng, SHAPES)
        n = int(rng.integers(COUNT_RANGE[0], COUNT_RANGE[1] + 1))
        return {
            "tag": task,
            "include": [{"class": a, "count": n}],
            "exclude": [{"class": a, "count": n + 1}],
            "prompt": f"a photo of {NUMBER_WORDS[n]} {plural(a)}",
        }
    if task == "colors":
        (a,) = _pick(rng, SHAPES)
        (c,) = _pick(rng, COLOR_NAMES)
        return {
            "tag": task,
            "include": [{"class": a, "count": 1, "color": c}],
            "prompt": f"a photo of {with_article(c + ' ' + a)}",
        }
    if task == "position":
        a, b = _pick(rng, SHAPES, 2)
        (rel,) = _pick(rng, RELATIONS)
        return {
            "tag": task,
            "include": [{"class": b, "count": 1}, {"class": a, "count": 1, "position": [rel, 0]}],
            "prompt": f"a photo of {with_article(a)} {rel} {with_article(b)}",
        }
    if task == "color_attr":
        a, b = _pick(rng, SHAPES, 2)
        c1, c2 = _pick(rng, COLOR_NAMES, 2)
        return {
            "tag": task,
            "include": [{"class": a, "count": 1, "color": c1}, {"class": b, "count": 1, "color": c2}],
            "prompt": f"a photo of {with_article(c1 + ' ' + a)} and {with_article(c2 + ' ' + b)}",
        }
    raise ValueError(f"unknown task {task!r}; known: {', '.join(TASKS)}")


def geneval_set(per_task: int, seed: int) -> list[dict]:
    """`per_task` metadata lines for each of the six tasks. Small tasks (e.g. single_object has
    only len(SHAPES) distinct prompts) cycle through their prompts, so texts repeat there."""
    rng = np.random.default_rng(seed)
    out = []
    for task in TASKS:
        seen: dict[str, dict] = {}
        for _ in range(per_task * 50):  # collect distinct prompts first
            meta = random_metadata(task, rng)
            seen.setdefault(meta["prompt"], meta)
            if len(seen) >= per_task:
                break
        distinct = sorted(seen.values(), key=lambda m: m["prompt"])
        order = rng.permutation(len(distinct))
        out += [distinct[int(order[i % len(distinct)])] for i in range(per_task)]
    return out


def describe_objects(groups: list[tuple[int, str, str]]) -> str:
    """[(count, colour, shape), ...] -> 'a photo of two red circles and a blue square'."""
    parts = [
        with_article(f"{color} {shape}") if n == 1 else f"{NUMBER_WORDS[n]} {color} {plural(shape)}"
        for n, color, shape in groups
    ]
    listed = parts[0] if len(parts) == 1 else ", ".join(parts[:-1]) + " and " + parts[-1]
    return f"a photo of {listed}"
