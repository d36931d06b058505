"""The reusable checks on user input: numbers (`integer`, `number`), text, seeds, output paths that could
be written (`output_path`, links refused), input files, image sizes read from headers, memory asked for.

What each option and config key is (type, range, unit, meaning) is declared once in `thinkpix.schema` /
`thinkpix.declarations` and the config dataclasses; those declarations call these checks. Every failure is
a `ThinkpixError` naming the option, file or line; the CLI prints it as one line and exits 2.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from .errors import ThinkpixError
from .spec import MAX_PROMPT_CHARS, text  # noqa: F401 (checks on text live with Spec)

MAX_SEED = 2**32 - 1  # seeds are offset (seed + i * n + k) and fed to torch and numpy generators
MAX_IMAGE_SIDE = 4096  # evaluation refuses larger images from their header, before decoding


def integer(value, name: str, lo: int | None = None, hi: int | None = None) -> int:
    """`value` as an int in [lo, hi] (bools and non-integral floats refused)."""
    if isinstance(value, bool) or not isinstance(value, int):
        if isinstance(value, float) and math.isfinite(value) and value.is_integer():
            value = int(value)
        else:
            raise ThinkpixError(f"{name} must be an integer, got {value!r}")
    if lo is not None and value < lo or hi is not None and value > hi:
        raise ThinkpixError(f"{name} must be in [{lo if lo is not None else '-inf'}, "
                            f"{hi if hi is not None else 'inf'}], got {value}")
    return value


def number(value, name: str, lo: float | None = None, hi: float | None = None, lo_open: bool = False,
           hi_open: bool = False) -> float:
    """`value` as a finite float in the interval (open ends with lo_open / hi_open)."""
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise ThinkpixError(f"{name} must be a number, got {value!r}")
    value = float(value)
    if not math.isfinite(value):
        raise ThinkpixError(f"{name} must be a finite number, got {value}")
    below = lo is not None and (value <= lo if lo_open else value < lo)
    above = hi is not None and (value >= hi if hi_open else value > hi)
    if below or above:
        left, right = ("(" if lo_open else "["), (")" if hi_open else "]")
        raise ThinkpixError(f"{name} must be in {left}{lo if lo is not None else '-inf'}, "
                            f"{hi if hi is not None else 'inf'}{right}, got {value}")
    return value


def seed(value, name: str = "--seed") -> int:
    return integer(value, name, 0, MAX_SEED)


def safe_name(name: str) -> str:
    """A name from a file (a class name, a tag) as one harmless path component: letters, digits,
    '-' and '_' only, never empty, never '.' or '..'."""
    cleaned = re.sub(r"[^A-Za-z0-9_-]+", "_", str(name)).strip("_")[:80]
    return cleaned or "_"


def output_path(path, name: str, kind: str) -> Path:
    """Refuse an output `path` (kind "file" or "dir") that could not be written, without writing:
    a folder where a file is wanted (or the reverse), a file used as a parent folder, a place
    where no file can be created (read-only, /proc, ...). Probes the nearest existing folder with
    a temporary file that is removed at once."""
    text(str(path), name)
    p = Path(path)
    if not str(path).strip():
        raise ThinkpixError(f"{name}: empty; name a {'folder' if kind == 'dir' else 'file'} (an empty path would "
                            "write into the working directory)")
    if kind == "dir" and p.resolve() == Path(p.resolve().anchor):
        raise ThinkpixError(f"{name} {p}: the filesystem root; name a folder of its own")
    if kind == "file" and p.is_dir():
        raise ThinkpixError(f"{name} {p}: is a folder, expected a file name")
    if kind == "dir" and p.exists() and not p.is_dir():
        raise ThinkpixError(f"{name} {p}: exists and is not a folder")
    if kind == "file" and p.is_symlink():
        raise ThinkpixError(f"{name} {p}: a symbolic link; thinkpix never writes through a link (remove it or "
                            "choose another name)")
    if kind == "dir" and p.is_dir():
        refuse_links(p, name)
    if kind == "file" and (p.exists() or p.is_symlink()) and not p.is_file():
        raise ThinkpixError(f"{name} {p}: not a regular file (a device, FIFO, socket or broken link); thinkpix "
                            "writes only regular files")
    if kind == "file" and p.exists() and not os.access(p, os.W_OK):
        raise ThinkpixError(f"{name} {p}: file is not writable")
    anchor = p if p.is_dir() else p.parent
    while not anchor.exists() and anchor != anchor.parent:
        anchor = anchor.parent
    if not anchor.is_dir():
        raise ThinkpixError(f"{name} {p}: {anchor} is a file, not a folder")
    try:
        fd, probe = tempfile.mkstemp(prefix=".thinkpix-probe-", dir=anchor)
        os.close(fd)
        os.unlink(probe)
    except OSError as exc:
        raise ThinkpixError(f"{name} {p}: cannot write in {anchor} ({exc.strerror or exc})") from None
    return p


def refuse_links(folder: Path, name: str) -> None:
    """Refuse an output folder holding a symbolic link anywhere inside (a prompt folder, an image, a
    checkpoint): writing or deleting through it would reach files outside the folder. The walk never
    follows a link."""
    for root, dirs, files in os.walk(folder):  # os.walk does not descend into linked folders
        for entry in dirs + files:
            path = Path(root) / entry
            if path.is_symlink():
                raise ThinkpixError(f"{name} {folder}: holds a symbolic link, {path}; thinkpix never writes or "
                                    "deletes through a link (remove it, or choose a new folder)")


def available_memory() -> int | None:
    """Bytes of memory the machine can give now (Linux MemAvailable; else free pages), None if unknown."""
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        pass
    try:
        return os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):
        return None


def memory_for(nbytes: int, what: str) -> None:
    """Refuse, before allocating, a request for more memory than the machine has available now."""
    free = available_memory()
    if free is not None and nbytes > free:
        raise ThinkpixError(f"{what} needs {nbytes / 2**30:.1f} GiB of memory, the machine has "
                            f"{free / 2**30:.1f} GiB available; ask for fewer or smaller images")


def input_file(path, name: str) -> Path:
    p = Path(text(str(path), name))
    if not p.is_file():
        raise ThinkpixError(f"{name} {p}: file not found")
    if not os.access(p, os.R_OK):
        raise ThinkpixError(f"{name} {p}: file is not readable")
    return p


def image_size(path: Path, max_side: int = MAX_IMAGE_SIDE) -> tuple[int, int]:
    """(width, height) from an image file's header only (PIL reads no pixel data here); refuses
    unreadable files and images with a side above `max_side` before anything is decoded."""
    from PIL import Image, UnidentifiedImageError

    try:
        with warnings.catch_warnings():  # the size is judged below, not by PIL's bomb warning
            warnings.simplefilter("ignore", Image.DecompressionBombWarning)
            with Image.open(path) as im:  # lazy: parses the header, decodes nothing
                w, h = im.size
    except (OSError, ValueError, UnidentifiedImageError, Image.DecompressionBombError) as exc:
        raise ThinkpixError(f"{path}: cannot read image ({exc})") from None
    if max(w, h) > max_side:
        raise ThinkpixError(f"{path}: image is {w}x{h}, larger than {max_side}x{max_side}; refused before decoding")
    return w, h
