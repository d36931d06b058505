"""The shared `Trainer` with what diffusers' LoRA scripts offer on top: gradient accumulation, mixed
precision (autocast; adapters stay fp32; fp16 with a gradient scaler), diffusers' learning-rate
schedulers, a separate learning rate for RSR's gates, optional 8-bit AdamW (bitsandbytes), optional
tensorboard logging, and validation images written to RUN/validation/. Checkpoints, exact resume,
the checkpoint limit, progress, metrics and DDP are the base Trainer's."""

from __future__ import annotations

import contextlib

import torch
from torch import nn

from ..errors import ThinkpixError
from ..imaging import grid, save_png
from .loop import Trainer
from .pipeline_objective import PipelineOptions


def lr_multiplier(opts: PipelineOptions, total_steps: int):
    """step -> factor of diffusers' scheduler `opts.lr_scheduler` (stateless, so resume needs no state)."""
    from diffusers.optimization import get_scheduler

    try:
        sched = get_scheduler(opts.lr_scheduler, torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0),
                              num_warmup_steps=opts.lr_warmup_steps, num_training_steps=total_steps)
    except ValueError as exc:
        raise ThinkpixError(f"--lr_scheduler {opts.lr_scheduler}: {exc}") from None
    return sched.lr_lambdas[0]


def make_optimizer(params: dict[str, nn.Parameter], cfg, opts: PipelineOptions) -> torch.optim.Optimizer:
    """AdamW (or bitsandbytes' AdamW8bit) with RSR's gates in their own group at `gate_learning_rate`."""
    gate_lr = opts.gate_learning_rate or cfg.optim.lr
    gates = [p for n, p in params.items() if ".gates." in n]
    rest = [p for n, p in params.items() if ".gates." not in n]
    groups = [g for g in ({"params": rest, "lr": cfg.optim.lr, "name": "adapter"},
                          {"params": gates, "lr": gate_lr, "name": "gates"}) if g["params"]]
    kwargs = dict(betas=(cfg.optim.beta1, cfg.optim.beta2), weight_decay=cfg.optim.weight_decay)
    if opts.use_8bit_adam:
        try:
            import bitsandbytes as bnb
        except ImportError:
            raise ThinkpixError("--use_8bit_adam needs bitsandbytes: pip install 'thinkpix[bnb]'") from None
        return bnb.optim.AdamW8bit(groups, **kwargs)
    return torch.optim.AdamW(groups, **kwargs)


class PipelineTrainer(Trainer):
    def __init__(self, cfg, objective, opts: PipelineOptions, device: torch.device | None = None):
        super().__init__(cfg, objective, device)
        self.opts = opts
        self.optimizer = make_optimizer(self.params, cfg, opts)
        self.base_lrs = [g["lr"] for g in self.optimizer.param_groups]
        self.lr_factor = lr_multiplier(opts, cfg.steps)
        if self.precision == "bf16":  # `precision` (bf16 or a resolved auto) is --mixed_precision bf16
            if opts.mixed_precision == "fp16":
                raise ThinkpixError("--precision bf16/auto and --mixed_precision fp16 contradict each other")
            objective.autocast_dtype = torch.bfloat16
        fp16 = opts.mixed_precision == "fp16"
        self.scaler = torch.amp.GradScaler(self.dist.device.type, enabled=fp16)
        self.writer = None
        if opts.report_to == "tensorboard" and self.dist.is_main:
            try:
                from torch.utils.tensorboard import SummaryWriter
            except ImportError:
                raise ThinkpixError("--report_to tensorboard needs tensorboard: "
                                    "pip install 'thinkpix[tensorboard]'") from None
            self.writer = SummaryWriter(str(self.out / "logs"))

    def train_step(self) -> tuple[float, dict]:
        factor = self.lr_factor(self.step)
        for group, lr in zip(self.optimizer.param_groups, self.base_lrs):
            group["lr"] = lr * factor
        self.optimizer.zero_grad(set_to_none=True)
        acc, total, metrics = self.opts.gradient_accumulation_steps, 0.0, {}
        for k in range(acc):  # micro-step ids step * acc + k: each has its own deterministic batch
            last = k == acc - 1
            sync = contextlib.nullcontext() if last or not hasattr(self.module, "no_sync") else self.module.no_sync()
            with sync:
                loss, metrics = self.module(self.step * acc + k, self.local_indices())
                self.scaler.scale(loss / acc).backward()
            total += loss.item() / acc
        self.scaler.unscale_(self.optimizer)
        grad_norm = torch.nn.utils.clip_grad_norm_(list(self.params.values()), self.cfg.optim.grad_clip)
        self.scaler.step(self.optimizer)
        self.scaler.update()
        self.step += 1
        self.ema.update(self.step)
        lrs = {f"lr_{g['name']}": g["lr"] for g in self.optimizer.param_groups}
        if self.writer is not None:
            self.writer.add_scalar("train/loss", total, self.step)
            for name, lr in lrs.items():
                self.writer.add_scalar(f"train/{name}", lr, self.step)
        return total, dict(metrics, lr=self.optimizer.param_groups[0]["lr"], **lrs, grad_norm=float(grad_norm))

    def preview(self) -> None:
        """Validation: the prompt's images at this step, as RUN/validation/step_NNNNNNN.png (+ tensorboard)."""
        if not (self.dist.is_main and self.opts.validation_prompt):
            return
        self.objective.eval()
        images = self.objective.validation_images()  # (n, H, W, 3) uint8
        self.objective.train()
        path = save_png(grid(images, cols=min(4, len(images))), self.out / "validation" / f"step_{self.step:07d}.png")
        (path.parent / "prompt.txt").write_text(self.opts.validation_prompt + "\n")
        if self.writer is not None:
            self.writer.add_images("validation", images.permute(0, 3, 1, 2), self.step)

    def close(self) -> None:
        """Release out_dir's lock (the base Trainer's) and close the tensorboard writer."""
        super().close()
        if self.writer is not None:
            self.writer.close()
            self.writer = None
