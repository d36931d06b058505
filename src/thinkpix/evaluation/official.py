"""GenEval's official metadata (`prompts/evaluation_metadata.jsonl`: COCO object classes such as
`bench`), read for sampling only. The shapes world's exact evaluator scores shapes-world metadata
only; folders of other classes are for GenEval's own evaluator (`evaluation/evaluate_images.py`)."""

from __future__ import annotations

from pathlib import Path

from ..errors import located
from .metadata import read_jsonl


def validate_official(meta: dict, path, line: int | None) -> dict:
    """GenEval's schema without the shapes world's vocabulary: tag, prompt, include [{class, count, color?,
    position?}], exclude (optional). Returns `meta` unchanged (it is written back verbatim)."""
    for key, typ in (("tag", str), ("prompt", str), ("include", list)):
        if not isinstance(meta.get(key), typ):
            raise located(path, line, f"missing or malformed {key!r} (GenEval metadata: tag, prompt, include)")
    for where, items in (("include", meta["include"]), ("exclude", meta.get("exclude", []))):
        for i, item in enumerate(items):
            if not (isinstance(item, dict) and isinstance(item.get("class"), str)
                    and isinstance(item.get("count"), int) and not isinstance(item.get("count"), bool)):
                raise located(path, line, f"{where}[{i}]: expected {{'class': str, 'count': int, ...}}, got {item!r}")
            pos = item.get("position")
            if pos is not None and not (isinstance(pos, list) and len(pos) == 2 and isinstance(pos[0], str)
                                        and isinstance(pos[1], int) and 0 <= pos[1] < i):
                raise located(path, line, f"{where}[{i}]: 'position' must be [relation, earlier index], got {pos!r}")
    return meta


def read_official_metadata(path: Path) -> list[tuple[int, dict]]:
    lines = read_jsonl(path)
    if not lines:
        raise located(path, None, "no metadata lines")
    return [(n, validate_official(meta, path, n)) for n, meta in lines]


def foreign_classes(metas: list[dict]) -> list[str]:
    """Object classes of `metas` that the shapes world does not have (sorted)."""
    from ..worlds.shapes.templates import SHAPES

    found = {item["class"] for m in metas for item in m.get("include", []) + m.get("exclude", [])
             if isinstance(item, dict) and "class" in item}
    return sorted(c for c in found if c not in SHAPES)
