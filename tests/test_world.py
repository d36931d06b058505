"""Shapes world: GenEval's position rule, seeded determinism, dense prompts, committed sets."""

import json
from pathlib import Path

import numpy as np
import pytest

from thinkpix.evaluation.truth_images import ground_truth, image_rng
from thinkpix.worlds import TASKS, TrainingStream, geneval_set, render
from thinkpix.worlds.shapes.dense import OBJECT_RANGE, QUESTION_KINDS, dense_set, scene_from_dense
from thinkpix.worlds.shapes.geometry import OPPOSITE, relative_position

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


# --- GenEval's relative_position ---------------------------------------------------------

@pytest.mark.parametrize(
    "a, b, expected",
    [
        ((0, 10, 8, 18), (20, 10, 28, 18), {"left of"}),
        ((20, 10, 28, 18), (0, 10, 8, 18), {"right of"}),
        ((10, 0, 18, 8), (10, 20, 18, 28), {"above"}),
        ((10, 20, 18, 28), (10, 0, 18, 8), {"below"}),
        ((0, 0, 8, 8), (20, 20, 28, 28), {"left of", "above"}),  # diagonal: both (|dx|, |dy| > 0.5)
        ((0, 0, 10, 10), (1, 1, 11, 11), set()),  # offset 1 < margin 0.1 * (10 + 10) = 2
    ],
)
def test_relative_position_cases(a, b, expected):
    assert relative_position(a, b) == expected


def test_relative_position_margin_and_cutoff():
    # offset (3, 0) with margin 0.1 * (10 + 10) = 2: revised dx = 1 -> 1/3 of |offset| < 0.5 -> none
    assert relative_position((3, 0, 13, 10), (0, 0, 10, 10)) == set()
    # offset (5, 0): revised 3/5 = 0.6 > 0.5 -> right of
    assert relative_position((5, 0, 15, 10), (0, 0, 10, 10)) == {"right of"}
    # offset (10, 9): dx = (10-2)/13.45 = 0.59, dy = (9-2)/13.45 = 0.52 -> both
    assert relative_position((10, 9, 20, 19), (0, 0, 10, 10)) == {"right of", "below"}


def test_relative_position_antisymmetric():
    rng = np.random.default_rng(0)
    for _ in range(200):
        (x0, y0, x1, y1), s0, s1 = rng.integers(0, 25, size=4), *rng.integers(4, 12, size=2)
        a, b = (x0, y0, x0 + s0, y0 + s0), (x1, y1, x1 + s1, y1 + s1)
        assert relative_position(b, a) == {OPPOSITE[r] for r in relative_position(a, b)}


# --- seeded determinism -------------------------------------------------------------------

def test_world_is_seeded():
    assert geneval_set(5, seed=3) == geneval_set(5, seed=3)
    assert geneval_set(5, seed=3) != geneval_set(5, seed=4)
    assert dense_set(10, seed=3) == dense_set(10, seed=3)
    meta = geneval_set(2, seed=0)[-1]  # a color_attr prompt
    a = render(ground_truth(meta, image_rng(7, 1, 2), distractors=2))
    b = render(ground_truth(meta, image_rng(7, 1, 2), distractors=2))
    c = render(ground_truth(meta, image_rng(7, 1, 3), distractors=2))
    assert np.array_equal(a, b) and not np.array_equal(a, c)
    p1, x1 = TrainingStream(seed=5).batch(6)
    p2, x2 = TrainingStream(seed=5).batch(6)
    assert p1 == p2 and np.array_equal(x1, x2)


# --- dense prompts ------------------------------------------------------------------------

def test_dense_prompts_and_question_graph():
    metas = dense_set(60, seed=1)
    assert len({m["prompt"] for m in metas}) == 60
    for meta in metas:
        groups = meta["include"]
        assert OBJECT_RANGE[0] <= sum(g["count"] for g in groups) <= OBJECT_RANGE[1]
        assert len({g["class"] for g in groups}) == len(groups)  # one group per shape class
        assert 1 <= meta["prompt"].count(".") <= 2  # one or two sentences
        questions = meta["questions"]
        ids = [q["id"] for q in questions]
        assert len(set(ids)) == len(ids)
        entity_of = {q["objects"][0]: q["id"] for q in questions if q["kind"] == "entity"}
        assert set(entity_of) == set(range(len(groups)))
        for q in questions:
            assert q["kind"] in QUESTION_KINDS
            if q["kind"] == "entity":
                assert q["dependencies"] == []
            else:  # every attribute/relation question depends on the entity questions of its objects
                assert sorted(q["dependencies"]) == sorted(entity_of[g] for g in q["objects"])
        kinds = [q["kind"] for q in questions]
        assert kinds.count("colour") == len(groups)
        assert kinds.count("count") == sum(g["count"] > 1 for g in groups)
        assert kinds.count("relation") == sum("position" in g for g in groups)
    assert sum("position" in str(m) for m in metas) > 15  # relations are common


def test_dense_scene_satisfies_its_metadata():
    for i, meta in enumerate(dense_set(30, seed=2)):
        objects = scene_from_dense(meta, np.random.default_rng(i))
        start = 0
        spans = []
        for g in meta["include"]:
            group = objects[start : start + g["count"]]
            assert all(o.shape == g["class"] and o.color == g["color"] for o in group)
            spans.append(group)
            start += g["count"]
        assert len(objects) == start
        for g, item in enumerate(meta["include"]):
            if "position" in item:
                rel, target = item["position"]
                assert all(relative_position(a.box, b.box) == {rel} for a in spans[g] for b in spans[target])


# --- committed evaluation sets ------------------------------------------------------------

def _lines(path):
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def test_committed_geneval_set_is_regenerable():
    metas = _lines(DATA / "geneval.jsonl")
    assert metas == geneval_set(100, seed=0)  # `thinkpix world prompts --set geneval --per_task 100 --seed 0`
    for task in TASKS:
        assert sum(m["tag"] == task for m in metas) == 100


def test_committed_dense_set_is_regenerable():
    metas = _lines(DATA / "dense.jsonl")
    assert len(metas) >= 100
    assert metas == dense_set(len(metas), seed=0)  # `thinkpix world prompts --set dense --per_task 100 --seed 0`


def test_docs_palette_table_matches_code():
    from thinkpix.worlds.shapes.palette import BACKGROUND, COLORS

    doc = (Path(__file__).resolve().parents[1] / "docs" / "world.md").read_text()
    rows = {}
    for line in doc.splitlines():
        cells = [c.strip() for c in line.strip().strip("|").split("|")]
        if len(cells) == 3 and cells[1].startswith("("):
            rows[cells[0]] = (tuple(int(v) for v in cells[1].strip("()").split(",")), cells[2])
    expected = {"background": BACKGROUND, **COLORS}
    assert {k: v for k, (v, _) in rows.items()} == expected
    assert all(hexcode == "#" + bytes(rgb).hex() for rgb, hexcode in rows.values())
