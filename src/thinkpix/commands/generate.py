"""`thinkpix generate "PROMPT" -n 4 --seed 0 --out grid.png`: images for one prompt, as a grid.
`thinkpix generate --class "red circle" -n 4 --model DIR --out grid.png`: the same for one class of a
class-conditional (DiT) model; the unconditional half of guidance is the DiT's null class."""

from __future__ import annotations

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option
from ._common import add_sampling_flags, sampling_kwargs, sampling_precision
from .loading import load_model
from .base_flags import add_base_flags


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate images for a prompt (or a class)", description=__doc__)
    option(p, "prompt", spec=d.PROMPT, nargs="?", metavar="PROMPT")
    option(p, "--class", dest="class_name", spec=d.CLASS, metavar="NAME")
    add_aliases(p, option(p, "-n", "--num_images", spec=d.NUM_IMAGES, default=4), "--num-images")
    option(p, "--out", spec=d.GRID_OUT, default="grid.png")
    option(p, "--overwrite", spec=d.OVERWRITE, help="replace an existing --out (and --trace) file")
    option(p, "--upscale", spec=d.UPSCALE)
    option(p, "--trace", spec=d.TRACE_OUT, metavar="FILE")
    option(p, "--lake", spec=d.LAKE_MAP_OPTIONAL, metavar="MAP_OR_SEED",
           help="solve a lake map with a lake --model (see `thinkpix lake generate`): rows "
                "'S.H.,..H.,....,H..G' or the seed of a random 5x5 map of 5 moves")
    add_sampling_flags(p)
    add_base_flags(p)  # --pretrained BASE --device --dtype --resolution --force_base
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ThinkpixError
    from ..imaging import grid, save_png

    if args.lake is not None:
        from .lake import run_generate

        return run_generate(args)
    if (args.prompt is None) == (args.class_name is None):
        raise ThinkpixError("give a PROMPT or --class NAME (one of the two)")
    if args.trace and not args.adapter:
        raise ThinkpixError("--trace needs an RSR --adapter")
    check_grid_memory(args, "dit" if args.class_name is not None else "mmdit")
    model = load_model(args, "dit" if args.class_name is not None else "mmdit")
    check_grid_memory(args, model=model)  # a --pretrained base's own size, known once loaded
    if args.trace:
        from ..integrations.attach import start_trace

        start_trace(model.transformer)
    if args.class_name is not None:
        from ..sampling import generate_class_images

        label = model.label_of(args.class_name)  # ThinkpixError listing the model's classes if unknown
        what = model.classes[label]
        with sampling_precision(args, model):
            images = generate_class_images(model, [label] * args.num_images, seed=args.seed, **sampling_kwargs(args))
    else:
        from ..sampling import generate_images

        what = args.prompt
        with sampling_precision(args, model):
            images = generate_images(model, [args.prompt] * args.num_images, seed=args.seed, **sampling_kwargs(args))
    if args.trace:
        print(f"routing trace written to {save_trace(model, args, what)}")
    upscale = grid_upscale(args, images.shape[1])  # images (n, H, W, 3)
    path = save_png(grid(images, cols=min(8, args.num_images), upscale=upscale), args.out)
    print(f"wrote {args.num_images} image(s) for {what!r} to {path}")
    return 0


def grid_upscale(args, side: int) -> int:
    """--upscale, or by default the factor that shows a side x side image at about 128 px (never below 1x)."""
    return args.upscale if args.upscale is not None else max(1, 128 // max(1, side))


def check_grid_memory(args, kind: str = "mmdit", model=None) -> None:
    """Refuse -n and --upscale whose grid would not fit in memory, before anything is allocated."""
    from ..imaging import grid_bytes
    from ..validation import memory_for

    if model is not None:
        side = getattr(args, "resolution", 0) or getattr(model, "resolution", 0)
    elif getattr(args, "pretrained", None):
        side = getattr(args, "resolution", 0)
    else:
        from ..models.bundle import read_meta
        from .loading import model_path

        side = read_meta(model_path(args, kind))["canvas"]
    if side:
        upscale = grid_upscale(args, side)
        memory_for(grid_bytes(args.num_images, side, min(8, args.num_images), upscale=upscale),
                   f"-n {args.num_images} --upscale {upscale} at {side}x{side} pixels (the grid)")


def save_trace(model, args, what: str):
    """Routing of every forward: `routing` int16 (forwards, layers, latent steps, batch, tokens, k),
    `timesteps` (forwards, batch); with guidance != 1 the batch holds the conditional images first,
    then their unconditional twins. Layer names and settings are in the file's metadata."""
    import json
    from pathlib import Path

    from ..files import save_tensors
    from ..integrations.attach import stop_trace
    from ..rsr.outputs import stack_trace

    stacked = stack_trace(stop_trace(model.transformer))
    tensors = {"routing": stacked["routing"].contiguous()}
    if stacked["timesteps"] is not None:
        tensors["timesteps"] = stacked["timesteps"].contiguous()
    meta = {"layers": json.dumps(stacked["layers"]), "prompt" if args.class_name is None else "class": what,
            "num_images": str(args.num_images),
            "guidance": str(args.guidance), "steps": str(args.steps), "seed": str(args.seed),
            "batch_layout": "conditional then unconditional" if args.guidance != 1.0 else "conditional"}
    path = Path(args.trace)
    path.parent.mkdir(parents=True, exist_ok=True)
    save_tensors(tensors, path, metadata=meta)
    return path
