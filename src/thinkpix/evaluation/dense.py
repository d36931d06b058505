"""DPG-style scoring of dense prompts (see `thinkpix.worlds.shapes.dense`) from detections.

Each question is answered from the detections of its group(s): entity = at least one object
of the class; count = exactly `count` objects (at GenEval's counting threshold); colour = the
group's `count` most confident objects found all have the colour; relation = GenEval's
position rule holds between every found object of one group and every one of the other.
As in DPG-Bench, a question whose parent (a `dependencies` id) fails scores 0 whatever its
own answer. Image score = mean over its questions.
"""

from __future__ import annotations

from ..worlds.shapes.geometry import relative_position
from .detect import Detection


def answer(question: dict, include: list[dict], detected: dict[str, list[Detection]],
           counted: dict[str, list[Detection]]) -> tuple[bool, str]:
    """(yes, what was seen). `detected` at THRESHOLD, `counted` at COUNTING_THRESHOLD."""
    groups = [include[g] for g in question["objects"]]
    found = [detected.get(item["class"], [])[: item["count"]] for item in groups]
    kind, item = question["kind"], groups[0]
    if kind == "entity":
        return bool(found[0]), f"found {len(detected.get(item['class'], []))}"
    if kind == "count":
        n = len(counted.get(item["class"], []))
        return n == item["count"], f"found {n}"
    if kind == "colour":
        colours = [obj.color for obj in found[0]]
        return bool(colours) and all(c == item["color"] for c in colours), f"found {', '.join(colours) or 'none'}"
    if kind == "relation":
        rel = include[question["objects"][0]]["position"][0]
        seen = [relative_position(a.box, b.box) for a in found[0] for b in found[1]]
        ok = bool(seen) and all(rel in s for s in seen)
        return ok, "found " + ("; ".join(" and ".join(sorted(s)) or "overlapping" for s in seen) or "none")
    raise ValueError(f"unknown question kind {kind!r}")


def score_dense(detected: dict[str, list[Detection]], counted: dict[str, list[Detection]],
                metadata: dict) -> tuple[float, dict[int, bool], str]:
    """(image score, {question id: passed}, reason listing the failed questions)."""
    questions = {q["id"]: q for q in metadata["questions"]}
    include = metadata["include"]
    answers = {qid: answer(q, include, detected, counted) for qid, q in questions.items()}
    passed: dict[int, bool] = {}

    def passes(qid: int) -> bool:  # own answer yes and every parent passes (DPG dependency rule)
        if qid not in passed:
            passed[qid] = answers[qid][0] and all(passes(p) for p in questions[qid]["dependencies"])
        return passed[qid]

    reasons = []
    for qid, q in questions.items():
        if not passes(qid):
            why = answers[qid][1] if not answers[qid][0] else "a parent question failed"
            reasons.append(f"Q{qid} {q['text']} no ({why})")
    score = sum(passed.values()) / len(passed) if passed else 0.0
    return score, passed, "\n".join(reasons)
