"""The model a sampling command (or the web page) means: `--model` (a bundled name or folder) or
`--pretrained` (a diffusers pipeline), with `--adapter` loaded and `--latent_steps` set."""

from __future__ import annotations


def load_model(args, kind: str = "mmdit"):
    """The one loader of the sampling commands and the web page: the base of --pretrained (any base behind
    `models.pipeline_base`, on --device) or the bundled model of --model (default: the bundled base of
    `kind`), with --adapter loaded and --latent_steps set.
    kind: "mmdit" (text-to-image, a PROMPT) or "dit" (class-conditional, --class / --classes)."""
    import torch

    from ..errors import ThinkpixError
    from ..models.bundle import model_kind

    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "pretrained", None):  # a diffusers pipeline (or bundled model) on --device
        return _pretrained(args, kind)
    path = model_path(args, kind)
    found = model_kind(path)
    if found != kind:
        hint = ("a class-conditional model: choose a class with --class NAME (sample: --classes)" if found == "dit"
                else "a text-to-image model: give a PROMPT (sample: --prompts FILE), not a class")
        raise ThinkpixError(f"{path} is {hint}")
    if kind == "dit":
        from ..models.c2i import ClassToImage

        model = ClassToImage.load(path)
    else:
        from ..models.t2i import TextToImage

        model = TextToImage.load(path)
    from ..integrations.methods import prepare_for_sampling

    return prepare_for_sampling(model, path, args.adapter, args.latent_steps)


def model_path(args, kind: str = "mmdit"):
    """The base's identity for records: --pretrained as given, else the resolved bundled/--model folder."""
    from ..bundled import DEFAULT_CLASS_MODEL, DEFAULT_MODEL, resolve_model

    if getattr(args, "pretrained", None):
        return args.pretrained
    return resolve_model(args.model, DEFAULT_CLASS_MODEL if kind == "dit" else DEFAULT_MODEL)


def _pretrained(args, kind: str):
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
        raise ThinkpixError("--latent_steps needs an RSR --adapter")
    return base
