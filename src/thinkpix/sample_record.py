"""What a folder of sampled images is for, and how complete it is.

`sample` and `demo` write `OUT/sample_run.json` before the first image: the prompt rows' sha256,
the model's and adapter's checksums, seed, sampler settings, images per prompt and batch size.
A rerun into the same folder with the same record resumes (complete prompt folders are kept, the
rest redone); any difference is refused, naming the fields, so one folder never mixes two runs.
A folder that holds files but no record was not written by a thinkpix sampler and is refused
(nothing is ever deleted). A prompt folder is complete when all its images exist and its
metadata.jsonl, written last, equals its row; every file is written under a temporary name and
renamed, so a killed run leaves no half-written image under a real name.
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from .errors import ThinkpixError
from .files import MANIFEST, sha256_file, write_atomic

RECORD = "sample_run.json"
FORMAT = "thinkpix-sample-run"


def rows_digest(rows: list) -> str:
    return hashlib.sha256(json.dumps(rows, sort_keys=True).encode()).hexdigest()


def folder_checksum(folder) -> str | None:
    """A verified folder's identity: the sha256 of its checksums.json (None for no folder)."""
    if folder is None:
        return None
    manifest = Path(folder) / MANIFEST
    return sha256_file(manifest) if manifest.is_file() else str(folder)


def read_record(out) -> dict | None:
    path = Path(out) / RECORD
    if not path.is_file():
        return None
    try:
        record = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError):
        raise ThinkpixError(f"{path}: corrupted sample record (not JSON)") from None
    if not isinstance(record, dict) or record.get("format") != FORMAT:
        raise ThinkpixError(f"{path}: not a thinkpix sample record")
    if "think_steps" in record and "latent_steps" not in record:  # the key's earlier name
        record["latent_steps"] = record.pop("think_steps")
    return record


def open_output(out, record: dict, write: bool = True) -> bool:
    """Claim folder `out` for a sampling run described by `record`; -> True when resuming.
    Refuses a folder of another run, or one holding files that no thinkpix sampler wrote.
    `write=False` only checks (call it before loading anything, then again to claim)."""
    out = Path(out)
    record = dict(record, format=FORMAT)
    old = read_record(out)
    if old is None:
        if out.is_dir() and any(out.iterdir()):
            raise ThinkpixError(f"{out}: holds files but no {RECORD}, so it was not written by this sampler; "
                                "choose an empty or new folder (nothing is deleted)")
        if not write:
            return False
        out.mkdir(parents=True, exist_ok=True)
        write_atomic(out / RECORD, json.dumps(record, indent=1, sort_keys=True) + "\n")
        return False
    diff = sorted(k for k in set(old) | set(record) if old.get(k) != record.get(k))
    if diff:
        shown = ", ".join(f"{k}: folder {old.get(k)!r} vs now {record.get(k)!r}" for k in diff[:4])
        raise ThinkpixError(f"{out}: holds images of another run ({shown}); choose a new folder, or rerun "
                            "the same command to resume")
    return True


def prompt_folder_complete(folder: Path, row: dict | None, n: int, digits: int = 4) -> bool:
    """All `n` images (named with `digits` digits) present and metadata.jsonl (written last) equal to
    `row` (any row if None)."""
    meta = folder / "metadata.jsonl"
    if not meta.is_file() or not all((folder / "samples" / f"{k:0{digits}d}.png").is_file() for k in range(n)):
        return False
    if row is None:
        return True
    try:
        return json.loads(meta.read_text(encoding="utf-8")) == row
    except (ValueError, UnicodeDecodeError):
        return False
