"""What a run folder is for: the request that made it, checked before a run is resumed.

A run's request is everything that shapes its weights apart from how long it runs and how it is
watched: the config without its run-control keys (`RUN_CONTROL`), the identity of every folder it
reads (the base model, an autoencoder, the data) rather than its path, and what the objective adds
(`objective.request()`: e.g. the resolution and data options of a `--pretrained` fine-tune). Every
checkpoint records it (`state.json`), and so does `OUT/run_request.json` from the start of a run. A
resume whose request differs is refused, listing the differences and the two ways out: another
folder (`--output_dir NEW` / `out_dir=NEW`) or `--overwrite` (start over in this one).

Identities: a folder sealed by thinkpix (`checksums.json`) is its manifest's sha256; any other folder
(a diffusers pipeline, a data set) a sha256 over its files' names and sizes, the full text of its
small JSON, YAML, CSV and text files (configs, captions, metadata) and the first and last 4 KiB of
every other file, so a different base or data set differs without reading every weight or image (an
edit inside a large file that keeps its size and both ends is not seen); a name that is no folder (a
hub id) is itself, except a data set's hub id, whose identity is the cached snapshot's revision (`data_identity`).
"""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from ..errors import ThinkpixError
from ..files import MANIFEST, read_json_object, sha256_file, write_atomic
from .config import TrainConfig, to_dict

RECORD = "run_request.json"
# how long a run goes on and how it is watched: may change between a run and its resume
RUN_CONTROL = ("out_dir", "steps", "threads", "log_every", "sample_every", "ckpt_every", "keep_checkpoints",
               "validate_every", "validation_samples", "grad_checkpointing")
FOLDER_KEYS = ("finetune.base", "model.autoencoder")  # compared by identity, not by path
TEXT_SUFFIXES = (".json", ".jsonl", ".yaml", ".yml", ".csv", ".txt", ".md")
TEXT_LIMIT = 1 << 20  # text files up to 1 MiB are read whole
ENDS = 4096  # bytes read at each end of any other file


def flatten(data: dict, prefix: str = "") -> dict:
    out = {}
    for key, value in data.items():
        if isinstance(value, dict):
            out.update(flatten(value, f"{prefix}{key}."))
        else:
            out[f"{prefix}{key}"] = value
    return out


def identity(name: str) -> str:
    """The identity of a folder named `name` (a path or a bundled model's name) as described above."""
    if not name:
        return ""
    path = Path(name)
    if not path.exists():
        from ..bundled import resolve_model

        try:
            path = resolve_model(name)
        except ThinkpixError:
            return name  # a hub id or another name: itself
        if not path.exists():
            return name
    if not path.is_dir():
        return f"file sha256:{sha256_file(path)}"
    if (path / MANIFEST).is_file():
        return f"sealed sha256:{sha256_file(path / MANIFEST)}"
    h = hashlib.sha256()
    for f in sorted(p for p in path.rglob("*") if p.is_file()):
        size = f.stat().st_size
        h.update(f"{f.relative_to(path).as_posix()}\0{size}\n".encode())
        if (f.suffix.lower() in TEXT_SUFFIXES and size <= TEXT_LIMIT) or size <= 2 * ENDS:
            h.update(f.read_bytes())
        else:
            with open(f, "rb") as fh:
                h.update(fh.read(ENDS))
                fh.seek(size - ENDS)
                h.update(fh.read(ENDS))
    return f"files sha256:{h.hexdigest()}"


def data_identity(name: str) -> str:
    """A data set's identity: a folder's as `identity`; a hub id of a dataset repository in the local Hugging Face
    cache, the snapshot revision the cache resolves it to (the commit named by its refs/main), so resuming after the
    cache moved to another revision is refused like resuming with another data set."""
    if not name or Path(name).exists():
        return identity(name)
    from .datasets import cached_hub_dataset

    return f"hub dataset {name} revision {cached_hub_dataset(name).name}"


def config_fields(config: dict) -> dict:
    """A config's fields that shape the run (dotted keys), run control and folder paths left out."""
    return {k: v for k, v in flatten(config).items() if k not in RUN_CONTROL and k not in FOLDER_KEYS}


def run_request(cfg: TrainConfig, objective=None) -> dict:
    """{"fields": what must match for a resume, "names": the folders' paths, for messages}."""
    config = to_dict(cfg)
    fields = config_fields(config)
    flat = flatten(config)
    names = {}
    for key in FOLDER_KEYS:
        if flat.get(key):
            fields[key] = identity(str(flat[key]))
            names[key] = str(flat[key])
    if objective is not None and hasattr(objective, "request"):
        extra = objective.request()  # {"fields": {...}, "names": {...}}
        fields.update(extra.get("fields", {}))
        names.update(extra.get("names", {}))
    return json.loads(json.dumps({"fields": fields, "names": names}, default=str))  # as read back from JSON


def recorded_request(state: dict) -> dict:
    """The request a checkpoint's state.json records; an older checkpoint's config stands in for it
    (its folders: the identity of what is at their paths now)."""
    if isinstance(state.get("request"), dict):
        return state["request"]
    config = state.get("config") if isinstance(state.get("config"), dict) else {}
    flat = flatten(config)
    folders = {k: str(flat[k]) for k in FOLDER_KEYS if flat.get(k)}
    return {"fields": dict(config_fields(config), **{k: identity(v) for k, v in folders.items()}), "names": folders}


def same_rsr_spec(a, b) -> bool:
    """Two `--rsr` specs that parse to the same config (`steps=2` and `latent_steps=2` are one request)."""
    import warnings

    from ..rsr.config import RSRConfig

    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")  # an old spelling in a recorded request is not the user's to fix
            return RSRConfig.parse(a).to_dict() == RSRConfig.parse(b).to_dict()
    except (ThinkpixError, TypeError, AttributeError):
        return False


def differences(old: dict, new: dict) -> list[str]:
    """'key: the run's X, now Y' for every field both requests hold that differs (a field only one holds,
    e.g. an option added since, is not a difference; RSR specs are compared parsed)."""
    a, b = old.get("fields", {}), new.get("fields", {})
    out = []
    for key in sorted(set(a) & set(b)):
        if a[key] != b[key] and not (key.endswith("rsr") and a[key] and b[key] and same_rsr_spec(a[key], b[key])):
            was, now = old.get("names", {}).get(key), new.get("names", {}).get(key)
            was_shown = f"{was!r} ({a[key]})" if was else repr(a[key])
            now_shown = f"{now!r} ({b[key]})" if now else repr(b[key])
            out.append(f"{key}: the run's {was_shown}, now {now_shown}")
    return out


def check_request(out: Path, old: dict | None, new: dict, source: Path) -> None:
    """Refuse (ThinkpixError) to resume the run of folder `out`, recorded in `source`, with another request."""
    if old is None:
        return
    diff = differences(old, new)
    if diff:
        shown = "; ".join(diff[:6]) + (f"; and {len(diff) - 6} more" if len(diff) > 6 else "")
        raise ThinkpixError(f"{out}: holds a run made with another request ({source.name}: {shown}); resuming it "
                            "would mix two runs. Start this run in a new folder (--output_dir NEW, or out_dir=NEW), or "
                            "replace that run with --overwrite")


def request_in_folder(out: Path) -> dict | None:
    path = Path(out) / RECORD
    return read_json_object(path, "run request") if path.is_file() else None


def write_request(out: Path, request: dict) -> None:
    write_atomic(Path(out) / RECORD, json.dumps(request, indent=1, sort_keys=True) + "\n")
