"""The base a sampling command runs: `--pretrained` (a diffusers pipeline folder, a cached hub id, or a
bundled model) with `--device` and `--dtype`, beside the bundled `--model` path of `loading.load_model`."""

from __future__ import annotations


def add_base_flags(p) -> None:
    p.add_argument("--pretrained", default=None, metavar="BASE",
                   help="a diffusers pipeline folder (SD3/SD3.5, FLUX, DiT), a hub id in the local cache, or a "
                        "bundled model; sampled with the pipeline's own encoders, scheduler and VAE")
    p.add_argument("--device", default="auto", help="auto | cpu | cuda (default auto: a GPU when there is one)")
    p.add_argument("--dtype", default="auto", help="auto (bf16 on GPU, else fp32) | fp32 | bf16 | fp16")
    p.add_argument("--resolution", type=int, default=0, help="image side in pixels (0: the base's default)")
    p.add_argument("--force-base", action="store_true",
                   help="load an --adapter even if it was trained on another base (it is refused otherwise)")


def load_pretrained(args, kind: str):
    """The base of --pretrained on --device, with --adapter loaded (its base identity checked)."""
    from ..integrations.methods import load_adapter
    from ..errors import ThinkpixError
    from ..models.pipeline_base import load_base

    base = load_base(args.pretrained, args.device, args.dtype)
    if base.kind != kind:
        hint = ("a class-conditional base (DiT): choose a class with --class NAME (sample: --classes)"
                if base.kind == "dit" else "a text-to-image base: give a PROMPT (sample: --prompts FILE), not a class")
        raise ThinkpixError(f"{args.pretrained} is {hint}")
    if args.resolution:
        base.check_resolution(args.resolution)
        base.resolution = args.resolution
    if args.adapter:
        load_adapter(base.transformer, args.adapter, args.latent_steps, force_base=args.force_base)
        base.transformer.eval()
    elif args.latent_steps:
        raise ThinkpixError("--latent-steps needs an RSR --adapter")
    return base
