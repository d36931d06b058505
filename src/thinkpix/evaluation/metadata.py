"""Reading and validating metadata JSONL (GenEval's schema plus our dense `questions`).

Every problem becomes a `ThinkpixError` naming the file and the 1-based line.
"""

from __future__ import annotations

import json
from pathlib import Path

from ..errors import ThinkpixError, located
from ..validation import MAX_PROMPT_CHARS
from ..worlds.shapes.dense import DENSE_TAG, QUESTION_KINDS
from ..worlds.shapes.geometry import RELATIONS
from ..worlds.shapes.palette import COLOR_NAMES
from ..worlds.shapes.prompts import TASKS
from ..worlds.shapes.templates import SHAPES

MAX_COUNT = 64  # objects of one kind; far above what a canvas holds, low enough to refuse absurd counts
TAGS = (*TASKS, DENSE_TAG)  # GenEval's six tasks and the dense prompts; another tag would become a row of its own


def read_jsonl(path: Path) -> list[tuple[int, dict]]:
    """[(line number, object), ...] for the non-blank lines of a JSONL file."""
    path = Path(path)
    if not path.is_file():
        raise located(path, None, "file not found")
    out = []
    with path.open("rb") as f:
        for number, raw in enumerate(f, start=1):
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise located(path, number, "not valid UTF-8 text") from None
            if not line.strip():
                continue
            try:
                obj = json.loads(line)
            except json.JSONDecodeError as exc:
                raise located(path, number, f"malformed JSON line ({exc.msg} at column {exc.colno})") from None
            if not isinstance(obj, dict):
                raise located(path, number, f"expected a JSON object, got {type(obj).__name__}")
            out.append((number, obj))
    return out


def _check_count(value, path, line, where: str) -> None:
    if not isinstance(value, int) or isinstance(value, bool) or not 1 <= value <= MAX_COUNT:
        raise located(path, line, f"{where}: 'count' must be an integer in [1, {MAX_COUNT}], got {value!r}")


def _check_class(item: dict, path, line, where: str) -> None:
    if not isinstance(item, dict):
        raise located(path, line, f"{where}: expected an object, got {item!r}")
    if item.get("class") not in SHAPES:
        raise located(path, line, f"{where}: unknown shape {item.get('class')!r} (known: {', '.join(SHAPES)})")
    _check_count(item.get("count"), path, line, where)


def validate_metadata(meta: dict, path, line: int | None) -> dict:
    """Raise `ThinkpixError` unless `meta` is a well-formed metadata line; return it."""
    for key in ("tag", "prompt", "include"):
        if key not in meta:
            raise located(path, line, f"missing key {key!r}")
    for key in ("tag", "prompt"):
        if not isinstance(meta[key], str) or not meta[key].strip():
            raise located(path, line, f"{key!r} must be a non-empty string, got {meta[key]!r}")
    if meta["tag"] not in TAGS:
        raise located(path, line, f"unknown task tag {meta['tag']!r} (known: {', '.join(TAGS)})")
    if len(meta["prompt"]) > MAX_PROMPT_CHARS:  # the command line's limit too (`validation.text`)
        raise located(path, line, f"'prompt' is {len(meta['prompt'])} characters long (at most {MAX_PROMPT_CHARS})")
    include = meta["include"]
    if not isinstance(include, list) or not include:
        raise located(path, line, "'include' must be a non-empty list")
    for i, item in enumerate(include):
        where = f"include[{i}]"
        _check_class(item, path, line, where)
        if "color" in item and item["color"] not in COLOR_NAMES:
            raise located(path, line, f"{where}: unknown colour {item['color']!r} (known: {', '.join(COLOR_NAMES)})")
        if "position" in item:
            pos = item["position"]
            if not (isinstance(pos, list) and len(pos) == 2 and pos[0] in RELATIONS
                    and isinstance(pos[1], int) and 0 <= pos[1] < i):
                raise located(path, line, f"{where}: 'position' must be [relation, index of an earlier include "
                                          f"item] with relation one of {', '.join(RELATIONS)}; got {pos!r}")
    if not isinstance(meta.get("exclude", []), list):
        raise located(path, line, f"'exclude' must be a list, got {meta['exclude']!r}")
    for i, item in enumerate(meta.get("exclude", [])):
        _check_class(item, path, line, f"exclude[{i}]")
    if "questions" in meta:
        _validate_questions(meta, path, line)
    return meta


def _validate_questions(meta: dict, path, line) -> None:
    seen: set[int] = set()
    groups = len(meta["include"])
    if not isinstance(meta["questions"], list):
        raise located(path, line, f"'questions' must be a list, got {meta['questions']!r}")
    for q in meta["questions"]:
        qid = q.get("id") if isinstance(q, dict) else None
        if not isinstance(qid, int) or isinstance(qid, bool) or qid in seen:
            raise located(path, line, f"question {q!r}: 'id' must be a unique integer")
        if q.get("kind") not in QUESTION_KINDS:
            raise located(path, line, f"question {qid}: unknown kind {q.get('kind')!r} "
                                      f"(known: {', '.join(QUESTION_KINDS)})")
        objects = q.get("objects")
        n_objects = 2 if q["kind"] == "relation" else 1
        if not (isinstance(objects, list) and len(objects) == n_objects
                and all(isinstance(g, int) and not isinstance(g, bool) and 0 <= g < groups for g in objects)):
            raise located(path, line, f"question {qid}: 'objects' must list {n_objects} include index(es)")
        if q["kind"] == "relation" and "position" not in meta["include"][objects[0]]:
            raise located(path, line, f"question {qid}: include[{objects[0]}] has no 'position'")
        if q["kind"] == "colour" and "color" not in meta["include"][objects[0]]:
            raise located(path, line, f"question {qid}: include[{objects[0]}] has no 'color'")
        deps = q.get("dependencies", [])
        if not (isinstance(deps, list) and all(isinstance(d, int) and not isinstance(d, bool) and d in seen
                                               for d in deps)):
            raise located(path, line, f"question {qid}: 'dependencies' must name earlier question ids")
        q.setdefault("dependencies", [])
        seen.add(qid)


def read_metadata(path: Path) -> list[tuple[int, dict]]:
    """Read and validate a metadata JSONL file (a prompt set, or one GenEval folder's file)."""
    lines = read_jsonl(path)
    if not lines:
        raise ThinkpixError(f"{path}: no metadata lines")
    return [(n, validate_metadata(meta, path, n)) for n, meta in lines]
