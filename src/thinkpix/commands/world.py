"""`thinkpix world prompts|render`: the shapes world's prompt sets and ground-truth renders.

    thinkpix world prompts --set geneval --per_task 100 --seed 0 --out data/eval/geneval.jsonl
    thinkpix world prompts --set dense --per_task 100 --seed 0 --out data/eval/dense.jsonl
    thinkpix world render --prompts data/eval/geneval.jsonl --out outputs/gt --images_per_prompt 4
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option


def register(sub) -> None:
    p = sub.add_parser("world", help="prompt sets and ground-truth renders of the shapes world",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    world = p.add_subparsers(dest="world_command", required=True, metavar="ACTION")

    pr = world.add_parser("prompts", help="write a prompt set (metadata JSONL)")
    option(pr, "--out", spec=d.JSONL_OUT, required=True)
    option(pr, "--overwrite", spec=d.OVERWRITE, help="replace an existing --out file")
    option(pr, "--set", dest="which", spec=d.PROMPT_SET, default="geneval")
    add_aliases(pr, option(pr, "--per_task", spec=d.PER_TASK, default=100,
                           help="prompts per task (dense counts as one task)"), "--per-task")
    option(pr, "--seed", spec=d.SEED, default=0, help="seed of the prompt set")
    pr.set_defaults(func=run_prompts)

    rd = world.add_parser("render", help="render ground truth for a prompt set in GenEval's folder layout")
    option(rd, "--prompts", spec=d.PROMPTS_FILE, required=True, help="metadata JSONL (e.g. data/eval/geneval.jsonl)")
    option(rd, "--out", spec=d.OUT_DIR, required=True,
           help="folder: OUT/00000/metadata.jsonl, OUT/00000/samples/0000.png ...")
    add_aliases(rd, option(rd, "--images_per_prompt", spec=d.IMAGES_PER_PROMPT, default=4), "--images-per-prompt")
    option(rd, "--seed", spec=d.SEED, default=0)
    option(rd, "--distractors", spec=d.DISTRACTORS, default=0)
    option(rd, "--canvas", spec=d.CANVAS, default=32)
    option(rd, "--overwrite", spec=d.OVERWRITE, help="replace prompt folders already in OUT")
    rd.set_defaults(func=run_render)


def run_prompts(args) -> int:
    from ..worlds.shapes.dense import dense_set
    from ..worlds.shapes.prompts import geneval_set

    metas = geneval_set(args.per_task, args.seed) if args.which == "geneval" else dense_set(args.per_task, args.seed)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text("".join(json.dumps(m) + "\n" for m in metas), encoding="utf-8")
    distinct = len({m["prompt"] for m in metas})
    print(f"wrote {len(metas)} {args.which} prompts ({distinct} distinct texts) to {out}")
    return 0


def clear_prompt_folders(out: Path, overwrite: bool) -> None:
    """Refuse to mix two sets in one folder; with `overwrite`, remove the old prompt folders
    and results (nothing else)."""
    from ..errors import ThinkpixError

    old = sorted(p for p in out.iterdir() if p.is_dir() and p.name.isdigit()) if out.is_dir() else []
    if old and not overwrite:
        raise ThinkpixError(f"{out}: already holds {len(old)} prompt folders; pass --overwrite to replace them")
    for p in old:
        shutil.rmtree(p)
    for name in ("results.jsonl", "summary.json"):
        (out / name).unlink(missing_ok=True)


def run_render(args) -> int:
    from ..evaluation.metadata import read_metadata
    from ..evaluation.truth_images import write_folder

    lines = read_metadata(Path(args.prompts))
    out = Path(args.out)
    clear_prompt_folders(out, args.overwrite)
    metas = [meta for _, meta in lines]
    labels = [f"{args.prompts}:{n}" for n, _ in lines]
    write_folder(metas, out, args.images_per_prompt, args.seed, args.distractors, args.canvas, progress=True,
                 labels=labels)
    print(f"wrote {len(metas)} prompt folders x {args.images_per_prompt} ground-truth images "
          f"({args.canvas}x{args.canvas}) to {out}; score them with: thinkpix evaluate {out}")
    return 0
