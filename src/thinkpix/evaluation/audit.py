"""The evaluator measured against known truth on degraded renders (`degraded.py`).

- `shape_confusion`: one object per image; true shape x size bin (and cut by the border or not)
  against what the detector reports: the shape of the single object it keeps above THRESHOLD,
  "none", or "several"; with colour accuracy and the share counted (above COUNTING_THRESHOLD).
- `verdict_agreement`: GenEval-style scenes (half of them broken the controlled ways of
  `checks.py`), drawn degraded; the truth verdict is GenEval's rules applied to the objects as
  drawn (their shapes, colours, visible boxes), the evaluator's comes from the image. An image
  whose truth verdict changes when the visible boxes are read at coverage 0.3 or 0.7 instead of
  0.5 (a relation on the cut-off, an object half gone) is ambiguous and left out (counted).
- `split_rate`: two touching objects of one colour must be counted as two.
- `garbage_scores`: noise, flat fills and giant blobs must give no object on any task.
Rates carry Wilson 95% intervals.
"""

from __future__ import annotations

import json
from collections import Counter

import numpy as np

from ..worlds.shapes.prompts import TASKS, random_metadata
from ..worlds.shapes.scene import PlacementError, scene_from_metadata
from .checks import BREAKS, break_scene
from .degraded import (MIN_VISIBLE, SIZE_BINS_32, Drawn, draw, from_scene, garbage, random_degradation,
                       single_objects, touching_pairs)
from .detect import COUNTING_THRESHOLD, THRESHOLD, Detection, detect_all, group, min_area_for
from .geneval import evaluate, threshold_for
from .runner import score_image


def wilson(k: int, n: int, z: float = 1.96) -> list[float]:
    """Wilson score 95% interval of a proportion k/n."""
    if n == 0:
        return [0.0, 1.0]
    p = k / n
    centre, half = p + z * z / (2 * n), z * np.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return [float((centre - half) / (1 + z * z / n)), float((centre + half) / (1 + z * z / n))]


def rate(k: int, n: int) -> dict:
    return {"rate": k / n if n else 0.0, "ci95": wilson(k, n), "n": n}


def truth_detections(drawn: Drawn, level: float = 0.5) -> list[Detection]:
    """The drawn objects that show at least the minimum area (pixels covered >= `level`), as
    detections with their visible boxes and confidence 1."""
    out = []
    min_area = min_area_for(drawn.image.shape[0])
    for obj, cov in zip(drawn.objects, drawn.coverage):
        vis = cov >= level
        if vis.sum() >= min_area:
            rows, cols = np.flatnonzero(vis.any(1)), np.flatnonzero(vis.any(0))
            box = (int(cols[0]), int(rows[0]), int(cols[-1]) + 1, int(rows[-1]) + 1)
            out.append(Detection(box, vis[box[1]:box[3], box[0]:box[2]], obj.color, 1.0, obj.shape))
    return out


def truth_verdict(drawn: Drawn, meta: dict) -> tuple[bool, bool]:
    """(GenEval's verdict on the objects as drawn, ambiguous?)."""
    verdicts = {evaluate(group(truth_detections(drawn, level), threshold_for(meta)), meta)[0] for level in (0.5, 0.3, 0.7)}
    return evaluate(group(truth_detections(drawn), threshold_for(meta)), meta)[0], len(verdicts) > 1


def size_bin(size: float, canvas: int) -> str:
    s = size * 32 / canvas
    lo, hi = next(b for b in SIZE_BINS_32 if b[0] <= s < b[1]) if s < SIZE_BINS_32[-1][1] else SIZE_BINS_32[-1]
    return f"{lo:g}-{min(hi, 14):g}"


def shape_confusion(n: int, seed: int, canvas: int = 32) -> dict:
    """Confusion of true shape (x size bin, x cut) against the detector's answer."""
    table: dict[str, Counter] = {}
    colour_ok, counted, total = Counter(), Counter(), Counter()
    for drawn in single_objects(n, seed, canvas):
        obj = drawn.objects[0]
        cut = obj.x < 0 or obj.y < 0 or obj.x + obj.size > canvas or obj.y + obj.size > canvas
        key = f"{obj.shape} {size_bin(obj.size, canvas)}{' cut' if cut else ''}"
        kept = [d for d in detect_all(drawn.image) if d.confidence > THRESHOLD]
        answer = kept[0].shape if len(kept) == 1 else ("none" if not kept else "several")
        table.setdefault(key, Counter())[answer] += 1
        total[key] += 1
        colour_ok[key] += len(kept) == 1 and kept[0].color == obj.color
        counted[key] += len(kept) == 1 and kept[0].confidence > COUNTING_THRESHOLD
    out = {}
    for key in sorted(table):
        shape = key.split()[0]
        out[key] = {"answers": dict(table[key]), "shape_accuracy": rate(table[key][shape], total[key]),
                    "colour_accuracy": rate(colour_ok[key], total[key]), "counted": rate(counted[key], total[key])}
    return out


def degraded_scenes(n: int, seed: int, canvas: int = 32, broken: float = 0.5, cut_prob: float = 0.2):
    """Yield (metadata, Drawn): GenEval metadata (tasks in turn, seeded, not the committed set),
    its ground-truth scene broken one controlled way with probability `broken`, drawn degraded,
    one object cut by the border with probability `cut_prob`."""
    rng = np.random.default_rng([seed, 4])
    i = 0
    while i < n:
        meta = random_metadata(TASKS[i % len(TASKS)], rng)
        try:
            objects = scene_from_metadata(meta, rng, canvas, distractors=int(rng.integers(0, 2)))
            kinds = [k for k, tasks in BREAKS.items() if meta["tag"] in tasks]
            if rng.random() < broken:
                objects = break_scene(kinds[int(rng.integers(len(kinds)))], meta, objects, rng, canvas)
        except PlacementError:
            continue
        drawn_objects = from_scene(objects, rng, canvas)
        if drawn_objects and rng.random() < cut_prob:
            j = int(rng.integers(len(drawn_objects)))
            o = drawn_objects[j]
            cut = float(rng.uniform(0.05, 1 - MIN_VISIBLE)) * o.size
            x = -cut if o.x + o.size / 2 < canvas / 2 else canvas - o.size + cut
            drawn_objects[j] = type(o)(o.shape, o.color, x, o.y, o.size, o.mix, o.shift, o.rounding)
        yield meta, draw(drawn_objects, random_degradation(rng), rng, canvas)
        i += 1


def _counts(c: Counter) -> dict:
    return {"agreement": rate(c["agree"], c["n"]), "false_accept": rate(c["false_accept"], c["n"] - c["truth_correct"]),
            "false_reject": rate(c["false_reject"], c["truth_correct"]), "ambiguous_left_out": c["ambiguous"]}


def verdict_agreement(n: int, seed: int, canvas: int = 32, counting_thresholds: tuple[float, ...] = (),
                      folder=None) -> dict:
    """Per task: agreement of the evaluator's verdict with the truth verdict, false accepts (truth
    wrong, evaluator correct) and false rejects, on unambiguous degraded scenes. With
    `counting_thresholds`, also the counting task's numbers at each of those cuts
    ("counting@0.75"). With `folder`, the images are also written there in GenEval's layout
    (with `truth.jsonl`), for scoring them with another evaluator."""
    rows: dict[str, Counter] = {}
    truths = []
    for i, (meta, drawn) in enumerate(degraded_scenes(n, seed, canvas)):
        truth, ambiguous = truth_verdict(drawn, meta)
        truths.append({"folder": f"{i:05d}", "truth": truth, "ambiguous": ambiguous})
        if folder is not None:
            _write(folder, i, meta, drawn.image)
        found = detect_all(drawn.image)
        verdicts = {meta["tag"]: evaluate(group(found, threshold_for(meta)), meta)[0]}
        if meta["tag"] == "counting":
            verdicts |= {f"counting@{t:g}": evaluate(group(found, t), meta)[0] for t in counting_thresholds}
        for name, said in verdicts.items():
            c = rows.setdefault(name, Counter())
            if ambiguous:
                c["ambiguous"] += 1
                continue
            c["n"] += 1
            c["agree"] += said == truth
            c["truth_correct"] += truth
            c["false_accept"] += said and not truth
            c["false_reject"] += truth and not said
    if folder is not None:
        from pathlib import Path

        (Path(folder) / "truth.jsonl").write_text("".join(json.dumps(t) + "\n" for t in truths))
    return {name: _counts(rows.get(name, Counter())) for name in [*TASKS, *sorted(set(rows) - set(TASKS))]}


def _write(folder, i: int, meta: dict, image: np.ndarray) -> None:
    from pathlib import Path

    from PIL import Image

    d = Path(folder) / f"{i:05d}"
    (d / "samples").mkdir(parents=True, exist_ok=True)
    (d / "metadata.jsonl").write_text(json.dumps(meta) + "\n")
    Image.fromarray(image).save(d / "samples" / "0000.png")


def agreement_of(said: dict[str, bool], truths: list[dict], tags: dict[str, str]) -> dict:
    """Per task agreement of verdicts {folder: correct} with `truth.jsonl` rows (unambiguous only)."""
    rows: dict[str, Counter] = {}
    for t in truths:
        c = rows.setdefault(tags[t["folder"]], Counter())
        if t["ambiguous"]:
            c["ambiguous"] += 1
            continue
        s, truth = said[t["folder"]], t["truth"]
        c["n"] += 1
        c["agree"] += s == truth
        c["truth_correct"] += truth
        c["false_accept"] += s and not truth
        c["false_reject"] += truth and not s
    return {task: _counts(rows.get(task, Counter())) for task in TASKS}


def split_rate(n: int, seed: int, canvas: int = 32) -> dict:
    """Two touching objects of one colour: the share counted as exactly two objects (confidence
    above COUNTING_THRESHOLD) of the right shapes."""
    k = 0
    for drawn in touching_pairs(n, seed, canvas):
        counted = sorted(d.shape for d in detect_all(drawn.image) if d.confidence > COUNTING_THRESHOLD)
        k += counted == sorted(o.shape for o in drawn.objects)
    return rate(k, n)


def garbage_scores(n: int, seed: int, canvas: int = 32) -> dict:
    """Images without objects: per kind, the share with no detection above THRESHOLD, and the
    number of (image, task) verdicts judged correct (must be 0)."""
    metas = [random_metadata(task, np.random.default_rng([seed, 5, i])) for i, task in enumerate(TASKS)]
    empty, accepted, total = Counter(), 0, Counter()
    for kind, image in garbage(n, seed, canvas):
        total[kind] += 1
        empty[kind] += not any(d.confidence > THRESHOLD for d in detect_all(image))
        accepted += sum(score_image(image, m)["correct"] for m in metas)
    return {"no_object": {k: rate(empty[k], total[k]) for k in total}, "verdicts_correct": accepted,
            "verdicts": n * len(metas)}

