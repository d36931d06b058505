"""The training loop shared by every objective: AdamW, warm-up + schedule, gradient clipping,
EMA, JSONL metrics, a progress bar, periodic sample grids and atomic, verified checkpoints that
resume to bit-identical weights. One run per out_dir (a lock), a run folder is never silently
restarted. Runs data-parallel under torchrun with no code change."""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import shutil
import time
from pathlib import Path

import torch
from torch import nn
from tqdm import tqdm

from ..errors import ThinkpixError
from ..files import write_atomic
from ..imaging import grid, save_png
from ..precision import autocast, resolve
from . import distributed
from .checkpoint import (bad_checkpoint, latest_checkpoint, list_checkpoints, load_checkpoint, load_rng,
                         save_checkpoint, verify_checkpoint)
from .config import TrainConfig, to_dict
from .ema import EMA
from .runlock import RunLock
from .request import check_request, recorded_request, request_in_folder, run_request, write_request
from .seeding import restore_rng, rng_state


def _metric_step(line: str) -> int | None:
    """The step of a metrics.jsonl line (a line without one counts as step 0); None if it is not a JSON object."""
    try:
        record = json.loads(line)
    except ValueError:
        return None
    if not isinstance(record, dict):
        return None
    step = record.get("step", 0)
    return step if isinstance(step, int) and not isinstance(step, bool) else None


def learning_rate(cfg: TrainConfig, step: int) -> float:
    o = cfg.optim
    if step < o.warmup_steps:
        return o.lr * (step + 1) / o.warmup_steps
    if o.schedule == "cosine":
        progress = (step - o.warmup_steps) / max(1, cfg.steps - o.warmup_steps)
        return o.lr * (o.min_lr_ratio + (1 - o.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress)))
    return o.lr


def adamw(groups: list[dict], cfg: TrainConfig, precision: str) -> torch.optim.AdamW:
    """AdamW of the config. The bf16 fast path takes torch's fused kernel (one pass over all tensors,
    much faster than the per-tensor loop at width 384; fp32 state all the same); fp32 keeps the
    per-tensor loop, whose numbers earlier fp32 runs were made with (the two differ in the last bits)."""
    return torch.optim.AdamW(groups, lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2),
                             weight_decay=cfg.optim.weight_decay, fused=True if precision == "bf16" else None)


class Trainer:
    def __init__(self, cfg: TrainConfig, objective: nn.Module, device: torch.device | None = None):
        if cfg.threads:
            torch.set_num_threads(cfg.threads)
        self.cfg = cfg
        self.dist = distributed.setup()
        if device is not None:  # e.g. --device cpu on a machine with a GPU
            self.dist = dataclasses.replace(self.dist, device=device)
        if cfg.batch_size % self.dist.world_size:
            raise ThinkpixError(f"batch_size {cfg.batch_size} must divide by the {self.dist.world_size} processes")
        self.objective = objective.to(self.dist.device)
        self.precision = resolve(cfg.precision, self.dist.device)  # fp32 | bf16 (autocast of the forward only)
        self.params = objective.trainable_parameters()  # name -> Parameter
        if cfg.grad_checkpointing:
            for module in objective.modules():
                if hasattr(module, "enable_gradient_checkpointing") and module is not objective:
                    module.enable_gradient_checkpointing()
        # optimiser groups (an objective may name several, each with a learning-rate multiplier)
        self.groups = (objective.parameter_groups() if hasattr(objective, "parameter_groups")
                       else [{"name": "all", "params": list(self.params), "lr_mult": 1.0}])
        self.optimizer = adamw(
            [{"params": [self.params[n] for n in g["params"]], "lr_mult": g["lr_mult"]} for g in self.groups],
            cfg, self.precision)
        self.ema = EMA(self.params, cfg.ema_decay)
        self.step = 0
        self.out = Path(cfg.out_dir)
        self.ckpt_dir = self.out / "checkpoints"
        self.lock = RunLock(self.out)
        self.module = objective
        if self.dist.world_size > 1:
            self.module = nn.parallel.DistributedDataParallel(objective, find_unused_parameters=True)

    # ---- checkpoints ----------------------------------------------------------------------------
    def state_tensors(self) -> dict[str, torch.Tensor]:
        out = {f"param.{k}": p for k, p in self.params.items()}
        out.update({f"ema.{k}": v for k, v in self.ema.shadow.items()})
        return out

    def save(self) -> None:
        if self.dist.is_main:
            save_checkpoint(
                self.ckpt_dir, self.step, self.state_tensors(), self.optimizer,
                {"config": to_dict(self.cfg), "request": self.request()}, keep=self.cfg.keep_checkpoints,
                rng=rng_state(self.dist.device),  # Gumbel noise, random depth: what the next steps draw
            )
        distributed.barrier()

    def request(self) -> dict:
        """What this run is (`training.request`): recorded in every checkpoint and OUT/run_request.json."""
        if getattr(self, "_request", None) is None:
            self._request = run_request(self.cfg, self.objective)
        return self._request

    def check_request(self, target: Path | None) -> None:
        """Refuse to resume checkpoint `target` (or, before the first checkpoint, the run recorded in the
        folder) if it was made with another request."""
        if target is not None:
            old, source = recorded_request(verify_checkpoint(target)), target / "state.json"
        else:
            old, source = request_in_folder(self.out), self.out / "run_request.json"
        check_request(self.out, old, self.request(), source)

    def resume_target(self, resume_from: str | Path | None = None) -> Path | None:
        """The checkpoint to resume from, verified (read-only): `resume_from`, else the latest one."""
        if not resume_from:
            return latest_checkpoint(self.ckpt_dir)
        verify_checkpoint(resume_from)
        return Path(resume_from)

    def resume(self, path: Path | None) -> bool:
        """Load checkpoint `path` (None: nothing to resume -> False)."""
        if path is None:
            return False
        try:
            tensors, opt_state, state = load_checkpoint(path)
        except ThinkpixError as exc:
            raise bad_checkpoint(path.parent, str(exc), path) from None
        mine = {k: tuple(v.shape) for k, v in self.state_tensors().items()}
        if {k: tuple(v.shape) for k, v in tensors.items()} != mine:
            raise ThinkpixError(f"{path}: a checkpoint of another model (its tensors do not fit this config's)")
        with torch.no_grad():
            for k, p in self.params.items():
                p.copy_(tensors[f"param.{k}"])
                self.ema.shadow[k].copy_(tensors[f"ema.{k}"])
        if opt_state is not None:
            self.optimizer.load_state_dict(opt_state)
        rng = load_rng(path, state)
        if rng is not None:
            restore_rng(*rng, self.dist.device)
        elif self.dist.is_main:
            print(f"{path}: written before checkpoints recorded the random generators; the steps after it draw "
                  "other random numbers (Gumbel noise, random depth) than the interrupted run would have")
        self.step = int(state["step"])
        return True

    # ---- the loop ---------------------------------------------------------------------------------
    def local_indices(self) -> range:
        per = self.cfg.batch_size // self.dist.world_size
        return range(self.dist.rank * per, (self.dist.rank + 1) * per)

    def train_step(self) -> tuple[float, dict]:
        lr = learning_rate(self.cfg, self.step)
        for group in self.optimizer.param_groups:
            group["lr"] = lr * group.get("lr_mult", 1.0)
        self.optimizer.zero_grad(set_to_none=True)
        with autocast(self.precision, self.dist.device):  # bf16: matmuls in bf16, weights and loss fp32
            loss, metrics = self.module(self.step, self.local_indices())
        loss.backward()
        if len(self.groups) > 1:  # e.g. the gradient reaching RSR's gates vs its experts, before clipping
            metrics = dict(metrics, **{f"grad_norm_{g['name']}": self._grad_norm(g["params"]) for g in self.groups})
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.optim.grad_clip)
        self.optimizer.step()
        self.step += 1
        self.ema.update(self.step)
        return loss.item(), dict(metrics, lr=lr, grad_norm=float(grad_norm))

    def _grad_norm(self, names: list[str]) -> float:
        grads = [self.params[n].grad for n in names if self.params[n].grad is not None]
        return float(torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))) if grads else 0.0

    @contextlib.contextmanager
    def ema_weights(self):
        """The EMA weights (those `export` writes) in place of the training weights, in eval mode."""
        backup = {k: p.detach().clone() for k, p in self.params.items()}
        self.ema.copy_to(self.params)
        self.objective.eval()
        try:
            yield
        finally:
            self.objective.train()
            with torch.no_grad():
                for k, p in self.params.items():
                    p.copy_(backup[k])

    def preview(self) -> None:
        if not (self.dist.is_main and hasattr(self.objective, "preview")):
            return
        with self.ema_weights(), autocast(self.precision, self.dist.device):
            images = self.objective.preview(self.step)
        save_png(grid(images, cols=8, upscale=2), self.out / "samples" / f"step_{self.step:07d}.png")

    def validate(self) -> dict:
        """The objective's validation record (e.g. val_loss, RSR instruments) of the EMA weights; {} if none."""
        if not (self.dist.is_main and self.cfg.validate_every and hasattr(self.objective, "validate")):
            return {}
        with self.ema_weights(), autocast(self.precision, self.dist.device):
            return dict(self.objective.validate(self.step))

    # ---- the run folder ------------------------------------------------------------------------
    def holds_run(self) -> list[str]:
        """What in out_dir shows an earlier run (checkpoints, metrics)."""
        found = [p.name for p in list_checkpoints(self.ckpt_dir)]
        return found + [n for n in ("metrics.jsonl",) if (self.out / n).exists()]

    def open_run(self, resume: bool, resume_from, overwrite: bool) -> None:
        """Check the request (read-only), lock out_dir, then resume, or start over only where nothing
        would be lost silently."""
        if resume_from and (overwrite or not resume):
            raise ThinkpixError(f"--resume-from and {'--overwrite' if overwrite else '--no-resume'} contradict "
                                "each other")
        resume = resume and not overwrite  # --overwrite starts the run over (--no-resume implied)
        earlier = [] if resume else self.holds_run()
        if earlier and not overwrite:
            raise ThinkpixError(f"{self.out}: holds a run ({', '.join(earlier[:4])}); resume it (drop "
                                "--no-resume) or pass --overwrite to start over, replacing it")
        target = self.resume_target(resume_from) if resume else None
        if resume:
            self.check_request(target)
        if self.dist.is_main:
            note = self.lock.acquire()
            if note:
                print(f"{self.lock.path}: {note}")
        try:
            if not resume:
                distributed.barrier()
                if earlier and self.dist.is_main:
                    self.remove_run()
            elif self.resume(target) and self.dist.is_main:
                print(f"resumed from step {self.step}")
                self.trim_metrics()
        except BaseException:
            self.close()
            raise

    def remove_run(self) -> None:
        """--overwrite: remove what a run wrote (its checkpoint folders, their temporaries, `latest`, the
        metrics), never another file kept in checkpoints/; a symlink is removed, not followed."""
        for path in list_checkpoints(self.ckpt_dir) + sorted(self.ckpt_dir.glob(".tmp_step_*")):
            if path.is_symlink() or not path.is_dir():
                path.unlink()
            else:
                shutil.rmtree(path)
        (self.ckpt_dir / "latest").unlink(missing_ok=True)
        (self.out / "metrics.jsonl").unlink(missing_ok=True)

    def trim_metrics(self) -> None:
        """Drop metric lines logged after the checkpoint a run resumes from (a crash leaves them)."""
        log = self.out / "metrics.jsonl"
        if log.exists():
            lines = log.read_text(encoding="utf-8", errors="replace").splitlines(keepends=True)
            records = [_metric_step(x) for x in lines]
            kept = [x for x, step in zip(lines, records) if step is not None and step <= self.step]
            unreadable = sum(1 for x, step in zip(lines, records) if x.strip() and step is None)
            if unreadable:  # a line cut short by a crash, or edited: dropped, said once
                print(f"{log}: dropped {unreadable} unreadable line(s) (not a JSON object with a step)")
            if len(kept) != len(lines):
                write_atomic(log, "".join(x if x.endswith("\n") else x + "\n" for x in kept))

    def close(self) -> None:
        """Release out_dir's lock (a crashed process releases it with its death)."""
        self.lock.release()

    def fit(self, resume: bool = True, stop_after: int | None = None, resume_from: str | Path | None = None,
            overwrite: bool = False) -> dict:
        """Train to `cfg.steps` (or stop early at step `stop_after`, e.g. to simulate a crash).
        resume: from the latest checkpoint (or `resume_from`); without it, a folder holding a run
        is refused unless `overwrite`. out_dir stays locked while it runs."""
        cfg = self.cfg
        end = cfg.steps if stop_after is None else min(stop_after, cfg.steps)
        self.open_run(resume, resume_from, overwrite)
        if self.dist.is_main:
            self.out.mkdir(parents=True, exist_ok=True)
            write_atomic(self.out / "config.json", json.dumps(to_dict(cfg), indent=1))
            write_request(self.out, self.request())
            for name, text in getattr(self.objective, "run_files", dict)().items():
                write_atomic(self.out / name, text)
        log = open(self.out / "metrics.jsonl", "a") if self.dist.is_main else None
        bar = tqdm(total=end, initial=self.step, disable=not self.dist.is_main, dynamic_ncols=True)
        window_loss, window_start, window_steps = 0.0, time.time(), 0
        last = {}
        self.objective.train()
        try:
            if self.step == 0 and log and (record := self.validate()):  # the starting point (the base, for adapters)
                log.write(json.dumps({"step": 0, **record}) + "\n")
            while self.step < end:
                loss, metrics = self.train_step()
                window_loss += loss
                window_steps += 1
                bar.update(1)
                record = {}
                if cfg.validate_every and (self.step % cfg.validate_every == 0 or self.step == end):
                    record = self.validate()  # joins this step's log line, or is one of its own
                if self.step % cfg.log_every == 0 or self.step == cfg.steps:
                    elapsed = time.time() - window_start
                    last = dict(
                        step=self.step, loss=window_loss / window_steps,
                        images_per_s=window_steps * cfg.batch_size / max(elapsed, 1e-9), **metrics,
                    )
                    bar.set_postfix(loss=f"{last['loss']:.4f}", img_s=f"{last['images_per_s']:.0f}")
                    window_loss, window_start, window_steps = 0.0, time.time(), 0
                    record = dict(last, **record)
                if log and record:
                    log.write(json.dumps({"step": self.step, **record}) + "\n")
                    log.flush()
                if self.step % cfg.ckpt_every == 0 or self.step == cfg.steps:
                    self.save()
                if self.step % cfg.sample_every == 0:
                    self.preview()
        finally:
            self.close()
            bar.close()
            if log:
                log.close()
        return last

    def export(self, path: str | Path) -> Path:
        """Write the EMA weights in the objective's own format (e.g. a model folder)."""
        path = Path(path)
        if self.dist.is_main:
            self.lock.acquire()
            try:
                self.ema.copy_to(self.params)
                self.objective.export(path)
            finally:
                self.close()
        distributed.barrier()
        return path
