"""`thinkpix generate "PROMPT" -n 4 --seed 0 --out grid.png`: images for one prompt, as a grid."""

from __future__ import annotations

from ._common import add_sampling_flags, load_model, sampling_kwargs


def register(sub) -> None:
    p = sub.add_parser("generate", help="generate images for a prompt", description=__doc__)
    p.add_argument("prompt")
    p.add_argument("-n", "--num-images", type=int, default=4)
    p.add_argument("--out", default="grid.png", help="PNG file for the grid (default grid.png)")
    p.add_argument("--upscale", type=int, default=4, help="nearest-neighbour upscale of the grid")
    add_sampling_flags(p)
    p.set_defaults(func=run)


def run(args) -> int:
    from ..errors import ThinkpixError
    from ..imaging import grid, save_png
    from ..sampling import generate_images

    if args.num_images < 1:
        raise ThinkpixError(f"-n must be >= 1, got {args.num_images}")
    model = load_model(args)
    images = generate_images(model, [args.prompt] * args.num_images, seed=args.seed, **sampling_kwargs(args))
    path = save_png(grid(images, cols=min(8, args.num_images), upscale=args.upscale), args.out)
    print(f"wrote {args.num_images} image(s) for {args.prompt!r} to {path}")
    return 0
