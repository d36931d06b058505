"""Weights folders on disk. Every folder thinkpix writes (model folders, adapters, feature networks,
checkpoints) ends with `checksums.json`: the sha256 of every other file in it, JSON included. One
place writes and verifies it, so every loader refuses a damaged, edited, truncated or incomplete
folder the same way, and refuses pickle files outright (safetensors and JSON only).

    python -m thinkpix.files seal DIR [DIR ...]     write checksums.json for folders you trust
    python -m thinkpix.files verify DIR [DIR ...]   check them
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import sys
from contextlib import contextmanager
from pathlib import Path

from .errors import ThinkpixError


def sha256_file(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


MANIFEST = "checksums.json"
MANIFEST_FORMAT = "thinkpix-checksums"
PICKLE_SUFFIXES = (".bin", ".pt", ".pth", ".ckpt", ".pkl", ".pickle")


def _listed_files(folder: Path) -> list[Path]:
    """Every file under `folder` but the manifest and hidden names (temporary files, OS litter)."""
    return sorted(p for p in folder.rglob("*") if p.is_file() and p.name != MANIFEST
                  and not any(part.startswith(".") for part in p.relative_to(folder).parts))


def _is_write_fault(exc: BaseException) -> bool:
    """A failed write of the machine (disk full, file-size limit, I/O error), from Python or safetensors."""
    return isinstance(exc, OSError) or type(exc).__name__ == "SafetensorError"


@contextmanager
def writing(path, *temporary):
    """Run a write of `path`; if it fails for the machine's reasons (a full disk, a file-size limit),
    remove the `temporary` files or folders it made and raise one ThinkpixError naming `path`
    (never a half-written temporary file left behind, never a traceback)."""
    try:
        yield
    except BaseException as exc:
        for t in temporary:
            t = Path(t)
            if t.is_dir() and not t.is_symlink():
                shutil.rmtree(t, ignore_errors=True)
            elif t.exists() or t.is_symlink():
                t.unlink(missing_ok=True)
        if not _is_write_fault(exc):
            raise
        reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc).split("I/O error: ")[-1]
        raise ThinkpixError(f"{path}: could not be written ({reason}); no partial file was kept") from None


def save_tensors(tensors: dict, path, metadata: dict | None = None) -> Path:
    """safetensors' save_file under a temporary name, renamed into place; a failed write is one
    ThinkpixError naming `path` and leaves no temporary file (see `writing`)."""
    from safetensors.torch import save_file

    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, tmp):
        save_file(tensors, str(tmp), metadata=metadata)
        os.replace(tmp, path)
    return path


def write_atomic(path, data: str | bytes) -> Path:
    """Write a file under a temporary name, flush it to disk, then rename it into place."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.tmp")
    with writing(path, tmp):
        with open(tmp, "wb") as f:
            f.write(data.encode() if isinstance(data, str) else data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    return path


def write_manifest(folder, sealed: tuple[str, ...] | None = None) -> Path:
    """Write `folder/checksums.json` over every file now in `folder` (call it last). `sealed`: the only
    files a loader reads (an adapter's weights and config); every other file (a model card, images) is
    recorded under `listed`, with its sha256 at save time for information, and may later be edited,
    removed or joined by others (see `verify_manifest`)."""
    d = Path(folder)
    files = {p.relative_to(d).as_posix(): sha256_file(p) for p in _listed_files(d)}
    record = {"format": MANIFEST_FORMAT, "files": files}
    if sealed is not None:
        record = {"format": MANIFEST_FORMAT, "files": {k: v for k, v in files.items() if k in sealed},
                  "listed": {k: v for k, v in files.items() if k not in sealed}}
    return write_atomic(d / MANIFEST, json.dumps(record, indent=1) + "\n")


def verify_manifest(folder, what: str, sealed: tuple[str, ...] | None = None) -> dict[str, str]:
    """Check `folder` against its checksums.json: every listed file present with its sha256, no
    unlisted file, no pickle file. -> {relative name: sha256}; a ThinkpixError naming the file
    otherwise. `sealed` (adapters): only these files (the ones the loader reads) must be in the list
    and match it; any other file may differ, be missing or be added (still no pickle file)."""
    d = Path(folder)
    if not d.is_dir():
        raise ThinkpixError(f"{d}: {what} folder not found")
    pickles = [p.relative_to(d).as_posix() for p in d.rglob("*") if p.suffix.lower() in PICKLE_SUFFIXES]
    if pickles:
        raise ThinkpixError(f"{d / pickles[0]}: pickle file in a {what}; thinkpix loads only safetensors and JSON")
    manifest = d / MANIFEST
    if not manifest.is_file():
        raise ThinkpixError(f"{d}: incomplete {what} (no {MANIFEST}); if you trust it, seal it with "
                            f"`python -m thinkpix.files seal {d}`")
    try:
        record = json.loads(manifest.read_text(encoding="utf-8"))
        files = record["files"] if record.get("format") == MANIFEST_FORMAT else None
    except (ValueError, UnicodeDecodeError, AttributeError, KeyError, TypeError):
        files = None
    if not isinstance(files, dict) or not all(isinstance(v, str) for v in files.values()):
        raise ThinkpixError(f"{manifest}: corrupted checksum list")
    if sealed is None and isinstance(record.get("listed"), dict):  # written with `sealed` (an adapter): the same
        sealed = tuple(files)
    for name in sealed or ():
        if name not in files:
            raise ThinkpixError(f"{d / name}: not sealed in {MANIFEST}; corrupted or edited {what}")
    for name, digest in sorted(files.items()):
        if sealed is not None and name not in sealed:
            continue  # a model card, an image: free to change
        path = d / name
        if ".." in Path(name).parts or Path(name).is_absolute():
            raise ThinkpixError(f"{manifest}: lists {name!r}, outside the folder")
        if not path.is_file():
            raise ThinkpixError(f"{path}: missing; incomplete {what}")
        if sha256_file(path) != digest:
            raise ThinkpixError(f"{path}: checksum mismatch; corrupted, truncated or edited {what}")
    extra = [] if sealed is not None else [
        p.relative_to(d).as_posix() for p in _listed_files(d) if p.relative_to(d).as_posix() not in files]
    if extra:
        raise ThinkpixError(f"{d / extra[0]}: not listed in {MANIFEST}; a {what} holds only the files it was saved with")
    return files


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


def read_json_object(path, what: str) -> dict:
    """A JSON object from `path`, or a ThinkpixError naming the file."""
    try:
        record = json.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, ValueError, UnicodeDecodeError) as exc:
        raise ThinkpixError(f"{path}: not a readable {what} ({exc})") from None
    if not isinstance(record, dict):
        raise ThinkpixError(f"{path}: not a {what} (expected a JSON object)")
    return record


def read_checked_record(folder, config: str, weights: str, fmt: str, what: str, loose: bool = False) -> dict:
    """The JSON record `folder/config`, after checking its format tag is `fmt` and that
    `folder/weights` exists with the recorded sha256; otherwise a ThinkpixError naming the file.
    `loose`: only `config` and `weights` are sealed (an adapter: its card and images may change)."""
    d = Path(folder)
    verify_manifest(d, what, sealed=(config, weights) if loose else None)
    record = read_json_object(d / config, what)
    if record.get("format") != fmt:
        raise ThinkpixError(f"{d / config}: not a thinkpix {what}")
    if not (d / weights).is_file() or sha256_file(d / weights) != record.get("sha256"):
        raise ThinkpixError(f"{d / weights}: missing or corrupted weights (sha256 mismatch)")
    return record


# An absolute path (or one starting with a tilde) where a command line, a JSON key or a value names a file.
_ABSOLUTE = re.compile(r"(?:(?<=^)|(?<=[\s=+,:(\[]))(~|/)[^\s,;+)\]]*")


def portable(obj, runs=None):
    """`obj` (a results record: str, dict, list, numbers) with every absolute path made relative, so
    a committed results file names no machine: paths under the current directory (the repository,
    where the benchmarks run) become relative to it, paths under the run folder `runs` (default:
    `$THINKPIX_RUNS`, else the home directory) relative to the run folder. Other strings are kept."""
    runs = Path(runs or os.environ.get("THINKPIX_RUNS") or Path.home()).expanduser().resolve()
    roots = [Path.cwd().resolve(), runs]

    def one(match: re.Match) -> str:
        path = Path(match.group(0)).expanduser()
        for root in roots:
            if path == root or root in path.parents:
                return path.relative_to(root).as_posix() or "."
        return match.group(0)

    if isinstance(obj, str):
        return _ABSOLUTE.sub(one, obj)
    if isinstance(obj, dict):
        return {portable(k, runs): portable(v, runs) for k, v in obj.items()}
    if isinstance(obj, (list, tuple)):
        return [portable(v, runs) for v in obj]
    return obj


def _main(argv: list[str]) -> int:
    if len(argv) < 2 or argv[0] not in ("seal", "verify"):
        print("usage: python -m thinkpix.files seal|verify DIR [DIR ...]", file=sys.stderr)
        return 2
    for folder in argv[1:]:
        if argv[0] == "seal":
            print(f"wrote {write_manifest(folder)}")
        else:
            try:
                print(f"{folder}: {len(verify_manifest(folder, 'folder'))} files verified")
            except ThinkpixError as exc:
                print(f"error: {exc}", file=sys.stderr)
                return 2
    return 0


if __name__ == "__main__":
    sys.exit(_main(sys.argv[1:]))
