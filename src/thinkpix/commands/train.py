"""`thinkpix train CONFIG [key.sub=value ...]`: train a model from scratch (autoencoder or
text-to-image MMDiT). Resumes from the run folder's latest checkpoint. Under
`torchrun --nproc_per_node N` it trains data-parallel with no change."""

from __future__ import annotations

import argparse

from .. import declarations as d
from ..schema import keys_help, option
from ..deprecation import add_aliases
from ._common import add_run_flags, check_export, finish_run, precision_override, resume_kwargs


def register(sub) -> None:
    from ..rsr.config import keys_help as rsr_keys_help
    from ..training.config import TrainConfig

    p = sub.add_parser("train", help="train a model from a YAML config", description=__doc__,
                       epilog=keys_help(TrainConfig, "config keys (in the YAML file or as dotted overrides)") + "\n\n"
                       + rsr_keys_help("keys of an RSR spec (model.rsr=layers=2,3,...)"),
                       formatter_class=argparse.RawDescriptionHelpFormatter)
    option(p, "config", spec=d.CONFIG_FILE, metavar="CONFIG")
    option(p, "overrides", spec=d.OVERRIDE, nargs="*", help="dotted overrides, e.g. optim.lr=5e-4 steps=2000")
    add_run_flags(p)
    add_aliases(p, option(p, "--stop_after", spec=d.STOP_AFTER, metavar="STEP"), "--stop-after")
    option(p, "--export", spec=d.EXPORT_DIR, help="folder for the final EMA weights (default OUT_DIR/final)")
    p.set_defaults(func=run)


def run(args) -> int:
    from ..training.config import load_config
    from ..training.loop import Trainer
    from ..training.objectives import build_objective

    cfg = load_config(args.config, [*args.overrides, *precision_override(args)])
    check_export(args.export, cfg.out_dir, args.overwrite)  # before anything trains
    trainer = Trainer(cfg, build_objective(cfg))
    last = trainer.fit(stop_after=args.stop_after, **resume_kwargs(args))
    out = trainer.export(args.export or f"{cfg.out_dir}/final")
    return finish_run(trainer, last, out, "weights")
