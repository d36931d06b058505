"""`thinkpix finetune --pretrained BASE --data DATA ...`: adapter fine-tuning on any base, with the flag
names of diffusers' train_dreambooth_lora_sd3.py where the meaning is the same.

    thinkpix finetune --pretrained PIPELINE --data IMAGEFOLDER --caption_column text --resolution 512 \\
        --rsr layers=4,8,12,experts=2,latent_steps=2,rank=128,tau=5 --max_train_steps 2000 --out RUN

BASE: a diffusers pipeline folder (StableDiffusion3Pipeline incl. SD3.5, FluxPipeline, DiTPipeline),
a hub id already in the local cache, or a bundled thinkpix text-to-image model. The adapter is
written to RUN/adapter (with its base identity and a model card); checkpoints to RUN/checkpoints
(resumed automatically); validation images to RUN/validation. Several GPUs: `accelerate launch
--multi_gpu -m thinkpix.cli finetune ...` or `torchrun --nproc_per_node N -m thinkpix.cli finetune ...`.
"""

from __future__ import annotations

FLAGS = [  # (flag, type, default, help); bools are store_true
    ("--data", str, "shapes", "imagefolder (images + metadata.jsonl/csv), a dataset saved with save_to_disk, or "
                              "'shapes' (the shapes-world stream)"),
    ("--caption_column", str, "text", "caption column (DiT bases: a class name or index)"),
    ("--image_column", str, "image", "image column of a saved dataset"),
    ("--resolution", int, 0, "training resolution in pixels (0: the base's default)"),
    ("--center_crop", bool, False, "centre crop (default: random crop)"),
    ("--random_flip", bool, False, "random horizontal flip"),
    ("--caption_dropout", float, 0.1, "share of captions replaced by '' (guidance)"),
    ("--train_batch_size", int, 4, "batch size per optimiser micro-step (all processes together)"),
    ("--max_train_steps", int, 500, "optimiser steps"),
    ("--gradient_accumulation_steps", int, 1, "micro-batches per optimiser step"),
    ("--learning_rate", float, 1e-4, "adapter learning rate"),
    ("--gate_learning_rate", float, 0.0, "RSR gates' learning rate (0: --learning_rate)"),
    ("--lr_scheduler", str, "constant", "diffusers scheduler: constant, constant_with_warmup, linear, cosine, ..."),
    ("--lr_warmup_steps", int, 0, "warm-up steps of the scheduler"),
    ("--max_grad_norm", float, 1.0, "gradient clipping"),
    ("--adam_weight_decay", float, 0.0, "AdamW weight decay"),
    ("--use_8bit_adam", bool, False, "bitsandbytes' AdamW8bit (needs thinkpix[bnb])"),
    ("--mixed_precision", str, "no", "no | bf16 | fp16: autocast of the base; adapters stay fp32"),
    ("--gradient_checkpointing", bool, False, "recompute the transformer's blocks in backward"),
    ("--weighting_scheme", str, "logit_normal", "SD3 timestep density / loss weighting: logit_normal, sigma_sqrt, "
                                                "mode, cosmap, none"),
    ("--logit_mean", float, 0.0, "logit_normal mean"),
    ("--logit_std", float, 1.0, "logit_normal std"),
    ("--mode_scale", float, 1.29, "scale of the 'mode' scheme"),
    ("--checkpointing_steps", int, 500, "save a checkpoint every N steps"),
    ("--checkpoints_total_limit", int, 2, "checkpoints kept"),
    ("--validation_prompt", str, "", "prompt rendered into RUN/validation every --validation_steps"),
    ("--num_validation_images", int, 4, "images per validation"),
    ("--validation_steps", int, 0, "validate every N steps (0: at the end only)"),
    ("--validation_inference_steps", int, 20, "sampler steps of the validation images"),
    ("--validation_guidance", float, 3.0, "guidance scale of the validation images"),
    ("--cache_latents", bool, False, "encode every image once (one crop and flip per image)"),
    ("--cache_text_embeddings", bool, False, "encode every caption once"),
    ("--max_sequence_length", int, 77, "T5 tokens (SD3, FLUX)"),
    ("--report_to", str, "none", "none | tensorboard (needs thinkpix[tensorboard]); logs in RUN/logs"),
    ("--seed", int, 0, "data order, noise, timesteps"),
    ("--device", str, "auto", "auto | cpu | cuda"),
    ("--dtype", str, "auto", "base weights: auto (bf16 on GPU, else fp32) | fp32 | bf16 | fp16"),
    ("--log_every", int, 10, "metrics line every N steps"),
]


def add_flags(p) -> None:
    """Flags of the --pretrained path (the bundled path's --config/overrides stay as they are)."""
    p.add_argument("--pretrained", "--pretrained_model_name_or_path", dest="pretrained", default=None,
                   help="a diffusers pipeline folder, a cached hub id, or a bundled model: the base to fine-tune")
    for flag, typ, default, help_text in FLAGS:
        if typ is bool:
            p.add_argument(flag, action="store_true", help=help_text)
        else:
            p.add_argument(flag, type=typ, default=default, help=f"{help_text} (default {default!r})")


TOP_LEVEL = ("pretrained", "rsr", "method", "lora_rank", "out")  # config keys beside the FLAGS


def read_pipeline_config(path) -> dict | None:
    """The YAML `path` as {flag name: value} if it is a --pretrained config (it has `pretrained`), else None.
    Refused like every config file: not UTF-8, not one mapping, empty or comment-only, a key twice."""
    from pathlib import Path

    from ..training.config import read_config_file

    if not path or not Path(path).is_file():
        return None
    data = read_config_file(path)
    return data if "pretrained" in data else None


def apply_config(args, data: dict, path) -> None:
    """Config values fill every flag left at its default (flags given on the command line win)."""
    from ..errors import ThinkpixError

    defaults = {flag.lstrip("-"): default for flag, _, default, _ in FLAGS}
    types = {flag.lstrip("-"): typ for flag, typ, _, _ in FLAGS}
    for key, value in data.items():
        if key not in defaults and key not in TOP_LEVEL:
            raise ThinkpixError(f"{path}: unknown key {key!r}; keys are the finetune flags without '--' "
                                f"({', '.join([*TOP_LEVEL, *defaults][:12])}, ...)")
        typ = types.get(key, str)
        if key == "lora_rank":
            typ = int
        ok = (isinstance(value, bool) if typ is bool else isinstance(value, str) if typ is str
              else isinstance(value, int) and not isinstance(value, bool) if typ is int
              else isinstance(value, (int, float)) and not isinstance(value, bool))
        if not ok:
            raise ThinkpixError(f"{path}: key {key!r} must be {'true or false' if typ is bool else typ.__name__}, "
                                f"got {value!r}")
        if getattr(args, key, None) in (None, defaults.get(key), False):
            setattr(args, key, value)


def build(args):
    """-> (TrainConfig, PipelineOptions) from the flags (and a --config YAML of flag names)."""
    from ..errors import ThinkpixError
    from ..training.config import config_from_dict
    from ..training.pipeline_objective import PipelineOptions

    data = read_pipeline_config(args.config)
    if data is not None:
        apply_config(args, data, args.config)
    elif args.config or args.overrides:
        raise ThinkpixError("--pretrained takes flags (or a --config YAML of flag names with a `pretrained` key), "
                            "not a trainer config or key=value overrides")
    if (args.method or "rsr") == "rsr" and not args.rsr:
        raise ThinkpixError("--rsr is required, e.g. --rsr layers=0,1,experts=2,latent_steps=2,rank=4")
    steps = args.max_train_steps
    cfg = config_from_dict({
        "out_dir": args.out or "runs/finetune", "steps": steps, "batch_size": args.train_batch_size,
        "seed": args.seed, "ema_decay": 0.0, "cond_dropout": args.caption_dropout, "log_every": args.log_every,
        "sample_every": args.validation_steps or steps + 1, "ckpt_every": args.checkpointing_steps,
        "keep_checkpoints": args.checkpoints_total_limit, "grad_checkpointing": args.gradient_checkpointing,
        "precision": getattr(args, "precision", None) or "fp32",
        "optim": {"lr": args.learning_rate, "warmup_steps": 0, "grad_clip": args.max_grad_norm,
                  "weight_decay": args.adam_weight_decay},
        "finetune": {"base": args.pretrained, "method": args.method or "rsr", "rsr": args.rsr or "",
                     "lora_rank": args.lora_rank or 0}})
    names = set(PipelineOptions.__dataclass_fields__)
    opts = PipelineOptions(**{k: v for k, v in vars(args).items() if k in names})
    opts.check()
    return cfg, opts


def run(args) -> int:
    import torch

    from ..models.pipeline_base import load_base, resolve_device
    from ..training import distributed
    from ..training.loop import Trainer
    from ..training.pipeline_objective import PipelineFinetune
    from ._common import check_export, finish_run, run_flags

    cfg, opts = build(args)
    check_export(args.export, cfg.out_dir, args.overwrite)  # before the base loads
    dist = distributed.setup()
    device = resolve_device(opts.device) if opts.device != "auto" else dist.device
    if device.type == "cuda" and device.index is None and dist.device.type == "cuda":
        device = dist.device  # one GPU per process under torchrun / accelerate
    base = load_base(opts.pretrained, str(device), opts.dtype)
    objective = PipelineFinetune(cfg, opts, base, rank=dist.rank)
    trainer = Trainer(cfg, objective, device=torch.device(device), options=opts)
    if trainer.dist.is_main:
        n = objective.adapter.num_parameters
        print(f"{cfg.finetune.method} on {base.name}: {n:,} trainable parameters; data {opts.data}; "
              f"resolution {objective.resolution}; device {device}, base dtype {base.transformer.dtype}, "
              f"mixed precision {opts.mixed_precision}")
    last = trainer.fit(**run_flags(args))  # validation images at the end too (opts.validate_at_end)
    out = trainer.export(args.export or f"{cfg.out_dir}/adapter")
    return finish_run(trainer, last, out, "adapter")
