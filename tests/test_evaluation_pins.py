"""Every threshold of the evaluator is pinned: moving one changes every score in docs/results.md, so it must
be a deliberate change of this table, of docs/evaluation.md and of the results in the same commit.
Each pin is also checked as behaviour at its boundary, not only as a number."""

import importlib

import numpy as np
import pytest

from thinkpix.evaluation.detect import Detection, group
from thinkpix.evaluation.geneval import evaluate, threshold_for

# the modules themselves (thinkpix.evaluation exports a function named `detect`)
checks, degraded, detect, frechet, runner, shapefit = (
    importlib.import_module(f"thinkpix.evaluation.{m}")
    for m in ("checks", "degraded", "detect", "frechet", "runner", "shapefit"))
classes = importlib.import_module("thinkpix.worlds.classes.evaluation")  # the class track's accuracy

PINS = {  # module constant: value (docs/evaluation.md explains each)
    (detect, "THRESHOLD"): 0.6,  # GenEval's 0.3 on our shape-fit confidence
    (detect, "COUNTING_THRESHOLD"): 0.7,  # GenEval's 0.9 for counting prompts (0.75 before issue 9)
    (detect, "GENEVAL_THRESHOLD"): 0.3,
    (detect, "GENEVAL_COUNTING_THRESHOLD"): 0.9,
    (detect, "MAX_OBJECTS"): 16,
    (detect, "MIN_AREA_32"): 10,
    (detect, "MAX_SIDE_32"): 20,
    (detect, "MAX_SPREAD"): 0.5,
    (detect, "MAX_SURROUND"): 30.0,
    (detect, "MIN_SHADE"): 0.9,
    (detect, "ALPHA_FLOOR"): 0.05,
    (detect, "PAD"): 2,
    (detect, "SPLIT_BELOW"): 0.9,
    (detect, "SPLIT_ASPECT"): 1.4,
    (detect, "MAX_PART_32"): 16,
    (detect, "SPLIT_MARGIN"): 0.05,
    (shapefit, "BLURS"): (0.0, 0.5, 1.0),
    (shapefit, "SUPERSAMPLE"): 4,
    (shapefit, "MIN_CUT_SHOWN"): 0.4,
    (shapefit, "MARGIN"): 3,
    (degraded, "BLUR"): (0.0, 0.6),  # the validation set's degradations
    (degraded, "NOISE"): (0.0, 0.03),
    (degraded, "COLOUR_SHIFT"): 10.0,
    (degraded, "COLOUR_MARGIN"): 0.7,
    (degraded, "BG_SHIFT"): 4,
    (degraded, "MIN_VISIBLE"): 0.6,
    (checks, "NOISE_SIGMA"): 0.05,
    (runner, "BOOTSTRAP"): 1000,
    (classes, "BOOTSTRAP"): 1000,
    (frechet, "RIDGE"): 1e-6,
    (frechet, "IMAGINARY_TOLERANCE"): 1e-3,
}


@pytest.mark.parametrize("module,name", list(PINS), ids=lambda x: getattr(x, "__name__", x))
def test_threshold_is_pinned(module, name):
    assert getattr(module, name) == PINS[module, name]


def test_docs_state_the_two_confidence_thresholds():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "evaluation.md").read_text()
    assert f"**{detect.THRESHOLD}**" in doc and f"**{detect.COUNTING_THRESHOLD}**" in doc


def _det(conf, x=0):
    return Detection((x, 0, x + 6, 6), np.ones((6, 6), bool), "red", conf, "circle")


@pytest.mark.parametrize("tag,cut", [("counting", 0.7), ("two_object", 0.6), ("colors", 0.6), ("position", 0.6)])
def test_confidence_cuts_act_at_their_boundary(tag, cut):
    """A detection counts only strictly above its prompt's cut: at the cut it is dropped, just above it kept."""
    assert threshold_for({"tag": tag}) == cut
    at, above = group([_det(cut)], threshold_for({"tag": tag})), group([_det(cut + 1e-3)], threshold_for({"tag": tag}))
    assert at == {} and len(above["circle"]) == 1
    meta = {"tag": tag, "include": [{"class": "circle", "count": 1}]}
    assert not evaluate(at, meta)[0] and evaluate(above, meta)[0]


def test_a_blob_between_the_cuts_counts_as_an_object_but_not_for_counting():
    blobs = [_det(1.0), _det(0.65, x=10)]  # one clear circle, one 0.65 blob (between the two cuts)
    counting = {"tag": "counting", "include": [{"class": "circle", "count": 1}],
                "exclude": [{"class": "circle", "count": 2}]}
    assert evaluate(group(blobs, threshold_for(counting)), counting) == (True, "")
    assert len(group(blobs, threshold_for({"tag": "two_object"}))["circle"]) == 2


def test_max_objects_caps_each_class():
    many = [_det(0.9 + i * 1e-3, x=8 * i) for i in range(detect.MAX_OBJECTS + 3)]
    kept = group(many, 0.6)["circle"]
    assert len(kept) == detect.MAX_OBJECTS and kept[0].confidence == max(d.confidence for d in many)


def test_class_judge_uses_the_plain_threshold():
    from thinkpix.worlds import SceneObject, render
    from thinkpix.worlds.classes.sets import CLASSES

    image = render([SceneObject("circle", "red", 8, 8, 12)])
    assert classes.judge(image, CLASSES.index("red circle")) == (True, "ok")


# ----- behaviours the evaluator's mutation sample found untested ------------------------------------
def test_dense_relation_answers_say_what_was_seen():
    from thinkpix.evaluation.dense import answer

    include = [{"class": "circle", "count": 1, "position": ["left of", 1]}, {"class": "square", "count": 1}]
    question = {"id": 1, "kind": "relation", "objects": [0, 1], "dependencies": [], "text": "left?"}
    square = Detection((0, 0, 6, 6), np.ones((6, 6), bool), "red", 1.0, "square")
    right = _det(1.0, x=20)  # a circle right of the square
    on_top = _det(1.0, x=0)  # a circle exactly where the square is
    assert answer(question, include, {"circle": [right], "square": [square]}, {}) == (False, "found right of")
    assert answer(question, include, {"circle": [on_top], "square": [square]}, {}) == (False, "found overlapping")
    assert answer(question, include, {"square": [square]}, {}) == (False, "found none")
