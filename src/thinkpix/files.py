"""Weights folders on disk: a safetensors file beside a JSON record carrying its format tag and
sha256. One place checks both, so every loader refuses a damaged or foreign folder the same way."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import ThinkpixError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def folder_digest(folder) -> str:
    """sha256 over every file of a folder (relative names and contents, in sorted order): one string
    that changes whenever any weights or record inside it change."""
    d = Path(folder)
    h = hashlib.sha256()
    for f in sorted(p for p in d.rglob("*") if p.is_file()):
        h.update(f"{f.relative_to(d).as_posix()}\0{sha256_file(f)}\n".encode())
    return h.hexdigest()


def write_json(path, obj, indent: int = 1) -> Path:
    """Write `obj` as JSON (numpy scalars as floats, trailing newline), creating parent folders."""
    out = Path(path)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(obj, indent=indent, default=float) + "\n")
    return out


def read_checked_record(folder, config: str, weights: str, fmt: str, what: str) -> dict:
    """The JSON record `folder/config`, after checking its format tag is `fmt` and that
    `folder/weights` exists with the recorded sha256; otherwise a ThinkpixError naming the file."""
    d = Path(folder)
    try:
        record = json.loads((d / config).read_text())
    except (OSError, json.JSONDecodeError) as exc:
        raise ThinkpixError(f"{d / config}: not a readable {what} ({exc})") from None
    if not isinstance(record, dict) or record.get("format") != fmt:
        raise ThinkpixError(f"{d / config}: not a thinkpix {what}")
    if not (d / weights).is_file() or sha256_file(d / weights) != record.get("sha256"):
        raise ThinkpixError(f"{d / weights}: missing or corrupted weights (sha256 mismatch)")
    return record
