"""`thinkpix demo --out DIR`: the first thing to run. Until a trained model exists it renders
ground truth for a sample of the committed GenEval-style set, scores it with the exact
evaluator, prints the table and writes a contact sheet."""

from __future__ import annotations

from pathlib import Path

DEFAULT_PROMPTS = Path(__file__).resolve().parents[3] / "data" / "eval" / "geneval.jsonl"  # editable install


def register(sub) -> None:
    p = sub.add_parser("demo", help="render, score and show a sample of the evaluation set", description=__doc__)
    p.add_argument("--out", default="outputs/demo", help="output folder (default outputs/demo)")
    p.add_argument("--prompts", default=None, help=f"metadata JSONL (default {DEFAULT_PROMPTS})")
    p.add_argument("--per-task", type=int, default=5, help="prompts per task to sample (default 5)")
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.set_defaults(func=run)


def run(args) -> int:
    import numpy as np

    from ..errors import ThinkpixError
    from ..evaluation.metadata import read_metadata
    from ..evaluation.render import contact_sheet, write_folder
    from ..evaluation.runner import evaluate_folder, format_table
    from .world import clear_prompt_folders

    prompts = Path(args.prompts) if args.prompts else DEFAULT_PROMPTS
    if not prompts.is_file():
        raise ThinkpixError(f"{prompts}: prompt set not found; pass --prompts FILE "
                            "(make one with `thinkpix world prompts --out FILE`)")
    metas = [meta for _, meta in read_metadata(prompts)]
    rng = np.random.default_rng(args.seed)
    sample = []
    for tag in dict.fromkeys(m["tag"] for m in metas):  # tasks in file order
        of_tag = [m for m in metas if m["tag"] == tag]
        sample += [of_tag[int(i)] for i in sorted(rng.permutation(len(of_tag))[: args.per_task])]
    images = Path(args.out) / "images"
    clear_prompt_folders(images, overwrite=True)  # the demo's own folder
    write_folder(sample, images, args.images_per_prompt, args.seed)
    results, summary = evaluate_folder(images)
    print(f"ground-truth renders of {len(sample)} prompts from {prompts} (no trained model yet), "
          f"{args.images_per_prompt} images each:")
    print(format_table(summary))
    sheet = contact_sheet(images, results, Path(args.out) / "contact_sheet.png")
    print(f"images and results.jsonl: {images}\ncontact sheet: {sheet}")
    return 0
