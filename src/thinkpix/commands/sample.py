"""`thinkpix sample --prompts FILE.jsonl --out DIR`: generate images for every prompt of a
GenEval-style metadata file, written in GenEval's folder layout (DIR/00000/metadata.jsonl,
DIR/00000/samples/0000.png, ...) so that `thinkpix evaluate DIR` or GenEval can score them.
Image k of prompt i uses noise seed SEED + i * N + k (N images per prompt)."""

from __future__ import annotations

from ._common import add_sampling_flags, load_model, sampling_kwargs


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate a GenEval-layout folder for a prompt file", description=__doc__)
    p.add_argument("--prompts", required=True, help="metadata JSONL (one GenEval metadata object per line)")
    p.add_argument("--out", required=True, help="output folder")
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--limit", type=int, default=0, help="only the first N prompts (0 = all)")
    p.add_argument("--batch-size", type=int, default=64)
    add_sampling_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..errors import ThinkpixError
    from ..evaluation.metadata import read_metadata
    from ..sampling import write_geneval_folder

    if not Path(args.prompts).is_file():
        raise ThinkpixError(f"{args.prompts}: prompt file not found")
    rows = [meta for _, meta in read_metadata(Path(args.prompts))]
    if args.limit:
        rows = rows[: args.limit]
    if args.images_per_prompt < 1:
        raise ThinkpixError(f"--images-per-prompt must be >= 1, got {args.images_per_prompt}")
    model = load_model(args)
    write_geneval_folder(model, rows, args.out, args.images_per_prompt, args.seed, args.batch_size,
                         **sampling_kwargs(args))
    print(f"wrote {len(rows) * args.images_per_prompt} images for {len(rows)} prompts to {args.out}")
    return 0
