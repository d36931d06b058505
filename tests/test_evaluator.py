"""The exact evaluator: detector, GenEval's rules, dense scoring, and the must-show checks
(ground truth passes, controlled breaks fail, noise and blur do not matter)."""

import json
from pathlib import Path

import numpy as np
import pytest

from thinkpix.evaluation.checks import BREAKS, add_noise, blur, break_scene, must_show
from thinkpix.evaluation.dense import score_dense
from thinkpix.evaluation.detect import (
    COUNTING_THRESHOLD, MAX_OBJECTS, THRESHOLD, Detection, detect, detect_all, group, min_area_for,
)
from thinkpix.evaluation.geneval import evaluate
from thinkpix.evaluation.truth_images import ground_truth, image_rng, write_folder
from thinkpix.evaluation.runner import evaluate_folder, score_image, summarise
from thinkpix.worlds import COLORS, SHAPES, TASKS, SceneObject, render
from thinkpix.worlds.shapes.dense import dense_set
from thinkpix.worlds.shapes.scene import size_range

DATA = Path(__file__).resolve().parents[1] / "data" / "eval"


def _metas(name):
    return [json.loads(line) for line in (DATA / name).read_text().splitlines() if line.strip()]


def _subset(metas, every):
    """A fixed subset covering every task (the set is ordered by task)."""
    return metas[::every]


# --- detector -----------------------------------------------------------------------------

@pytest.mark.parametrize("canvas", [32, 64])
def test_detector_every_shape_size_colour(canvas):
    lo, hi = size_range(canvas)
    for shape in SHAPES:
        for size in range(lo, hi + 1):
            for color in COLORS:
                obj = SceneObject(shape, color, 3, 5, size)
                found = detect_all(render([obj], canvas))
                assert len(found) == 1
                d = found[0]
                assert (d.shape, d.color, d.confidence) == (shape, color, 1.0), (shape, size, color)
                x0, y0, x1, y1 = d.box  # a triangle's apex row may be empty at even sizes
                assert (x0, x1, y1) == (3, 3 + size, 5 + size) and y0 in (5, 6)


def test_detector_splits_touching_colours_and_drops_specks():
    image = render([SceneObject("square", "red", 2, 4, 9), SceneObject("circle", "blue", 11, 4, 9)])
    image[28:30, 28:30] = COLORS["white"]  # a 4-px speck, below the minimum area
    found = sorted(detect_all(image), key=lambda d: d.box)
    assert [(d.shape, d.color) for d in found] == [("square", "red"), ("circle", "blue")]
    assert min_area_for(32) == 10 and min_area_for(64) == 40


def test_detections_sorted_capped_and_thresholded():
    objects = [SceneObject("square", "red", 1 + 6 * (i % 5), 1 + 6 * (i // 5), 4) for i in range(20)]
    grouped = detect(render(objects))
    assert len(grouped["square"]) == MAX_OBJECTS
    conf = [d.confidence for d in grouped["square"]]
    assert conf == sorted(conf, reverse=True)
    # two circles touching in one colour form one component; the shapes say two objects
    merged = render([SceneObject("circle", "green", 2, 2, 10), SceneObject("circle", "green", 12, 2, 10)])
    found = sorted(detect_all(merged), key=lambda d: d.box)
    assert [(d.shape, d.box) for d in found] == [("circle", (2, 2, 12, 12)), ("circle", (12, 2, 22, 12))]
    assert min(d.confidence for d in found) > COUNTING_THRESHOLD
    assert THRESHOLD < COUNTING_THRESHOLD


# --- GenEval's evaluate() on hand-made detections -----------------------------------------

def _det(shape, color, box, conf=1.0):
    return Detection(tuple(box), np.ones((box[3] - box[1], box[2] - box[0]), bool), color, conf, shape)


def test_geneval_rules_and_reasons():
    two = {"tag": "two_object", "include": [{"class": "circle", "count": 1}, {"class": "square", "count": 1}]}
    ok, reason = evaluate({"circle": [_det("circle", "red", (0, 0, 8, 8))]}, two)
    assert not ok and reason == "expected square>=1, found 0"

    counting = {"tag": "counting", "include": [{"class": "circle", "count": 2}],
                "exclude": [{"class": "circle", "count": 3}]}
    three = [_det("circle", "red", (10 * i, 0, 10 * i + 8, 8)) for i in range(3)]
    assert evaluate({"circle": three[:2]}, counting) == (True, "")
    assert evaluate({"circle": three}, counting) == (False, "expected circle<3, found 3")

    colors = {"tag": "colors", "include": [{"class": "circle", "count": 1, "color": "red"}]}
    circles = [_det("circle", "blue", (0, 0, 8, 8)), _det("circle", "red", (20, 0, 28, 8), 0.9)]
    ok, reason = evaluate({"circle": circles}, colors)
    assert not ok  # only the most confident circle is judged
    assert reason == "expected red circle>=1, found 0 red; and 1 blue"

    position = {"tag": "position", "include": [{"class": "square", "count": 1},
                                                {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    left = {"square": [_det("square", "red", (20, 10, 28, 18))], "circle": [_det("circle", "red", (0, 10, 8, 18))]}
    assert evaluate(left, position) == (True, "")
    right = {"square": [_det("square", "red", (0, 10, 8, 18))], "circle": [_det("circle", "red", (20, 10, 28, 18))]}
    assert evaluate(right, position) == (False, "expected circle left of target, found right of target")
    no_target = "expected square>=1, found 0\nno target for circle to be left of"
    assert evaluate({"circle": left["circle"]}, position)[1] == no_target


def test_geneval_position_checks_every_target_object():
    meta = {"tag": "position", "include": [{"class": "square", "count": 2},
                                            {"class": "circle", "count": 1, "position": ["left of", 0]}]}
    circle = [_det("circle", "red", (0, 10, 8, 18))]
    both_right = [_det("square", "red", (20, 0, 28, 8)), _det("square", "red", (20, 20, 28, 28))]
    one_left = [both_right[0], _det("square", "red", (0, 22, 8, 30), 0.9)]
    assert evaluate({"square": both_right, "circle": circle}, meta)[0]
    assert not evaluate({"square": one_left, "circle": circle}, meta)[0]


# --- dense scoring ------------------------------------------------------------------------

def test_dense_failing_entity_zeros_its_dependents():
    meta = next(m for m in dense_set(40, seed=0) if any("position" in g for g in m["include"]))
    objects = ground_truth(meta, np.random.default_rng(0))
    assert score_image(render(objects), meta)["score"] == 1.0
    # remove the relation's target group entirely: its entity question fails, and with it
    # every question that depends on it (colour, count, the relation)
    target = next(g["position"][1] for g in meta["include"] if "position" in g)
    start = sum(g["count"] for g in meta["include"][:target])
    kept = objects[:start] + objects[start + meta["include"][target]["count"]:]
    found = detect_all(render(kept))
    score, passed, reason = score_dense(group(found, THRESHOLD), group(found, COUNTING_THRESHOLD), meta)
    entity = next(q["id"] for q in meta["questions"] if q["kind"] == "entity" and q["objects"] == [target])
    failed = {q["id"] for q in meta["questions"] if entity in q["dependencies"]} | {entity}
    assert {qid for qid, ok in passed.items() if not ok} == failed
    assert score == pytest.approx(1 - len(failed) / len(meta["questions"]))
    assert f"Q{entity} " in reason


def test_dense_child_scores_zero_when_parent_fails_even_if_true():
    meta = {"tag": "dense", "prompt": "p", "include": [{"class": "circle", "count": 1, "color": "red"},
                                                        {"class": "square", "count": 1, "color": "blue"}],
            "questions": [{"id": 1, "kind": "entity", "objects": [1], "dependencies": [], "text": "Is there a square?"},
                          {"id": 2, "kind": "colour", "objects": [0], "dependencies": [1],
                           "text": "Is the circle red?"},
                          {"id": 3, "kind": "colour", "objects": [0], "dependencies": [],
                           "text": "Is the circle red?"}]}
    detected = {"circle": [_det("circle", "red", (0, 0, 8, 8))]}
    score, passed, reason = score_dense(detected, detected, meta)
    assert passed == {1: False, 2: False, 3: True} and score == pytest.approx(1 / 3)
    assert "Q2 Is the circle red? no (a parent question failed)" in reason


# --- must-show checks ---------------------------------------------------------------------

def test_ground_truth_of_committed_set_through_folders(tmp_path):
    """The full committed set, 4 images per prompt, rendered to PNG and scored as the CLI does."""
    metas = _metas("geneval.jsonl")
    write_folder(metas, tmp_path, images_per_prompt=4, seed=0)
    results, summary = evaluate_folder(tmp_path)
    assert len(results) == 4 * len(metas) >= 2400
    assert summary["overall"] >= 0.995
    assert min(summary["tasks"].values()) >= 0.99 and set(summary["tasks"]) == set(TASKS)
    assert (tmp_path / "results.jsonl").is_file() and (tmp_path / "summary.json").is_file()


def _check_must_show(report):
    assert report["clean"]["overall"] >= 0.995 and min(report["clean"]["tasks"].values()) >= 0.99
    for name in ("noise", "blur_gaussian", "blur_box"):
        assert report[name]["overall"] >= 0.97, name
    for kind, tasks in BREAKS.items():
        fa = report["false_accept"][kind]
        assert set(fa["tasks"]) == set(tasks)
        assert max(fa["tasks"].values()) <= 0.01, (kind, fa)


def test_must_show_on_seeded_subset():
    _check_must_show(must_show(_subset(_metas("geneval.jsonl"), 3), images_per_prompt=2, seed=11))


def test_must_show_with_distractors_on_64px():
    metas = _subset(_metas("geneval.jsonl"), 10)
    _check_must_show(must_show(metas, images_per_prompt=1, seed=5, canvas=64, distractors=2))


@pytest.mark.slow
def test_must_show_full_set():
    _check_must_show(must_show(_metas("geneval.jsonl"), images_per_prompt=4, seed=0))


def test_breaks_change_what_they_claim():
    metas = _metas("geneval.jsonl")
    rng = np.random.default_rng(0)
    for meta in _subset(metas, 25):
        objects = ground_truth(meta, rng)
        for kind, tasks in BREAKS.items():
            if meta["tag"] not in tasks:
                continue
            broken = break_scene(kind, meta, objects, rng)
            if kind == "missing":
                assert len(broken) == len(objects) - 1
            elif kind == "extra":
                assert len(broken) == len(objects) + 1
            elif kind == "colour":
                assert sum(a.color != b.color for a, b in zip(objects, broken)) == 1
            else:
                assert [o.shape for o in broken] == [o.shape for o in objects]


def test_dense_ground_truth_and_perturbations():
    metas = _metas("dense.jsonl")[::2]
    scores = {"clean": [], "noise": [], "blur": []}
    for i, meta in enumerate(metas):
        rng = image_rng(0, i, 0)
        image = render(ground_truth(meta, rng))
        scores["clean"].append(score_image(image, meta)["score"])
        scores["noise"].append(score_image(add_noise(image, rng), meta)["score"])
        scores["blur"].append(score_image(blur(image), meta)["score"])
    assert np.mean(scores["clean"]) == 1.0
    assert np.mean(scores["noise"]) >= 0.97 and np.mean(scores["blur"]) >= 0.97


def test_summary_is_unweighted_over_tasks():
    rows = [{"folder": f"{i:05d}", "sample": "0000.png", "tag": tag, "correct": ok}
            for i, (tag, ok) in enumerate([("counting", True), ("counting", False), ("counting", False),
                                           ("colors", True)])]
    rows.append({"folder": "00001", "sample": "0001.png", "tag": "counting", "correct": True})
    s = summarise(rows)
    assert s["tasks"] == {"counting": 0.5, "colors": 1.0}
    assert s["overall"] == 0.75
    assert s["prompts_correct"] == 0.75  # folders 0, 1, 3 of 0-3


def test_summary_of_no_results_scores_zero():
    """`--partial` on a folder with no complete prompt folder scores nothing: overall is 0, not 1."""
    s = summarise([])
    assert s["overall"] == 0.0 and s["prompts_correct"] == 0.0 and s["images"] == 0
