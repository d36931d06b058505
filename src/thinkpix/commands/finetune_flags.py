"""A flags run of `thinkpix finetune` (see `thinkpix.commands.finetune`): any base behind one interface
(`models.pipeline_base`), your captioned images or the shapes stream, diffusers' training flags. Every
flag is read and checked here, before the base loads."""

from __future__ import annotations

from ..declarations import FLAG_SPECS, TOP_LEVEL_SPECS
from ._common import resume_kwargs
from .finetune import DEFAULTS, OLD_KEYS, TOP_LEVEL, read_flags_config


def flag_value(args, name: str):
    """A flag's value: as given (on the command line or in a flags YAML), else its default."""
    return getattr(args, name, DEFAULTS[name])


def apply_config(args, data: dict, path) -> None:
    """Flags-YAML values fill every flag not given on the command line (the command line wins)."""
    from ..deprecation import deprecated
    from ..errors import ThinkpixError

    for key, value in data.items():
        if key in OLD_KEYS:
            deprecated(f"{path}: key {key!r}", repr(OLD_KEYS[key]))
            key = OLD_KEYS[key]
        if key not in DEFAULTS and key not in TOP_LEVEL:
            raise ThinkpixError(f"{path}: unknown key {key!r}; keys are the finetune flags without '--' "
                                f"({', '.join([*TOP_LEVEL, *DEFAULTS][:12])}, ...)")
        value = (TOP_LEVEL_SPECS.get(key) or FLAG_SPECS[key]).check(value, f"{path}: key {key!r}")
        if key in TOP_LEVEL:
            if getattr(args, key, None) is None:
                setattr(args, key, value)
        elif not hasattr(args, key):
            setattr(args, key, value)


def train_steps(args) -> int:
    """--max_train_steps, or (when only --num_train_epochs is given) the steps of that many passes over
    --data: ceil(epochs * rows / (batch * accumulation)), as diffusers' scripts count them."""
    import math

    from ..errors import ThinkpixError
    from ..validation import integer

    epochs = integer(flag_value(args, "num_train_epochs"), "--num_train_epochs", 0, 10**6)
    if hasattr(args, "max_train_steps") or not epochs:
        return flag_value(args, "max_train_steps")
    data = flag_value(args, "data")
    if data == "shapes":
        raise ThinkpixError("--num_train_epochs: the shapes stream has no epochs; give --max_train_steps")
    from ..training.datasets import load_captioned

    rows = len(load_captioned(data, flag_value(args, "caption_column"), flag_value(args, "image_column")))
    per_step = flag_value(args, "train_batch_size") * flag_value(args, "gradient_accumulation_steps")
    return max(1, math.ceil(epochs * rows / max(1, per_step)))


def gate_multiplier(v: dict) -> float:
    """--gate_learning_rate as the gates' multiplier of --learning_rate (`finetune.gate_lr_mult`; 0: 1)."""
    if not v["gate_learning_rate"] or not v["learning_rate"]:
        return 1.0
    return v["gate_learning_rate"] / v["learning_rate"]


def build(args):
    """-> (TrainConfig, PipelineOptions) from the flags (and a --config YAML of flag names)."""
    from ..errors import ThinkpixError
    from ..training.config import config_from_dict
    from ..training.pipeline_objective import PipelineOptions

    data = read_flags_config(args.config)
    if data is not None:
        apply_config(args, data, args.config)
    if not args.pretrained:
        raise ThinkpixError("--pretrained is required: a bundled model, a model folder, a diffusers pipeline folder "
                            "or a cached hub id")
    if (args.method or "rsr") == "rsr" and not args.rsr:
        raise ThinkpixError("--rsr is required, e.g. --rsr layers=0,1,experts=2,latent_steps=2,rank=4")
    v = {name: flag_value(args, name) for name in DEFAULTS}
    names = set(PipelineOptions.__dataclass_fields__)
    opts = PipelineOptions(pretrained=args.pretrained, **{k: x for k, x in v.items() if k in names})
    opts.check()  # first: a bad --gate_learning_rate is named as given, not as the multiplier it becomes
    steps = train_steps(args)
    cfg = config_from_dict({
        "out_dir": args.output_dir or "runs/finetune", "steps": steps, "batch_size": v["train_batch_size"],
        "seed": v["seed"], "ema_decay": 0.0, "cond_dropout": v["caption_dropout"], "log_every": v["log_every"],
        "sample_every": v["validation_steps"] or steps + 1, "ckpt_every": v["checkpointing_steps"],
        "keep_checkpoints": v["checkpoints_total_limit"], "grad_checkpointing": v["gradient_checkpointing"],
        "precision": args.precision or "fp32",
        "optim": {"lr": v["learning_rate"], "warmup_steps": 0, "grad_clip": v["max_grad_norm"],
                  "weight_decay": v["adam_weight_decay"]},
        "finetune": {"base": args.pretrained, "method": args.method or "rsr", "rsr": args.rsr or "",
                     "lora_rank": args.rank or 0, "gate_lr_mult": gate_multiplier(v)}})
    return cfg, opts


def run_flags_run(args) -> int:
    import torch

    from ..models.pipeline_base import load_base, resolve_device
    from ..training import distributed
    from ..training.loop import Trainer
    from ..training.pipeline_objective import pipeline_finetune
    from ._common import check_export, finish_run

    cfg, opts = build(args)
    check_export(args.export, cfg.out_dir, args.overwrite)  # before the base loads
    fit = resume_kwargs(args)
    dist = distributed.setup()
    device = resolve_device(opts.device) if opts.device != "auto" else dist.device
    if device.type == "cuda" and device.index is None and dist.device.type == "cuda":
        device = dist.device  # one GPU per process under torchrun / accelerate
    base = load_base(opts.pretrained, str(device), opts.dtype)
    objective = pipeline_finetune(cfg, opts, base, rank=dist.rank)
    trainer = Trainer(cfg, objective, device=torch.device(device), options=opts)
    if trainer.dist.is_main:
        n = objective.adapter.num_parameters
        print(f"{cfg.finetune.method} on {base.name}: {n:,} trainable parameters; data {opts.data}; "
              f"resolution {objective.resolution}; device {device}, base dtype {base.transformer.dtype}, "
              f"mixed precision {opts.mixed_precision}")
    last = trainer.fit(**fit)  # validation images at the end too (opts.validate_at_end)
    out = trainer.export(args.export or f"{cfg.out_dir}/adapter")
    return finish_run(trainer, last, out, "adapter")
