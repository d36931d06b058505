"""Every check on user input, in one place, run before any work starts.

`check_args(args)` is called by the CLI right after parsing, for every command: it applies the
checker of each option the command has (`OPTION_CHECKS`, by argparse `dest`), checks that every
output path could be written (`OUTPUTS`) and that every input file exists and is readable
(`INPUTS`), without writing or deleting anything. The reusable checkers (`integer`, `number`,
`text`, `output_path`, `image_size`, `config_ranges`) are also what the config loader, the metadata
reader and the evaluator call, so one wording and one set of limits hold everywhere. Every
failure is a `ThinkpixError` naming the option, file or line; the CLI prints it as one line and
exits 2.
"""

from __future__ import annotations

import math
import os
import re
import tempfile
import warnings
from pathlib import Path

from .errors import ThinkpixError

MAX_SEED = 2**32 - 1  # seeds are offset (seed + i * n + k) and fed to torch and numpy generators
MAX_IMAGE_SIDE = 4096  # evaluation refuses larger images from their header, before decoding
MAX_PROMPT_CHARS = 2000


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


def text(value, name: str, allow_empty: bool = True) -> str:
    """A string that is valid Unicode (a non-UTF-8 command-line word arrives as lone surrogates)."""
    if not isinstance(value, str):
        raise ThinkpixError(f"{name} must be a string, got {type(value).__name__} {value!r}")
    try:
        value.encode("utf-8")
    except UnicodeEncodeError:
        raise ThinkpixError(f"{name} is not valid UTF-8 text") from None
    if not allow_empty and not value.strip():
        raise ThinkpixError(f"{name} must not be empty")
    if len(value) > MAX_PROMPT_CHARS:
        raise ThinkpixError(f"{name} is {len(value)} characters long (at most {MAX_PROMPT_CHARS})")
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


# ---- command-line options, by argparse dest ---------------------------------------------------
def _positive(hi):
    return lambda v, n: integer(v, n, 1, hi)


def _non_negative(hi):
    return lambda v, n: integer(v, n, 0, hi)


OPTION_CHECKS = {
    "seed": lambda v, n: seed(v, n),
    "steps": _positive(10**9),
    "guidance": lambda v, n: number(v, n, 0.0, 100.0),
    "threads": _non_negative(1024),
    "limit": _non_negative(10**7),
    "per_task": _positive(100_000),
    "images_per_prompt": _positive(10_000),
    "batch_size": _positive(65_536),
    "num_images": _positive(4096),
    "upscale": _positive(64),
    "stop_after": _positive(10**9),
    "latent_steps": _non_negative(64),
    "lora_rank": _positive(4096),
    "rank": _positive(4096),
    "images_per_map": _positive(10_000),
    "per_cell": _positive(10_000),
    "distractors": _non_negative(16),
    "canvas": _positive(MAX_IMAGE_SIDE),
    "prompt": lambda v, n: text(v, n, allow_empty=False),
    "class_name": lambda v, n: text(v, n, allow_empty=False),
    "rsr": lambda v, n: text(v, n),
    "resolution": _non_negative(MAX_IMAGE_SIDE),
    "device": lambda v, n: _device(v, n),
    "dtype": lambda v, n: _choice(v, n, ("auto", "fp32", "bf16", "fp16")),
}
# (command, dest): files a command writes that must not exist unless --overwrite (never another's file)
NO_CLOBBER = {("generate", "out"), ("generate", "trace"), ("world", "out"), ("lake", "out")}
PRETRAINED_ONLY = {"resolution": 0, "device": "auto", "dtype": "auto"}  # sampling flags of a --pretrained base
SAMPLER_CHECKS = {"steps": _positive(10_000)}  # generate / sample: sampler steps, tighter than training steps
SAMPLER_COMMANDS = ("generate", "sample")
FLAG_NAMES = {"num_images": "-n", "class_name": "--class", "prompt": "PROMPT", "config": "CONFIG", "dir": "DIR"}
FLAG_NAMES.update(output_dir="--output_dir", resume_from_checkpoint="--resume_from_checkpoint")  # finetune: diffusers' names

# (command, dest) -> "file" | "dir": outputs checked for writability before any work.
OUTPUTS = {
    ("generate", "out"): "file", ("generate", "trace"): "file",
    ("sample", "out"): "dir", ("demo", "out"): "dir",
    ("world", "out"): "file",  # `world prompts`; `world render` is overridden below
    ("train", "export"): "dir", ("finetune", "export"): "dir", ("finetune", "output_dir"): "dir",
    ("lake", "out"): "file",  # `lake prompts` and `lake generate`; render, sample and finetune below
}
OUTPUT_OVERRIDES = {("world", "render", "out"): "dir", ("lake", "render", "out"): "dir",
                    ("lake", "sample", "out"): "dir", ("lake", "finetune", "out"): "dir"}
# (command, dest): input files that must exist and be readable.
INPUTS = {("sample", "prompts"), ("demo", "prompts"), ("world", "prompts"), ("train", "config"),
          ("finetune", "config")}


def _device(value, name: str) -> str:
    if not re.fullmatch(r"auto|cpu|cuda(:\d+)?", str(value)):
        raise ThinkpixError(f"{name} must be auto, cpu or cuda[:N], got {value!r}")
    return value


def _choice(value, name: str, choices: tuple) -> str:
    if value not in choices:
        raise ThinkpixError(f"{name} must be one of {', '.join(choices)}, got {value!r}")
    return value


def flag(dest: str) -> str:
    return FLAG_NAMES.get(dest, "--" + dest.replace("_", "-"))


def check_args(args) -> None:
    """Check every option of a parsed command line (see the module docstring)."""
    command = getattr(args, "command", None)
    checks = dict(OPTION_CHECKS, **(SAMPLER_CHECKS if command in SAMPLER_COMMANDS else {}))
    for dest, check in checks.items():
        value = getattr(args, dest, None)
        if value is not None:
            check(value, flag(dest))
    for dest in ("model", "adapter", "base", "pretrained", "resume_from", "resume_from_checkpoint", "dir"):
        value = getattr(args, dest, None)
        if value is not None:
            text(str(value), flag(dest))
    for (cmd, dest), kind in OUTPUTS.items():
        value = getattr(args, dest, None)
        if cmd == command and value is not None:
            action = getattr(args, "world_command", None) or getattr(args, "lake_command", None)
            kind = OUTPUT_OVERRIDES.get((cmd, action, dest), kind)
            output_path(value, flag(dest), kind)
            p = Path(value)
            if (cmd, dest) in NO_CLOBBER and kind == "file" and (p.exists() or p.is_symlink()) \
                    and not getattr(args, "overwrite", False):
                raise ThinkpixError(f"{flag(dest)} {p}: exists; pass --overwrite to replace it (nothing was written)")
    if command in SAMPLER_COMMANDS and not getattr(args, "pretrained", None):
        for dest, default in PRETRAINED_ONLY.items():
            if getattr(args, dest, default) != default:
                raise ThinkpixError(f"{flag(dest)} {getattr(args, dest)}: applies to a --pretrained base; a bundled "
                                    "--model samples on the CPU at its own size")
    for cmd, dest in INPUTS:
        value = getattr(args, dest, None)
        if cmd == command and value is not None:
            input_file(value, flag(dest))
    for value in getattr(args, "overrides", None) or []:
        text(value, "override")


# ---- training configs -------------------------------------------------------------------------
# key -> (checker arguments): ranges every training config must satisfy (see `config_ranges`).
CONFIG_NUMBERS = {
    "optim.lr": dict(lo=0.0, hi=10.0, lo_open=True),
    "optim.weight_decay": dict(lo=0.0, hi=10.0),
    "optim.beta1": dict(lo=0.0, hi=1.0, hi_open=True),
    "optim.beta2": dict(lo=0.0, hi=1.0, hi_open=True),
    "optim.min_lr_ratio": dict(lo=0.0, hi=1.0),
    "optim.grad_clip": dict(lo=0.0, lo_open=True),
    "ema_decay": dict(lo=0.0, hi=1.0, hi_open=True),
    "cond_dropout": dict(lo=0.0, hi=1.0, hi_open=True),
    "finetune.gate_lr_mult": dict(lo=0.0, hi=1e6, lo_open=True),
    "finetune.expert_lr_mult": dict(lo=0.0, hi=1e6, lo_open=True),
}
CONFIG_INTEGERS = {
    "steps": (1, 10**9), "batch_size": (1, 65_536), "seed": (0, MAX_SEED), "threads": (0, 1024),
    "log_every": (1, None), "sample_every": (1, None), "ckpt_every": (1, None), "keep_checkpoints": (1, 10_000),
    "optim.warmup_steps": (0, 10**9), "finetune.lora_rank": (0, 4096), "model.canvas": (1, MAX_IMAGE_SIDE),
    "data_pool": (0, 10**7), "validate_every": (0, None), "validation_samples": (1, 10**6),
}


def _get(cfg, dotted: str):
    for part in dotted.split("."):
        cfg = getattr(cfg, part)
    return cfg


def config_ranges(cfg) -> None:
    """Ranges of a training config's numbers (NaN and infinities refused), its data-mix weights,
    its text fields and that its out_dir could be written."""
    for key, limits in CONFIG_NUMBERS.items():
        number(_get(cfg, key), f"config key {key!r}", **limits)
    for key, (lo, hi) in CONFIG_INTEGERS.items():
        integer(_get(cfg, key), f"config key {key!r}", lo, hi)
    for key in ("out_dir", "data_mix", "finetune.base", "finetune.rsr", "model.autoencoder"):
        text(_get(cfg, key), f"config key {key!r}")
    if cfg.data_mix:
        from .worlds.shapes.stream import parse_mix

        try:
            weights = parse_mix(cfg.data_mix)
        except ValueError:
            raise ThinkpixError(f"config key 'data_mix': weights must be numbers, got {cfg.data_mix!r}") from None
        for mix_name, weight in weights.items():
            number(weight, f"config key 'data_mix' weight of {mix_name!r}", lo=0.0)
        if not any(w > 0 for w in weights.values()):
            raise ThinkpixError(f"config key 'data_mix': at least one weight must be > 0, got {cfg.data_mix!r}")
    output_path(cfg.out_dir, "config key 'out_dir'", "dir")
