"""Atomic checkpoints: tensors in safetensors, everything else in JSON. Never pickle.

Layout of a checkpoint folder `DIR/step_000100/`:
  model.safetensors      trainable + EMA tensors (prefixed `model.` / `ema.`)
  optimizer.safetensors  optimizer state tensors, flattened (`state.<param>.<key>`)
  state.json             step, config, optimizer scalars, metrics
`DIR/latest` names the newest complete checkpoint. A folder is written under a temporary
name and renamed, so a crash never leaves a half-written checkpoint behind.
"""

from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from safetensors.torch import load_file, save_file

from ..errors import ThinkpixError


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


def save_checkpoint(
    root: str | Path,
    step: int,
    tensors: dict[str, torch.Tensor],
    optimizer: torch.optim.Optimizer | None,
    state: dict,
    keep: int = 2,
) -> Path:
    root = Path(root)
    root.mkdir(parents=True, exist_ok=True)
    final = root / f"step_{step:07d}"
    tmp = root / f".tmp_step_{step:07d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir()
    save_file({k: v.detach().cpu().contiguous() for k, v in tensors.items()}, tmp / "model.safetensors")
    meta = dict(state, step=step)
    if optimizer is not None:
        opt_tensors, opt_scalars = _flatten_optimizer(optimizer.state_dict())
        save_file(opt_tensors, tmp / "optimizer.safetensors")
        meta["optimizer"] = opt_scalars
    (tmp / "state.json").write_text(json.dumps(meta, indent=1))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    latest_tmp = root / ".latest.tmp"
    latest_tmp.write_text(final.name)
    os.replace(latest_tmp, root / "latest")
    for old in sorted(root.glob("step_*"))[:-keep]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def latest_checkpoint(root: str | Path) -> Path | None:
    pointer = Path(root) / "latest"
    if not pointer.exists():
        return None
    path = Path(root) / pointer.read_text().strip()
    return path if path.exists() else None


def load_checkpoint(path: str | Path) -> tuple[dict[str, torch.Tensor], dict | None, dict]:
    """-> (model tensors, optimizer state dict or None, state)."""
    path = Path(path)
    try:
        tensors = load_file(path / "model.safetensors")
        state = json.loads((path / "state.json").read_text())
    except (OSError, ValueError) as exc:
        raise ThinkpixError(f"{path}: not a readable checkpoint ({exc})") from exc
    opt = None
    if "optimizer" in state and (path / "optimizer.safetensors").exists():
        opt = _unflatten_optimizer(load_file(path / "optimizer.safetensors"), state.pop("optimizer"))
    return tensors, opt, state
