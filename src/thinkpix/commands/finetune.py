"""`thinkpix finetune --base MODEL --rsr layers=2,3,experts=2,latent_steps=2 [--method lora] [--config FILE] [key=value ...]`:
train only an adapter on a frozen base: RSR experts and gates, or (`--method lora`) the paper's SFT
baseline, a plain peft LoRA on the same blocks' image q/k/v with its rank matched to the RSR
spec's parameter count. `--method full` trains the base's whole transformer further instead (the
compute-matched baseline) and writes a model folder, OUT_DIR/model. Reuses the trainer: progress,
checkpoints, resume, torchrun DDP.
The adapter (its own safetensors + JSON) is written to OUT_DIR/adapter unless --export is given.
With --pretrained (a diffusers pipeline or bundled model) and --data, flags follow diffusers'
train_dreambooth_lora_sd3.py instead of a config file: see `thinkpix.commands.finetune_pipeline`."""

from __future__ import annotations

from ._common import add_run_flags, check_export, finish_run, precision_override, run_flags

DEFAULT_CONFIG = "configs/finetune_rsr.yaml"  # shipped with the package (thinkpix.resources)


def register(sub) -> None:
    p = sub.add_parser("finetune", help="fine-tune an RSR (or LoRA) adapter on a frozen base", description=__doc__)
    p.add_argument("--config", default=None, help="YAML config (default: configs/finetune_rsr.yaml)")
    p.add_argument("overrides", nargs="*", help="dotted overrides, e.g. steps=300 optim.lr=5e-4")
    p.add_argument("--base", default=None, help="base model folder or bundled name (default shapes-base)")
    p.add_argument("--rsr", default=None, help="RSR spec, e.g. layers=2,3,experts=2,latent_steps=2,rank=8")
    p.add_argument("--method", choices=("rsr", "lora", "full"), default=None,
                   help="rsr (default config), lora (the paper's SFT baseline), or full: the base's whole "
                        "transformer trained further (a compute-matched baseline; exports a model folder)")
    p.add_argument("--lora-rank", type=int, default=None, help="LoRA rank (default: parameter-matched to --rsr)")
    p.add_argument("--out", default=None, help="run folder (checkpoints, metrics)")
    p.add_argument("--export", default=None, help="adapter folder (default OUT/adapter)")
    add_run_flags(p)
    from .finetune_pipeline import add_flags

    add_flags(p)  # --pretrained BASE --data DATA ... (diffusers pipelines and your images)
    p.set_defaults(func=run)


def run(args) -> int:
    from .finetune_pipeline import read_pipeline_config

    if args.pretrained or read_pipeline_config(args.config) is not None:
        from .finetune_pipeline import run as run_pipeline

        return run_pipeline(args)
    from ..errors import ThinkpixError
    from ..training.config import load_config
    from ..training.loop import Trainer
    from ..training.objectives import build_objective

    config = args.config
    if config is None:
        from ..resources import resource

        config = resource(DEFAULT_CONFIG)
    flags = []
    for key, value in (("base", args.base), ("rsr", args.rsr), ("method", args.method), ("lora_rank", args.lora_rank)):
        if value is not None:
            flags.append(f"finetune.{key}={value}")
    if args.out:
        flags.append(f"out_dir={args.out}")
    cfg = load_config(config, [*args.overrides, *flags, *precision_override(args)])
    if cfg.finetune.method == "none":
        raise ThinkpixError("choose --method rsr or --method lora (or set finetune.method in the config)")
    check_export(args.export, cfg.out_dir, args.overwrite)  # before the base loads
    objective = build_objective(cfg)
    trainer = Trainer(cfg, objective)
    full = cfg.finetune.method == "full"
    if trainer.dist.is_main:
        total = sum(p.numel() for p in objective.model.transformer.parameters())
        n = total if full else objective.adapter.num_parameters
        print(f"{cfg.finetune.method}: {n:,} trainable parameters" + ("" if full else f" on a frozen base of {total - n:,}"))
    last = trainer.fit(**run_flags(args))
    out = trainer.export(args.export or f"{cfg.out_dir}/{'model' if full else 'adapter'}")
    return finish_run(trainer, last, out, "model" if full else "adapter")
