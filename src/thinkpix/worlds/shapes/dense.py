"""Dense prompts: scenes of 3 to 5 objects described in one or two sentences, each with a
DPG-style list of questions whose dependencies form a graph (attribute and relation questions
depend on the entity questions of their objects).

A dense metadata line reuses GenEval's `include` schema for the scene (so
`scene_from_metadata` renders its ground truth) and adds `questions`:

    {"tag": "dense", "prompt": "Two red circles, a blue square and a yellow triangle.
     The blue square is left of the yellow triangle.",
     "include": [{"class": "circle", "count": 2, "color": "red"},
                 {"class": "triangle", "count": 1, "color": "yellow"},
                 {"class": "square", "count": 1, "color": "blue", "position": ["left of", 1]}],
     "questions": [{"id": 1, "kind": "entity", "text": "Is there a circle?", "objects": [0],
                    "dependencies": []},
                   {"id": 2, "kind": "count", "text": "Are there exactly two circles?",
                    "objects": [0], "dependencies": [1]}, ...]}

`objects` are indices into `include` (one group = one shape class, all of one colour).
Every group has its own shape class, so "the circle(s)" is never ambiguous.
"""

from __future__ import annotations

import numpy as np

from .geometry import RELATIONS
from .palette import COLOR_NAMES
from .prompts import NUMBER_WORDS, plural, with_article
from .scene import DEFAULT_CANVAS, SceneObject, scene_from_metadata
from .templates import SHAPES

DENSE_TAG = "dense"
QUESTION_KINDS: tuple[str, ...] = ("entity", "count", "colour", "relation")
OBJECT_RANGE = (3, 5)  # objects per scene
MAX_GROUP = 3  # objects per group
MAX_RELATED = 3  # a relation joins two groups of at most 3 objects together (1-1 or 1-2)
RELATION_PROB = 0.8


def _phrase(item: dict) -> str:
    n, color, shape = item["count"], item["color"], item["class"]
    return with_article(f"{color} {shape}") if n == 1 else f"{NUMBER_WORDS[n]} {color} {plural(shape)}"


def _the(item: dict) -> str:
    """'the blue square' / 'the two red circles'."""
    n, color, shape = item["count"], item["color"], item["class"]
    return f"the {color} {shape}" if n == 1 else f"the {NUMBER_WORDS[n]} {color} {plural(shape)}"


def _questions(include: list[dict]) -> list[dict]:
    """DPG-style questions: entity per group, then count/colour per group, then the relation."""
    questions: list[dict] = []

    def add(kind: str, text: str, objects: list[int], deps: list[int]) -> int:
        questions.append({"id": len(questions) + 1, "kind": kind, "text": text, "objects": objects,
                          "dependencies": deps})
        return len(questions)

    entity = [add("entity", f"Is there {with_article(item['class'])}?", [g], []) for g, item in enumerate(include)]
    for g, item in enumerate(include):
        shape, n = item["class"], item["count"]
        if n > 1:
            add("count", f"Are there exactly {NUMBER_WORDS[n]} {plural(shape)}?", [g], [entity[g]])
        text = f"Is the {shape} {item['color']}?" if n == 1 else f"Are the {plural(shape)} {item['color']}?"
        add("colour", text, [g], [entity[g]])
    for g, item in enumerate(include):
        if "position" in item:
            rel, target = item["position"]
            verb = "Is" if item["count"] == 1 else "Are"
            add("relation", f"{verb} {_the(item)} {rel} {_the(include[target])}?", [g, target],
                [entity[g], entity[target]])
    return questions


def random_dense(rng: np.random.Generator) -> dict:
    """One dense metadata line: 2 or 3 groups (distinct shapes and colours), 3 to 5 objects,
    and usually one relation between two groups of at most 3 objects together. A relation
    holds between every object of one group and every object of the other (GenEval's rule)."""
    while True:
        k = int(rng.integers(2, len(SHAPES) + 1))
        counts = [int(c) for c in rng.integers(1, MAX_GROUP + 1, size=k)]
        if OBJECT_RANGE[0] <= sum(counts) <= OBJECT_RANGE[1]:
            break
    shapes = [SHAPES[int(i)] for i in rng.permutation(len(SHAPES))[:k]]
    colors = [COLOR_NAMES[int(i)] for i in rng.permutation(len(COLOR_NAMES))[:k]]
    include = [{"class": s, "count": n, "color": c} for s, n, c in zip(shapes, counts, colors)]
    sentences = [", ".join(_phrase(i) for i in include[:-1]) + " and " + _phrase(include[-1])]
    pairs = [(t, s) for s in range(k) for t in range(s) if counts[t] + counts[s] <= MAX_RELATED]
    if pairs and rng.random() < RELATION_PROB:
        target, subject = pairs[int(rng.integers(len(pairs)))]
        rel = RELATIONS[int(rng.integers(len(RELATIONS)))]
        include[subject]["position"] = [rel, target]  # GenEval schema: target precedes subject
        verb = "is" if counts[subject] == 1 else "are"
        sentences.append(f"{_the(include[subject])} {verb} {rel} {_the(include[target])}")
    prompt = " ".join(s[0].upper() + s[1:] + "." for s in sentences)
    return {"tag": DENSE_TAG, "prompt": prompt, "include": include, "questions": _questions(include)}


def dense_set(n: int, seed: int) -> list[dict]:
    """`n` dense metadata lines with distinct prompts, seeded."""
    rng = np.random.default_rng(seed)
    seen: dict[str, dict] = {}
    for _ in range(n * 50):
        meta = random_dense(rng)
        seen.setdefault(meta["prompt"], meta)
        if len(seen) >= n:
            break
    return list(seen.values())


def is_dense(metadata: dict) -> bool:
    return "questions" in metadata


def scene_from_dense(
    metadata: dict, rng: np.random.Generator, canvas: int = DEFAULT_CANVAS, distractors: int = 0
) -> list[SceneObject]:
    """Ground-truth scene of a dense line (its `include` groups and relation)."""
    return scene_from_metadata(metadata, rng, canvas, distractors)
