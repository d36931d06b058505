"""The one training loop, for every objective: AdamW, warm-up + schedule, gradient clipping, EMA,
JSONL metrics, a progress bar, periodic previews (sample grids, validation images) and atomic,
verified checkpoints that resume to bit-identical weights. One run per out_dir (a lock), a run
folder is never silently restarted. Runs data-parallel under torchrun with no code change.
`TrainerOptions` (`training.options`) adds what diffusers' scripts offer: gradient accumulation,
fp16 with a gradient scaler, diffusers' schedulers, 8-bit AdamW, a tensorboard tracker."""

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
from .compiling import compile_blocks
from . import distributed
from .checkpoint import (bad_checkpoint, latest_checkpoint, list_checkpoints, load_checkpoint, load_rng,
                         save_checkpoint, verify_checkpoint)
from .config import TrainConfig, to_dict
from .ema import EMA
from .options import TrainerOptions, scheduler_factor
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


def adamw(groups: list[dict], cfg: TrainConfig, precision: str, eight_bit: bool = False) -> torch.optim.Optimizer:
    """AdamW of the config. The bf16 fast path takes torch's fused kernel (one pass over all tensors,
    much faster than the per-tensor loop at width 384; fp32 state all the same); fp32 keeps the
    per-tensor loop, whose numbers earlier fp32 runs were made with (the two differ in the last bits).
    `eight_bit`: bitsandbytes' AdamW8bit (checked installed by `TrainerOptions.check`)."""
    kwargs = dict(lr=cfg.optim.lr, betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=cfg.optim.weight_decay)
    if eight_bit:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ThinkpixError("--use_8bit_adam needs bitsandbytes: pip install 'thinkpix[bnb]'") from None
        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs, fused=True if precision == "bf16" else None)


class Trainer:
    """Trains `objective` (an `nn.Module` whose `forward(step, indices)` makes its own batch and returns
    (loss, metrics)) as `cfg` says, with `options` (`TrainerOptions`; default: the plain loop)."""

    def __init__(self, cfg: TrainConfig, objective: nn.Module, device: torch.device | None = None,
                 options: TrainerOptions | None = None):
        self.options = options = options or TrainerOptions()
        options.check()
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
        self.forward_precision = self.precision
        if hasattr(objective, "autocast_dtype"):  # the objective autocasts its own forward (--mixed_precision)
            self.forward_precision = "fp32"
            if self.precision == "bf16":  # bf16 (or a resolved auto) is --mixed_precision bf16
                if options.mixed_precision == "fp16":
                    raise ThinkpixError("--precision bf16/auto and --mixed_precision fp16 contradict each other")
                objective.autocast_dtype = torch.bfloat16
        self.scaler = torch.amp.GradScaler(self.dist.device.type, enabled=options.mixed_precision == "fp16")
        self.params = objective.trainable_parameters()  # name -> Parameter
        if cfg.grad_checkpointing:
            for module in objective.modules():
                if hasattr(module, "enable_gradient_checkpointing") and module is not objective:
                    module.enable_gradient_checkpointing()
        if cfg.compile:
            compile_blocks(objective)  # in place: parameter names and checkpoints unchanged
        # optimiser groups (an objective may name several, each with a learning-rate multiplier)
        self.groups = (objective.parameter_groups() if hasattr(objective, "parameter_groups")
                       else [{"name": "all", "params": list(self.params), "lr_mult": 1.0}])
        self.optimizer = adamw(
            [{"params": [self.params[n] for n in g["params"]], "lr_mult": g["lr_mult"]} for g in self.groups],
            cfg, self.precision, options.use_8bit_adam)
        self.lr_factor = (scheduler_factor(options.lr_scheduler, options.lr_warmup_steps, cfg.steps)
                          if options.lr_scheduler else None)
        self.writer = None  # the tracker (--report_to), opened by `fit` once it holds the run folder
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

    def learning_rate(self) -> float:
        """This step's learning rate before the groups' multipliers: the config's warm-up and schedule, or
        --learning_rate times the factor of the diffusers scheduler (`TrainerOptions.lr_scheduler`)."""
        if self.lr_factor is None:
            return learning_rate(self.cfg, self.step)
        return self.cfg.optim.lr * self.lr_factor(self.step)

    def train_step(self) -> tuple[float, dict]:
        lr = self.learning_rate()
        for group, spec in zip(self.optimizer.param_groups, self.groups):
            group["lr"] = lr * spec["lr_mult"]
        self.optimizer.zero_grad(set_to_none=True)
        acc, total = self.options.gradient_accumulation_steps, 0.0
        for k in range(acc):  # micro-step ids step * acc + k: each has its own deterministic batch
            last = k == acc - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.module, "no_sync") else self.module.no_sync()
            with sync:
                with autocast(self.forward_precision, self.dist.device):  # bf16: matmuls in bf16, loss fp32
                    loss, metrics = self.module(self.step * acc + k, self.local_indices())
                self.scaler.scale(loss / acc if acc > 1 else loss).backward()  # the scaler: fp16 only
            total += loss.item() / acc
        self.scaler.unscale_(self.optimizer)
        if len(self.groups) > 1:  # e.g. the gradient reaching RSR's gates vs its experts, before clipping
            metrics = dict(metrics, **{f"grad_norm_{g['name']}": self._grad_norm(g["params"]) for g in self.groups},
                           **{f"lr_{g['name']}": lr * g["lr_mult"] for g in self.groups})
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self.ema.update(self.step)
        if self.writer is not None:
            self.writer.add_scalar("train/loss", total, self.step)
            self.writer.add_scalar("train/lr", lr, self.step)
        return total, dict(metrics, lr=lr, grad_norm=float(grad_norm))

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
        """The objective's preview images (samples, validation images) of the EMA weights, as one grid in
        RUN/<objective.preview_folder, default samples>/step_NNNNNNN.png, and in the tracker."""
        if not (self.dist.is_main and hasattr(self.objective, "preview")):
            return
        with self.ema_weights(), autocast(self.forward_precision, self.dist.device):
            images = self.objective.preview(self.step)  # (n, H, W, 3) uint8, or None: nothing to show
        if images is None:
            return
        folder = getattr(self.objective, "preview_folder", "samples")
        upscale = 2 if images.shape[1] <= 64 else 1  # small images doubled for viewing
        path = self.out / folder / f"step_{self.step:07d}.png"
        save_png(grid(images, cols=min(8, len(images)), upscale=upscale), path)
        if self.writer is not None:
            self.writer.add_images(folder, images.permute(0, 3, 1, 2), self.step)

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
            raise ThinkpixError(f"--resume_from_checkpoint and {'--overwrite' if overwrite else '--no_resume'} "
                                "contradict each other")
        resume = resume and not overwrite  # --overwrite starts the run over (--no_resume implied)
        earlier = [] if resume else self.holds_run()
        if earlier and not overwrite:
            raise ThinkpixError(f"{self.out}: holds a run ({', '.join(earlier[:4])}); resume it (drop "
                                "--no_resume) or pass --overwrite to start over, replacing it")
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
        """Release out_dir's lock (a crashed process releases it with its death); close the tracker."""
        self.lock.release()
        if self.writer is not None:
            self.writer.close()
            self.writer = None

    def open_tracker(self) -> None:
        if self.options.report_to == "tensorboard" and self.dist.is_main and self.writer is None:
            from torch.utils.tensorboard import SummaryWriter

            self.writer = SummaryWriter(str(self.out / "logs"))

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
                (self.out / name).parent.mkdir(parents=True, exist_ok=True)
                write_atomic(self.out / name, text)
        log = open(self.out / "metrics.jsonl", "a") if self.dist.is_main else None
        bar = tqdm(total=end, initial=self.step, disable=not self.dist.is_main, dynamic_ncols=True)
        window_loss, window_start, window_steps = 0.0, time.time(), 0
        last = {}
        self.objective.train()
        try:
            self.open_tracker()
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
            if self.options.validate_at_end and self.step == cfg.steps and self.step % cfg.sample_every:
                self.preview()  # the end of training, off the preview grid
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
