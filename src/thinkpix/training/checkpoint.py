"""Atomic, verified checkpoints: tensors in safetensors, everything else in JSON. Never pickle.

Layout of a checkpoint folder `DIR/step_0000100/`:
  model.safetensors      trainable + EMA tensors (prefixed `param.` / `ema.`)
  optimizer.safetensors  optimizer state tensors, flattened (`state.<param>.<key>`)
  rng.safetensors        the global random generators' states (`training.seeding.rng_state`)
  state.json             step, config, optimizer scalars, the generators' scalar state
  checksums.json         sha256 of the three files above (`thinkpix.files`)
`DIR/latest` names the newest complete checkpoint. A folder is written under a temporary name,
flushed to disk and renamed, so a crash (even kill -9 mid-write) never leaves a half-written
checkpoint under a real name. Loading verifies every checksum, the step and finite tensors; a bad
checkpoint is refused with the name of the newest earlier one that verifies. Old checkpoints are
rotated by step number.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ThinkpixError
from ..files import read_json_object, verify_manifest, write_atomic, write_manifest, writing

STEP_DIR = re.compile(r"^step_(\d+)$")


def _flatten_optimizer(opt_state: dict) -> tuple[dict[str, torch.Tensor], dict]:
    tensors, scalars = {}, {"param_groups": opt_state["param_groups"], "state": {}}
    for pid, st in opt_state["state"].items():
        scalars["state"][str(pid)] = {}
        for key, val in st.items():
            if torch.is_tensor(val):
                tensors[f"state.{pid}.{key}"] = val.detach().cpu().contiguous()
            else:
                scalars["state"][str(pid)][key] = val
    return tensors, scalars


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], scalars: dict) -> dict:
    state: dict = {int(pid): dict(vals) for pid, vals in scalars["state"].items()}
    for name, val in tensors.items():
        _, pid, key = name.split(".", 2)
        state.setdefault(int(pid), {})[key] = val
    return {"state": state, "param_groups": scalars["param_groups"]}


def step_of(path: Path) -> int | None:
    match = STEP_DIR.match(Path(path).name)
    return int(match.group(1)) if match else None


def list_checkpoints(root: str | Path) -> list[Path]:
    """Checkpoint folders under `root`, oldest first by step number (never by name order)."""
    root = Path(root)
    found = [p for p in root.iterdir() if p.is_dir() and step_of(p) is not None] if root.is_dir() else []
    return sorted(found, key=step_of)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def save_checkpoint(
    root: str | Path,
    step: int,
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    state: dict,
    keep: int = 2,
    rng: tuple[dict[str, torch.Tensor], dict] | None = None,
) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    with writing(final, tmp):  # a full disk or a size limit: one line naming the checkpoint, no .tmp_* left
        tmp.mkdir()
        save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / "model.safetensors")
        meta = dict(state, step=step)
        if optimizer is not None:
            opt_tensors, opt_scalars = _flatten_optimizer(optimizer.state_dict())
            save_file(opt_tensors, tmp / "optimizer.safetensors")
            meta["optimizer"] = opt_scalars
        if rng is not None:  # (tensors, scalars) of `seeding.rng_state`
            save_file({k: v.detach().cpu().contiguous() for k, v in rng[0].items()}, tmp / "rng.safetensors")
            meta["rng"] = rng[1]
        (tmp / "state.json").write_text(json.dumps(meta, indent=1))
        write_manifest(tmp)
        for f in tmp.iterdir():
            _fsync(f)
        _fsync(tmp)
    if final.exists():  # the same step written by an abandoned branch of this run (see --resume_from_checkpoint)
        shutil.rmtree(final)
    os.replace(tmp, final)
    _fsync(root)
    write_atomic(root / "latest", final.name)
    rotate(root, keep, step)
    return final


def rotate(root: Path, keep: int, current: int) -> None:
    """Keep the `keep` newest checkpoints at or below step `current` (by step number); later ones
    (left by a run resumed from an earlier checkpoint) are not this rotation's to remove."""
    older = [p for p in list_checkpoints(root) if step_of(p) <= current]
    for old in older[:-keep]:
        shutil.rmtree(old, ignore_errors=True)


def verify_checkpoint(path: str | Path) -> dict:
    """Check a checkpoint folder's checksums and record; -> its state.json. ThinkpixError if bad."""
    path = Path(path)
    verify_manifest(path, "checkpoint")
    for name in ("model.safetensors", "state.json"):
        if not (path / name).is_file():
            raise ThinkpixError(f"{path / name}: missing; incomplete checkpoint")
    state = read_json_object(path / "state.json", "checkpoint state")
    if step_of(path) is not None and state.get("step") != step_of(path):
        raise ThinkpixError(f"{path / 'state.json'}: step {state.get('step')!r} does not match the folder name")
    return state


def latest_checkpoint(root: str | Path) -> Path | None:
    """The checkpoint `root/latest` names, verified; None when the folder holds no checkpoint.
    A pointer to a missing or damaged checkpoint is refused, naming the newest earlier good one."""
    root = Path(root)
    pointer = root / "latest"
    found = list_checkpoints(root)
    if not pointer.exists():
        if found:
            raise bad_checkpoint(root, f"{pointer}: missing while {len(found)} checkpoint(s) exist", found[-1])
        return None
    name = pointer.read_text(encoding="utf-8", errors="replace").strip()
    path = root / name
    if step_of(path) is None or not path.is_dir():
        raise bad_checkpoint(root, f"{pointer}: names {name!r}, which is not a checkpoint folder here", None)
    try:
        verify_checkpoint(path)
    except ThinkpixError as exc:
        raise bad_checkpoint(root, str(exc), path) from None
    return path


def previous_good(root: Path, before: Path | None) -> Path | None:
    """The newest checkpoint below `before` (all, when None) that verifies."""
    limit = step_of(before) if before is not None else None
    for candidate in reversed(list_checkpoints(root)):
        if limit is not None and step_of(candidate) >= limit:
            continue
        try:
            verify_checkpoint(candidate)
            return candidate
        except ThinkpixError:
            continue
    return None


def bad_checkpoint(root: Path, reason: str, bad: Path | None) -> ThinkpixError:
    good = previous_good(root, bad)
    if good is not None:
        return ThinkpixError(f"{reason}; refusing to resume from it. The newest good checkpoint is {good}: "
                             f"resume from it with --resume_from_checkpoint {good}")
    return ThinkpixError(f"{reason}; refusing to resume, and no earlier checkpoint verifies: "
                         "start over with --no_resume --overwrite")


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """-> (model tensors, optimizer state dict or None, state), after verifying the checkpoint."""
    path = Path(path)
    state = verify_checkpoint(path)
    try:
        tensors = load_file(path / "model.safetensors")
        opt = None
        if "optimizer" in state and (path / "optimizer.safetensors").exists():
            opt = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), state.pop("optimizer"))
    except (OSError, ValueError, KeyError, TypeError) as exc:
        raise ThinkpixError(f"{path}: not a readable checkpoint ({exc})") from None
    bad = [k for k, v in tensors.items() if v.is_floating_point() and not torch.isfinite(v).all()]
    if bad:
        raise ThinkpixError(f"{path / 'model.safetensors'}: tensors hold NaN or Inf ({', '.join(bad[:3])})")
    return tensors, opt, state


def load_rng(path: str | Path, state: dict) -> tuple[dict[str, torch.Tensor], dict] | None:
    """The random generators' state a (verified) checkpoint recorded, or None (a checkpoint written before
    they were recorded)."""
    path = Path(path)
    if "rng" not in state or not (path / "rng.safetensors").is_file():
        return None
    try:
        return load_file(path / "rng.safetensors"), state["rng"]
    except (OSError, ValueError) as exc:
        raise ThinkpixError(f"{path / 'rng.safetensors'}: not readable ({exc})") from None
