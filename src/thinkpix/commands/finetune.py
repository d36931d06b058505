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

from .. import declarations as d
from ..declarations import FINETUNE_FLAGS
from ..deprecation import DeprecatedFlag, add_alias
from ..schema import option
from ._common import add_run_flags, check_export, finish_run, resume_kwargs

DEFAULT_CONFIG = "configs/finetune_rsr.yaml"  # shipped with the package (thinkpix.resources)

DEFAULTS = {flag.lstrip("-"): default for flag, _, default in FINETUNE_FLAGS}
# flags that name a trainer-config key (a trainer-config run takes these and refuses the other FLAGS)
CONFIG_KEYS = {"max_train_steps": "steps", "train_batch_size": "batch_size", "learning_rate": "optim.lr",
               "seed": "seed", "checkpointing_steps": "ckpt_every", "checkpoints_total_limit": "keep_checkpoints",
               "gradient_checkpointing": "grad_checkpointing", "log_every": "log_every",
               "max_grad_norm": "optim.grad_clip", "adam_weight_decay": "optim.weight_decay",
               "caption_dropout": "cond_dropout"}
TOP_LEVEL = tuple(d.TOP_LEVEL_SPECS)  # flags-YAML keys beside the FINETUNE_FLAGS
OLD_KEYS = {"out": "output_dir", "lora_rank": "rank"}  # flags-YAML keys' earlier names (deprecated)


class BaseFlag(DeprecatedFlag):
    """`--base BASE` (deprecated): `--pretrained BASE` in a trainer-config run (the default config)."""

    def __call__(self, parser, namespace, values, option_string=None):
        super().__call__(parser, namespace, values, option_string)
        namespace.config_run = True


def register(sub) -> None:
    from ..rsr.config import keys_help as rsr_keys_help
    from ..schema import keys_help
    from ..training.config import TrainConfig

    p = sub.add_parser("finetune", help="fine-tune an RSR (or LoRA) adapter on a frozen base", description=__doc__,
                       epilog=keys_help(TrainConfig, "trainer-config keys (a --config of trainer keys, or key=value "
                                                     "overrides)") + "\n\n" + rsr_keys_help(),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    option(p, "--pretrained", "--pretrained_model_name_or_path", dest="pretrained", spec=d.PRETRAINED, metavar="BASE",
           help="the base: a bundled model or `thinkpix train` folder, a diffusers pipeline folder, or a hub id in "
                "the local cache")
    p.add_argument("--base", dest="pretrained", action=BaseFlag, new="--pretrained (with a trainer config)",
                   default=argparse.SUPPRESS)
    option(p, "--rsr", spec=d.RSR_SPEC)
    option(p, "--method", spec=d.METHOD)
    option(p, "--rank", spec=d.RANK)
    add_alias(p, "--lora-rank", "--rank", "rank", type=int)
    option(p, "--output_dir", spec=d.FT_OUTPUT_DIR, metavar="DIR")
    add_alias(p, "--out", "--output_dir", "output_dir")
    option(p, "--export", spec=d.EXPORT_DIR, help="adapter (or model) folder (default OUTPUT_DIR/adapter)")
    add_run_flags(p)
    option(p, "--config", spec=d.CONFIG_FILE, help="YAML: flags without '--' (with a `pretrained` key), or a "
                                                  "trainer config (default configs/finetune_rsr.yaml)")
    option(p, "overrides", spec=d.OVERRIDE, nargs="*", help="trainer-config overrides, e.g. steps=300 optim.lr=5e-4")
    for flag, spec, default in FINETUNE_FLAGS:  # absent unless given: a trainer-config run sees what was asked
        option(p, flag, *d.FLAG_SPELLINGS.get(flag, ()), spec=spec, default=argparse.SUPPRESS,
               help=f"{spec.help} (default {default!r})")
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
