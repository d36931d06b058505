"""`thinkpix sample --prompts FILE.jsonl --out DIR`: generate images for every prompt of a
GenEval-style metadata file, written in GenEval's folder layout (DIR/00000/metadata.jsonl,
DIR/00000/samples/0000.png, ...) so that `thinkpix evaluate DIR` or GenEval can score them.
Image k of prompt i uses noise seed SEED + i * N + k (N images per prompt).
With --pretrained (a diffusers pipeline), FILE may be GenEval's official evaluation_metadata.jsonl (any
object class) and images are named as GenEval's own script names them (DIR/00000/samples/00000.png), for
GenEval's evaluator; `thinkpix evaluate` scores shapes-world folders only.
`thinkpix sample --classes --out DIR --model DIT`: a class-conditional model's images, a folder per
class (DIR/00_red_circle/0000.png, ...), image k of class i with seed SEED + i * N + k."""

from __future__ import annotations

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option
from ._common import add_sampling_flags, sample_record, sampling_kwargs, sampling_precision
from .loading import load_model, model_path
from .base_flags import add_base_flags


def register(sub) -> None:
    p = sub.add_parser("sample", help="generate a GenEval-layout folder for a prompt file (or every class)",
                       description=__doc__)
    what = p.add_mutually_exclusive_group(required=True)
    option(what, "--prompts", spec=d.PROMPTS_FILE)
    option(what, "--classes", spec=d.SWITCH, help="every class of a class-conditional model")
    option(p, "--out", spec=d.OUT_DIR, required=True)
    add_aliases(p, option(p, "--images_per_prompt", spec=d.IMAGES_PER_PROMPT, default=4), "--images-per-prompt")
    option(p, "--limit", spec=d.LIMIT, default=0)
    add_aliases(p, option(p, "--batch_size", spec=d.BATCH_SIZE, default=64), "--batch-size")
    add_sampling_flags(p)
    add_base_flags(p)  # --pretrained BASE --device --dtype --resolution --force_base
    p.set_defaults(func=run)


def run(args) -> int:
    from pathlib import Path

    from ..errors import ThinkpixError
    from ..evaluation.metadata import read_metadata
    from ..sample_record import open_output, rows_digest
    from ..sampling import write_geneval_folder

    if args.classes:
        from ..models.bundle import read_meta
        from ..sampling import write_class_folder

        # a bundled/trained DiT names its classes in thinkpix.json; a DiT pipeline's come with the pipeline (its
        # folder's checksum is in the record) and are read once it is loaded
        classes = None if args.pretrained else read_meta(model_path(args, "dit")).get("classes")
        record = sample_record(args, "dit", classes=classes)
        open_output(args.out, record, write=False)  # refuse another run's folder before loading anything
        model = load_model(args, "dit")
        if not model.classes:
            raise ThinkpixError(f"{args.pretrained or args.model}: the class-conditional model names no classes "
                                "(a DiT pipeline lists them in its scheduler's id2label); sample them by index with "
                                "`thinkpix generate --class N`")
        open_output(args.out, record)
        with sampling_precision(args, model):
            write_class_folder(model, args.out, args.images_per_prompt, args.seed, args.batch_size,
                               **sampling_kwargs(args))
        n = len(model.classes)
        print(f"{n * args.images_per_prompt} images for {n} classes in {args.out}")
        return 0
    if args.pretrained:  # GenEval's official metadata (any object class), GenEval's own file names
        from ..evaluation.official import read_official_metadata

        rows = [meta for _, meta in read_official_metadata(Path(args.prompts))]
    else:
        rows = [meta for _, meta in read_metadata(Path(args.prompts))]
    if args.limit:
        rows = rows[: args.limit]
    record = sample_record(args, "mmdit", prompts=rows_digest(rows), num_prompts=len(rows))
    open_output(args.out, record, write=False)  # refuse another run's folder before loading anything
    model = load_model(args)
    open_output(args.out, record)
    with sampling_precision(args, model):
        done = write_geneval_folder(model, rows, args.out, args.images_per_prompt, args.seed, args.batch_size,
                                    digits=5 if args.pretrained else 4, **sampling_kwargs(args))
    print(f"{len(rows) * args.images_per_prompt} images for {len(rows)} prompts in {args.out} "
          f"({done['generated']} prompt folders generated, {done['kept']} complete ones kept)")
    return 0
