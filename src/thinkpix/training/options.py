"""What a run may ask of the `Trainer` beyond its config's plain loop, with the names of diffusers' training
scripts: gradient accumulation, mixed precision with a gradient scaler, diffusers' learning-rate
schedulers, 8-bit AdamW, a tensorboard tracker and validation at the end of training. The defaults
are the plain loop (the config's warm-up and schedule, fp32 AdamW, no tracker). `check` runs before
any model loads: a bad scheduler name or a missing optional package costs no load."""

from __future__ import annotations

import importlib.util
from dataclasses import dataclass

import torch
from torch import nn

from ..errors import ThinkpixError

MIXED_PRECISION = {"no": None, "bf16": torch.bfloat16, "fp16": torch.float16}


@dataclass
class TrainerOptions:
    gradient_accumulation_steps: int = 1  # micro-batches per optimiser step
    mixed_precision: str = "no"  # no | bf16 | fp16: the objective's autocast; fp16 adds a gradient scaler
    lr_scheduler: str = ""  # "": the config's warm-up + optim.schedule; else a diffusers scheduler name
    lr_warmup_steps: int = 0  # warm-up steps of the diffusers scheduler
    use_8bit_adam: bool = False  # bitsandbytes' AdamW8bit (thinkpix[bnb])
    report_to: str = "none"  # none | tensorboard (thinkpix[tensorboard]), logs in RUN/logs
    validate_at_end: bool = False  # a preview after the last step, also off the sample_every grid

    def check(self) -> None:
        """Refuse a bad value (each option checked by its flag's declaration, `declarations.FINETUNE_FLAGS`), or
        an option whose optional package is missing, with its flag's name."""
        from ..declarations import check_flag_values

        check_flag_values(self)
        if self.lr_scheduler:
            from diffusers.optimization import SchedulerType

            known = [s.value for s in SchedulerType]
            if self.lr_scheduler not in known:
                raise ThinkpixError(f"--lr_scheduler {self.lr_scheduler!r}: not a diffusers scheduler; one of "
                                    f"{', '.join(known)}")
        if self.report_to == "tensorboard" and importlib.util.find_spec("tensorboard") is None:
            raise ThinkpixError("--report_to tensorboard needs tensorboard: pip install 'thinkpix[tensorboard]'")
        if self.use_8bit_adam and importlib.util.find_spec("bitsandbytes") is None:
            raise ThinkpixError("--use_8bit_adam needs bitsandbytes: pip install 'thinkpix[bnb]'")


def scheduler_factor(name: str, warmup_steps: int, total_steps: int):
    """step -> factor of diffusers' scheduler `name` (stateless, so a resume needs no scheduler state)."""
    from diffusers.optimization import get_scheduler

    try:
        sched = get_scheduler(name, torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0),
                              num_warmup_steps=warmup_steps, num_training_steps=total_steps)
    except ValueError as exc:
        raise ThinkpixError(f"--lr_scheduler {name}: {exc}") from None
    return sched.lr_lambdas[0]
