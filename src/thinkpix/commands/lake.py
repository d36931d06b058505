"""`thinkpix lake ...`: the lake world (FrozenLake-style path drawing), see docs/lake.md.

    thinkpix lake prompts --out data/eval/lake.jsonl --per_cell 8 --seed 0   # evaluation maps
    thinkpix lake render --prompts data/eval/lake.jsonl --out outputs/lake_gt  # ground-truth solutions
    thinkpix lake evaluate outputs/lake_gt [--json]                           # exact path evaluator
    thinkpix lake train configs/lake_base.yaml out_dir=RUN seed=0             # train / resume
    thinkpix lake finetune --pretrained RUN/final --rsr layers=1,2,latent_steps=4 --output_dir FT  # adapter
    thinkpix lake sample --model RUN/final --prompts data/eval/lake.jsonl --out OUT [--latent_steps T]
    thinkpix lake generate --model RUN/final --map 'S.H.,..H.,....,H..G' --latent_steps 4 --out grid.png
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .. import declarations as d
from ..deprecation import add_alias, add_aliases
from ..schema import option
from ._common import add_precision_flag, finish_run, precision_record, sampling_precision


def keys_epilog() -> str:
    """--help of `lake train` and `lake finetune`: every config key (the lake.* section included) and every key of
    an RSR spec, with type, range, unit, default and meaning."""
    from ..rsr.config import keys_help as rsr_keys_help
    from ..schema import keys_help
    from ..worlds.lake.config import LakeTrainConfig

    return (keys_help(LakeTrainConfig, "config keys (in the YAML file or as dotted overrides)") + "\n\n"
            + rsr_keys_help("keys of an RSR spec (--rsr, lake.rsr=layers=1,2,...)"))


def register(sub) -> None:
    p = sub.add_parser("lake", help="the lake world: maps, renders, exact path evaluator, training, sampling",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    lake = p.add_subparsers(dest="lake_command", required=True, metavar="ACTION")

    pr = lake.add_parser("prompts", help="write an evaluation set of maps (metadata JSONL)")
    option(pr, "--out", spec=d.JSONL_OUT, required=True)
    option(pr, "--overwrite", spec=d.OVERWRITE, help="replace an existing --out file")
    add_aliases(pr, option(pr, "--per_cell", spec=d.LAKE_PER_CELL, default=8), "--per-cell")
    option(pr, "--sizes", spec=d.LAKE_SIZES, default="4-8")
    option(pr, "--target", spec=d.LAKE_TARGET, default="path")
    option(pr, "--seed", spec=d.SEED, default=0, help="seed of the maps")
    pr.set_defaults(func=run_prompts)

    rd = lake.add_parser("render", help="render ground-truth solutions in GenEval's folder layout")
    option(rd, "--prompts", spec=d.PROMPTS_FILE, required=True, help="metadata JSONL (e.g. data/eval/lake.jsonl)")
    option(rd, "--out", spec=d.OUT_DIR, required=True)
    option(rd, "--canvas", spec=d.CANVAS, default=32)
    option(rd, "--overwrite", spec=d.OVERWRITE, help="replace prompt folders already in OUT")
    rd.set_defaults(func=run_render)

    ev = lake.add_parser("evaluate", help="score a folder of lake solutions with the exact path evaluator")
    option(ev, "dir", spec=d.INPUT_DIR, metavar="DIR")
    option(ev, "--json", spec=d.SWITCH, help="print one JSON summary instead of a table")
    ev.set_defaults(func=run_evaluate)

    tr = lake.add_parser("train", help="train a lake model from a YAML config (resumes from checkpoints)",
                         epilog=keys_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    option(tr, "config", spec=d.CONFIG_FILE, metavar="CONFIG")
    option(tr, "overrides", spec=d.OVERRIDE, nargs="*", help="dotted overrides, e.g. seed=1 out_dir=runs/x lake.depth=6")
    add_aliases(tr, option(tr, "--no_resume", spec=d.SWITCH, help="start from scratch"), "--no-resume")
    add_aliases(tr, option(tr, "--stop_after", spec=d.STOP_AFTER, metavar="STEP"), "--stop-after")
    option(tr, "--export", spec=d.EXPORT_DIR, help="model folder (default OUT_DIR/final)")
    tr.set_defaults(func=run_train)

    ft = lake.add_parser("finetune", help="an RSR (or parameter-matched LoRA) adapter on a frozen lake model",
                         epilog=keys_epilog(), formatter_class=argparse.RawDescriptionHelpFormatter)
    option(ft, "--config", spec=d.CONFIG_FILE, help="YAML config (default: configs/lake_base.yaml's schedule)")
    option(ft, "overrides", spec=d.OVERRIDE, nargs="*", help="dotted config overrides")
    option(ft, "--pretrained", spec=d.PRETRAINED, metavar="BASE", help="a trained lake model folder (required)")
    add_alias(ft, "--base", "--pretrained", "pretrained")
    option(ft, "--rsr", spec=d.RSR_SPEC, required=True)
    option(ft, "--method", spec=d.LAKE_METHOD, default="rsr")
    option(ft, "--output_dir", spec=d.FT_OUTPUT_DIR, metavar="DIR",
           help="run folder (required); the adapter goes to OUTPUT_DIR/adapter")
    add_alias(ft, "--out", "--output_dir", "output_dir")
    add_aliases(ft, option(ft, "--no_resume", spec=d.SWITCH, help="start from scratch"), "--no-resume")
    ft.set_defaults(func=run_finetune)

    samplers = {}
    for name, helptext in (("sample", "solutions for an evaluation set, in GenEval's folder layout"),
                           ("generate", "solutions for one map, as a grid")):
        s = samplers[name] = lake.add_parser(name, help=helptext)
        option(s, "--model", spec=d.MODEL, required=True, help="a trained lake model folder")
        option(s, "--adapter", spec=d.ADAPTER, help="RSR or LoRA adapter folder (from `thinkpix lake finetune`)")
        add_aliases(s, option(s, "--latent_steps", spec=d.LATENT_STEPS), "--latent-steps", "--think-steps")
        option(s, "--steps", spec=d.SAMPLER_STEPS, default=20)
        option(s, "--seed", spec=d.SEED, default=0)
        option(s, "--threads", spec=d.THREADS, default=0)
        add_precision_flag(s)
        option(s, "--out", spec=d.OUT_DIR if name == "sample" else d.GRID_OUT, required=True)
    sa = samplers["sample"]
    option(sa, "--prompts", spec=d.PROMPTS_FILE, required=True, help="metadata JSONL (e.g. data/eval/lake.jsonl)")
    add_aliases(sa, option(sa, "--images_per_map", spec=d.IMAGES_PER_PROMPT, default=1, help="images per map"),
                "--images-per-map")
    option(sa, "--overwrite", spec=d.OVERWRITE, help="remove OUT's map folders and start afresh "
           "(default: rerunning the same command resumes, another run's folder is refused)")
    sa.set_defaults(func=run_sample)
    ge = samplers["generate"]
    option(ge, "--map", spec=d.LAKE_MAP, required=True, metavar="MAP_OR_SEED")
    option(ge, "--size", spec=d.LAKE_SIZE, default=5, help="grid size of a random map")
    option(ge, "--length", spec=d.LAKE_LENGTH, default=5)
    option(ge, "-k", spec=d.LAKE_K)
    add_aliases(ge, option(ge, "-n", "--num_images", spec=d.NUM_IMAGES, default=4), "--num-images")
    option(ge, "--overwrite", spec=d.OVERWRITE, help="replace an existing --out file")
    ge.set_defaults(func=run_generate)


def _metas(path) -> list[dict]:
    from ..evaluation.metadata import read_jsonl
    from ..worlds.lake.sets import map_of

    from ..errors import ThinkpixError

    lines = read_jsonl(Path(path))
    for number, meta in lines:
        try:
            map_of(meta)  # validated up front
        except ThinkpixError as exc:
            raise ThinkpixError(f"{path}:{number}: {exc}") from None
    return [meta for _, meta in lines]


def run_prompts(args) -> int:
    from ..errors import ThinkpixError
    from ..worlds.lake.sets import eval_set, parse_range

    from ..worlds.lake.maps import MAX_SIZE, MIN_SIZE

    try:
        sizes = parse_range(args.sizes)
    except ThinkpixError as exc:
        raise ThinkpixError(f"--sizes: {exc}") from None
    if not all(MIN_SIZE <= s <= MAX_SIZE for s in sizes):
        raise ThinkpixError(f"--sizes {args.sizes}: lake sizes are {MIN_SIZE}..{MAX_SIZE}")
    metas = eval_set(args.per_cell, args.seed, sizes, args.target)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(m) + "\n" for m in metas), encoding="utf-8")
    print(f"wrote {len(metas)} lake maps to {out}")
    return 0


def run_render(args) -> int:
    from ..worlds.lake.evaluation import write_ground_truth
    from .world import clear_prompt_folders

    out = Path(args.out)
    metas = _metas(args.prompts)  # every line checked before anything in OUT is replaced
    clear_prompt_folders(out, args.overwrite)
    write_ground_truth(metas, out, args.canvas)
    print(f"wrote {len(metas)} ground-truth solutions to {out}; score them with: thinkpix lake evaluate {out}")
    return 0


def run_evaluate(args) -> int:
    from ..worlds.lake.evaluation import evaluate_lake_folder, format_lake_table

    root = Path(args.dir)
    _, summary = evaluate_lake_folder(root)
    print(json.dumps(summary) if args.json else format_lake_table(summary))
    return 0


def run_train(args) -> int:
    from ..worlds.lake.config import lake_config
    from ..worlds.lake.training import build_lake_objective
    from ..training.loop import Trainer

    cfg = lake_config(args.config, args.overrides)
    trainer = Trainer(cfg, build_lake_objective(cfg))
    last = trainer.fit(resume=not args.no_resume, stop_after=args.stop_after)
    if trainer.step < cfg.steps:
        print(f"stopped at step {trainer.step} of {cfg.steps}; run again to resume")
        return 0
    return finish_run(trainer, last, trainer.export(args.export or f"{cfg.out_dir}/final"), "model")


def run_finetune(args) -> int:
    from ..worlds.lake.config import lake_config
    from ..worlds.lake.training import build_lake_objective
    from ..training.loop import Trainer

    from ..errors import ThinkpixError
    from ..validation import output_path

    for dest, flag in (("pretrained", "--pretrained"), ("output_dir", "--output_dir")):
        if not getattr(args, dest):
            raise ThinkpixError(f"lake finetune: {flag} is required")
    output_path(args.output_dir, "--output_dir", "dir")
    flags = [f"finetune.base={args.pretrained}", f"finetune.rsr={args.rsr}", f"finetune.method={args.method}",
             f"out_dir={args.output_dir}"]
    from ..resources import resource

    cfg = lake_config(args.config or resource("configs/lake_base.yaml"),
                      [*args.overrides, *flags])
    objective = build_lake_objective(cfg)
    trainer = Trainer(cfg, objective)
    print(f"{cfg.finetune.method}: {objective.adapter.num_parameters:,} trainable parameters")
    last = trainer.fit(resume=not args.no_resume)
    if trainer.step < cfg.steps:
        return 0
    return finish_run(trainer, last, trainer.export(f"{cfg.out_dir}/adapter"), "adapter")


def _model(args):
    import torch

    from ..worlds.lake.sampling import load_lake

    if args.threads:
        torch.set_num_threads(args.threads)
    return load_lake(args.model, args.adapter, args.latent_steps)


def run_sample(args) -> int:
    """Like `thinkpix sample`: OUT/sample_run.json records the run; rerunning the same command into OUT
    resumes (complete map folders kept), another run's folder is refused; --overwrite starts afresh."""
    from ..worlds.lake.sampling import write_lake_folder
    from ..sample_record import RECORD, folder_checksum, open_output, rows_digest
    from .world import clear_prompt_folders

    metas = _metas(args.prompts)
    out = Path(args.out)
    record = {"kind": "lake", "model": folder_checksum(args.model), "adapter": folder_checksum(args.adapter),
              "latent_steps": args.latent_steps, "seed": args.seed, "steps": args.steps,
              "images_per_map": args.images_per_map, "prompts": rows_digest(metas), "num_prompts": len(metas),
              **precision_record(args)}
    if args.overwrite:
        clear_prompt_folders(out, True)
        (out / RECORD).unlink(missing_ok=True)
    open_output(out, record, write=False)  # refuse another run's folder before loading anything
    model = _model(args)
    open_output(out, record)
    with sampling_precision(args, model):
        seconds = write_lake_folder(model, metas, out, args.images_per_map, args.seed, args.steps)
    n = len(metas) * args.images_per_map
    print(f"{n} solutions in {out} ({seconds:.1f} s of sampling this run; complete map folders are kept); "
          f"score them with: thinkpix lake evaluate {out}")
    return 0


def run_generate(args) -> int:
    import numpy as np

    from ..errors import ThinkpixError
    from ..worlds.lake.evaluation import judge
    from ..imaging import grid, save_png
    from ..worlds.lake.sampling import generate_lake_images
    from ..worlds.lake.maps import from_text, random_map, shortest_length, to_text
    from ..worlds.lake.render import render

    spec = (args.map if getattr(args, "map", None) is not None else args.lake).strip()
    if not args.model:
        raise ThinkpixError("a lake map needs a lake --model (from `thinkpix lake train`)")
    size, length = getattr(args, "size", 5), getattr(args, "length", 5)
    grid_map = (random_map(np.random.default_rng(int(spec)), size, length) if spec.isdigit()
                else from_text([r.strip() for r in spec.split(",")]))
    if shortest_length(grid_map) < 1:
        raise ThinkpixError(f"--map {spec}: the goal cannot be reached from the start (holes block every path); "
                            "an unsolvable map has no right answer to draw")
    model = _model(args)
    k = getattr(args, "k", None)
    ks = [k] * args.num_images if k is not None else None
    with sampling_precision(args, model):
        images = generate_lake_images(model, [grid_map] * args.num_images, seed=args.seed, steps=args.steps, ks=ks)
    verdicts = [judge(im.numpy(), grid_map, k)["verdict"] for im in images]
    path = save_png(grid(np.concatenate([render(grid_map)[None], images.numpy()]), cols=args.num_images + 1,
                         upscale=4), args.out)
    print("map:", ",".join(to_text(grid_map)))
    print(f"wrote the map and {args.num_images} solution(s) to {path}; verdicts: {', '.join(verdicts)}")
    return 0
