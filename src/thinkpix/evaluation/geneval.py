"""GenEval's `evaluate()` (evaluation/evaluate_images.py), rule for rule, on our detections.

Assumptions, as in GenEval: `include` clauses combine with AND, `exclude` clauses with OR;
colour and position are judged only on the `count` most confident detections of a class
(detections come sorted by confidence). The only substitution: GenEval classifies an object's
colour with CLIP on its masked crop; here it is the detector's majority palette colour.
"""

from __future__ import annotations

from ..worlds.shapes.geometry import relative_position
from ..worlds.shapes.palette import COLOR_NAMES
from .detect import COUNTING_THRESHOLD, THRESHOLD, Detection


def threshold_for(metadata: dict) -> float:
    """GenEval's confidence threshold for this prompt: stricter for counting prompts."""
    return COUNTING_THRESHOLD if metadata.get("tag") == "counting" else THRESHOLD


def evaluate(detected: dict[str, list[Detection]], metadata: dict) -> tuple[bool, str]:
    """(correct, reason) for one image; `detected` is {class: [Detection, ...]} sorted by
    confidence. `reason` is GenEval's newline-joined list of failed clauses ('' if correct)."""
    correct = True
    reason: list[str] = []
    matched_groups: list[list[Detection] | None] = []
    # Check for expected objects
    for req in metadata.get("include", []):
        classname = req["class"]
        matched = True
        found_objects = detected.get(classname, [])[: req["count"]]
        if len(found_objects) < req["count"]:
            correct = matched = False
            reason.append(f"expected {classname}>={req['count']}, found {len(found_objects)}")
        else:
            if "color" in req:
                # Colour check
                colors = [obj.color for obj in found_objects]
                if colors.count(req["color"]) < req["count"]:
                    correct = matched = False
                    reason.append(
                        f"expected {req['color']} {classname}>={req['count']}, found "
                        + f"{colors.count(req['color'])} {req['color']}; and "
                        + ", ".join(f"{colors.count(c)} {c}" for c in COLOR_NAMES if c in colors)
                    )
            if "position" in req and matched:
                # Relative position check
                expected_rel, target_group = req["position"]
                if matched_groups[target_group] is None:
                    correct = matched = False
                    reason.append(f"no target for {classname} to be {expected_rel}")
                else:
                    for obj in found_objects:
                        for target_obj in matched_groups[target_group]:
                            true_rels = relative_position(obj.box, target_obj.box)
                            if expected_rel not in true_rels:
                                correct = matched = False
                                reason.append(
                                    f"expected {classname} {expected_rel} target, found "
                                    + f"{' and '.join(sorted(true_rels))} target"
                                )
                                break
                        if not matched:
                            break
        matched_groups.append(found_objects if matched else None)
    # Check for non-expected objects
    for req in metadata.get("exclude", []):
        classname = req["class"]
        if len(detected.get(classname, [])) >= req["count"]:
            correct = False
            reason.append(f"expected {classname}<{req['count']}, found {len(detected[classname])}")
    return correct, "\n".join(reason)
