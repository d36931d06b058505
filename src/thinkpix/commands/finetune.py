"""`thinkpix finetune --pretrained BASE --rsr SPEC [flags]`: train only an adapter on a frozen base: RSR
experts and gates, or (`--method lora`) the paper's SFT baseline, a peft LoRA on the same blocks' image
q/k/v with its rank matched to the RSR spec's parameter count (or --rank). Flag names are those of
diffusers' train_dreambooth_lora_sd3.py where diffusers has the flag.

    thinkpix finetune --pretrained PIPELINE --data IMAGEFOLDER --resolution 512 \\
        --rsr layers=4,8,12,experts=2,latent_steps=2,rank=128,tau=5 --max_train_steps 2000 --output_dir RUN
    thinkpix finetune --pretrained shapes-base --rsr layers=2,3,experts=2,latent_steps=2 --output_dir RUN
    thinkpix finetune --pretrained shapes-base --config configs/finetune_rsr.yaml --output_dir RUN steps=1200

BASE: a bundled model (shapes-base, shapes-dit) or a `thinkpix train` folder, a diffusers pipeline folder
(StableDiffusion3Pipeline incl. SD3.5, FluxPipeline, DiTPipeline) or a hub id in the local cache.

Settings come from flags (a `--config` YAML with a `pretrained` key holds flags without "--"), or from a
trainer config: the shapes-world fine-tune of a bundled base with EMA, held-out loss and RSR's
instruments, chosen by a `--config` of trainer keys or `key=value` overrides (without --pretrained: the
defaults, configs/finetune_rsr.yaml, on its base); `--method full` (there only) trains the base's whole
transformer further, the compute-matched baseline, and writes a model folder, OUTPUT_DIR/model. In a trainer-config run the
flags that name a config key set it (--max_train_steps steps, --learning_rate optim.lr, ...); the others
are refused. The adapter goes to OUTPUT_DIR/adapter (or --export) with its base identity and a model
card; checkpoints to OUTPUT_DIR/checkpoints, resumed automatically; validation images to
OUTPUT_DIR/validation. Several GPUs: `torchrun --nproc_per_node N -m thinkpix.cli finetune ...`.
Every flag is checked before the base loads.
"""

from __future__ import annotations

import argparse

from ..deprecation import DeprecatedFlag, add_alias
from ._common import check_export, finish_run

DEFAULT_CONFIG = "configs/finetune_rsr.yaml"  # shipped with the package (thinkpix.resources)

FLAGS = [  # (flag, type, default, help); bools are store_true; defaults apply to a flags run
    ("--data", str, "shapes", "imagefolder (images + metadata.jsonl/csv), a dataset saved with save_to_disk, or "
                              "'shapes' (the shapes-world stream)"),
    ("--caption_column", str, "text", "caption column (DiT bases: a class name or index)"),
    ("--image_column", str, "image", "image column of a saved dataset"),
    ("--resolution", int, 0, "training resolution in pixels (0: the base's default)"),
    ("--center_crop", bool, False, "centre crop (default: random crop)"),
    ("--random_flip", bool, False, "random horizontal flip"),
    ("--caption_dropout", float, 0.1, "share of captions replaced by '' (guidance)"),
    ("--train_batch_size", int, 4, "batch size per optimiser micro-step (all processes together)"),
    ("--max_train_steps", int, 500, "optimiser steps (wins over --num_train_epochs)"),
    ("--num_train_epochs", int, 0, "passes over --data (0: use --max_train_steps)"),
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
    ("--validation_prompt", str, "", "prompt rendered into OUTPUT_DIR/validation every --validation_steps"),
    ("--num_validation_images", int, 4, "images per validation"),
    ("--validation_steps", int, 0, "validate every N steps (0: at the end only)"),
    ("--validation_inference_steps", int, 20, "sampler steps of the validation images"),
    ("--validation_guidance", float, 3.0, "guidance scale of the validation images"),
    ("--cache_latents", bool, False, "encode every image once (one crop and flip per image)"),
    ("--cache_text_embeddings", bool, False, "encode every caption once"),
    ("--max_sequence_length", int, 77, "T5 tokens (SD3, FLUX)"),
    ("--report_to", str, "none", "none | tensorboard (needs thinkpix[tensorboard]); logs in OUTPUT_DIR/logs"),
    ("--seed", int, 0, "data order, noise, timesteps"),
    ("--device", str, "auto", "auto | cpu | cuda"),
    ("--dtype", str, "auto", "base weights: auto (bf16 on GPU, else fp32) | fp32 | bf16 | fp16"),
    ("--log_every", int, 10, "metrics line every N steps"),
]
DEFAULTS = {flag.lstrip("-"): default for flag, _, default, _ in FLAGS}
TYPES = {flag.lstrip("-"): typ for flag, typ, _, _ in FLAGS}
# flags that name a trainer-config key (a trainer-config run takes these and refuses the other FLAGS)
CONFIG_KEYS = {"max_train_steps": "steps", "train_batch_size": "batch_size", "learning_rate": "optim.lr",
               "seed": "seed", "checkpointing_steps": "ckpt_every", "checkpoints_total_limit": "keep_checkpoints",
               "gradient_checkpointing": "grad_checkpointing", "log_every": "log_every",
               "max_grad_norm": "optim.grad_clip", "adam_weight_decay": "optim.weight_decay",
               "caption_dropout": "cond_dropout"}
TOP_LEVEL = ("pretrained", "rsr", "method", "rank", "output_dir")  # flags-YAML keys beside the FLAGS
OLD_KEYS = {"out": "output_dir", "lora_rank": "rank"}  # flags-YAML keys' earlier names (deprecated)


class BaseFlag(DeprecatedFlag):
    """`--base BASE` (deprecated): `--pretrained BASE` in a trainer-config run (the default config)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.config_run = True


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune an RSR (or LoRA) adapter on a frozen base", description=__doc__,
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--pretrained", "--pretrained_model_name_or_path", dest="pretrained", default=None,
                   metavar="BASE", help="the base: a bundled model or `thinkpix train` folder, a diffusers pipeline "
                                        "folder, or a hub id in the local cache")
    p.add_argument("--base", dest="pretrained", action=BaseFlag, new="--pretrained (with a trainer config)",
                   default=argparse.SUPPRESS)
    p.add_argument("--rsr", default=None, help="RSR spec, e.g. layers=2,3,experts=2,latent_steps=2,rank=8 (LoRA: "
                                                "its blocks and parameter count)")
    p.add_argument("--method", choices=("rsr", "lora", "full"), default=None,
                   help="rsr (default), lora (the paper's SFT baseline), or full: the base's whole transformer "
                        "trained further (a trainer-config run; exports a model folder)")
    p.add_argument("--rank", type=int, default=None, help="LoRA rank (default: parameter-matched to --rsr)")
    add_alias(p, "--lora-rank", "--rank", "rank", type=int)
    p.add_argument("--output_dir", default=None, metavar="DIR",
                   help="run folder: checkpoints, metrics, validation, the adapter (default runs/finetune)")
    add_alias(p, "--out", "--output_dir", "output_dir")
    p.add_argument("--export", default=None, help="adapter (or model) folder (default OUTPUT_DIR/adapter)")
    p.add_argument("--resume_from_checkpoint", default=None, metavar="latest|DIR",
                   help="the checkpoint to resume from (default: latest, when the run folder holds one)")
    add_alias(p, "--resume-from", "--resume_from_checkpoint", "resume_from_checkpoint")
    p.add_argument("--no_resume", action="store_true",
                   help="start from scratch (refused in a folder holding a run unless --overwrite)")
    add_alias(p, "--no-resume", "--no_resume", "no_resume", nargs=0, const=True)
    p.add_argument("--overwrite", action="store_true",
                   help="start over: replace the run already in the folder; a resume with another request (base, "
                        "data, settings) is refused without it")
    p.add_argument("--precision", choices=("fp32", "bf16", "auto"), default=None,
                   help="compute precision: fp32 | bf16 autocast | auto (see docs/training.md, Precision)")
    p.add_argument("--config", default=None, help="YAML: flags without '--' (with a `pretrained` key), or a "
                                                  "trainer config (default configs/finetune_rsr.yaml)")
    p.add_argument("overrides", nargs="*", help="trainer-config overrides, e.g. steps=300 optim.lr=5e-4")
    for flag, typ, default, help_text in FLAGS:  # absent unless given: a trainer-config run sees what was asked
        if typ is bool:
            p.add_argument(flag, action="store_true", default=argparse.SUPPRESS, help=help_text)
        else:
            p.add_argument(flag, type=typ, default=argparse.SUPPRESS, help=f"{help_text} (default {default!r})")
    p.set_defaults(func=run, config_run=False)


def read_flags_config(path) -> dict | None:
    """The YAML `path` as {flag name: value} if it is a flags config (it has `pretrained`), else None.
    Refused like every config file: not UTF-8, not one mapping, empty or comment-only, a key twice."""
    from pathlib import Path

    from ..training.config import read_config_file

    if not path or not Path(path).is_file():
        return None
    data = read_config_file(path)
    return data if "pretrained" in data else None


def resume_kwargs(args) -> dict:
    """Trainer.fit's resume arguments of --resume_from_checkpoint latest|DIR, --no_resume, --overwrite."""
    from ..errors import ThinkpixError

    chosen = args.resume_from_checkpoint
    if chosen == "latest" and (args.no_resume or args.overwrite):
        raise ThinkpixError(f"--resume_from_checkpoint latest and {'--overwrite' if args.overwrite else '--no_resume'} "
                            "contradict each other")
    return dict(resume=not args.no_resume, resume_from=None if chosen in (None, "latest") else chosen,
                overwrite=args.overwrite)


def is_config_run(args) -> bool:
    """A trainer-config run: a --config of trainer keys, key=value overrides, --method full, --base (deprecated),
    or no base named at all (the config's own, shapes-base by default)."""
    flags_yaml = read_flags_config(args.config) is not None
    return bool(args.config_run or args.overrides or args.method == "full" or (args.config and not flags_yaml)
                or (not args.pretrained and not flags_yaml))


def run(args) -> int:
    if is_config_run(args):
        return run_config(args)
    from .finetune_flags import run_flags_run

    return run_flags_run(args)


# ---- a trainer-config run ------------------------------------------------------------------------------
def config_overrides(args) -> list[str]:
    """The command line as trainer-config overrides (flags win over the config file); a flag without a
    config key is refused."""
    from ..errors import ThinkpixError

    given = [name for name in DEFAULTS if hasattr(args, name)]
    foreign = [f"--{name}" for name in given if name not in CONFIG_KEYS]
    if foreign:
        raise ThinkpixError(f"{', '.join(foreign)}: not a setting of a trainer-config run (--config of trainer keys, "
                            "key=value overrides or --base); give it in a flags run (--pretrained BASE without them)")
    flags = [f"{CONFIG_KEYS[name]}={getattr(args, name)}" for name in given]
    for key, value in (("base", args.pretrained), ("rsr", args.rsr), ("method", args.method),
                       ("lora_rank", args.rank)):
        if value is not None:
            flags.append(f"finetune.{key}={value}")
    if args.output_dir:
        flags.append(f"out_dir={args.output_dir}")
    if args.precision:
        flags.append(f"precision={args.precision}")
    return flags


def run_config(args) -> int:
    from ..errors import ThinkpixError
    from ..training.config import load_config
    from ..training.loop import Trainer
    from ..training.objectives import build_objective

    config = args.config
    if config is None:
        from ..resources import resource

        config = resource(DEFAULT_CONFIG)
    cfg = load_config(config, [*args.overrides, *config_overrides(args)])
    if cfg.finetune.method == "none":
        raise ThinkpixError("choose --method rsr or --method lora (or set finetune.method in the config)")
    check_export(args.export, cfg.out_dir, args.overwrite)  # before the base loads
    fit = resume_kwargs(args)
    objective = build_objective(cfg)
    trainer = Trainer(cfg, objective)
    full = cfg.finetune.method == "full"
    if trainer.dist.is_main:
        total = sum(p.numel() for p in objective.model.transformer.parameters())
        n = total if full else objective.adapter.num_parameters
        print(f"{cfg.finetune.method}: {n:,} trainable parameters"
              + ("" if full else f" on a frozen base of {total - n:,}"))
    last = trainer.fit(**fit)
    out = trainer.export(args.export or f"{cfg.out_dir}/{'model' if full else 'adapter'}")
    return finish_run(trainer, last, out, "model" if full else "adapter")
