"""`thinkpix evaluate DIR`: score images in GenEval's folder layout with the exact evaluator.

Writes DIR/results.jsonl (one line per image: folder, sample, tag, prompt, correct, reason)
and DIR/summary.json; prints a table, or with --json one JSON object with `tasks` (task ->
accuracy), `overall` and `prompts_correct`.
"""

from __future__ import annotations

import argparse
import json
import sys

from .. import declarations as d
from ..schema import option


def register(sub) -> None:
    p = sub.add_parser("evaluate", help="score a folder of images (GenEval layout) with the exact evaluator",
                       description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    option(p, "dir", spec=d.INPUT_DIR, metavar="DIR")
    option(p, "--json", spec=d.SWITCH, help="print one JSON object instead of a table")
    option(p, "--canvas", spec=d.EVAL_CANVAS)
    option(p, "--partial", spec=d.SWITCH,
           help="score an incomplete folder's complete prompt folders (reported as incomplete_prompts)")
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..errors import ThinkpixError
    from ..evaluation.runner import evaluate_folder, format_table

    root = Path(args.dir)
    try:
        _, summary = evaluate_folder(root, canvas=args.canvas, partial=args.partial)
    except ThinkpixError as exc:
        raise ThinkpixError(f"{exc}{foreign_classes_note(root)}") from None
    if summary.get("incomplete_prompts"):
        print(f"warning: {root} is incomplete: {summary['incomplete_prompts']} prompt folder(s) not scored",
              file=sys.stderr)
    if args.json:
        print(json.dumps(summary))
    else:
        print(format_table(summary))
        print(f"per-image results: {root / 'results.jsonl'}")
    return 0


def foreign_classes_note(root) -> str:
    """The exact evaluator knows the shapes world only: say so, naming the classes, for any other folder."""
    import json

    from ..evaluation.official import foreign_classes

    metas = []
    for f in sorted(root.glob("[0-9]*/metadata.jsonl")):
        try:
            metas.append(json.loads(f.read_text().splitlines()[0]))
        except (ValueError, IndexError, OSError):
            continue
    foreign = foreign_classes([m for m in metas if isinstance(m, dict)])
    if not foreign:
        return ""
    return (f" -- objects {', '.join(foreign[:8])}{' ...' if len(foreign) > 8 else ''} are not shapes-world classes: "
            "`thinkpix evaluate` scores shapes-world folders only; score this folder with GenEval's own evaluator "
            "(evaluation/evaluate_images.py of djghosh13/geneval)")
