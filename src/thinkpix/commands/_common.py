"""Helpers shared by the sampling commands: model loading and common flags."""

from __future__ import annotations


def add_sampling_flags(p) -> None:
    p.add_argument("--model", default=None, help="model folder or bundled name (default: the bundled base; "
                   "class-conditional: shapes-dit)")
    p.add_argument("--seed", type=int, default=0, help="image i uses noise seed SEED + i")
    p.add_argument("--steps", type=int, default=20, help="sampler steps (default 20)")
    p.add_argument("--guidance", type=float, default=3.0, help="classifier-free guidance scale (1 = off)")
    p.add_argument("--sampler", choices=("euler", "heun"), default="euler")
    p.add_argument("--threads", type=int, default=0, help="torch threads (0 = torch default)")
    p.add_argument("--adapter", default=None, help="RSR or LoRA adapter folder (from `thinkpix finetune`)")
    p.add_argument("--think-steps", type=int, default=None,
                   help="RSR latent steps at inference (0 = the base model; default: the adapter's own)")


def load_model(args, kind: str = "mmdit"):
    """The model of --model (default: the bundled base of `kind`), with --adapter loaded.
    kind: "mmdit" (text-to-image, a PROMPT) or "dit" (class-conditional, --class / --classes)."""
    import torch

    from ..errors import ThinkpixError
    from ..models.bundle import model_kind

    if args.threads:
        torch.set_num_threads(args.threads)
    if getattr(args, "pretrained", None):  # a diffusers pipeline (or bundled model) on --device
        from .base_flags import load_pretrained

        return load_pretrained(args, kind)
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
    from ..adapters import prepare_for_sampling

    return prepare_for_sampling(model, path, args.adapter, args.think_steps)


def model_path(args, kind: str = "mmdit"):
    """The base's identity for records: --pretrained as given, else the resolved bundled/--model folder."""
    from ..bundled import DEFAULT_CLASS_MODEL, DEFAULT_MODEL, resolve_model

    if getattr(args, "pretrained", None):
        return args.pretrained
    return resolve_model(args.model, DEFAULT_CLASS_MODEL if kind == "dit" else DEFAULT_MODEL)


def sample_record(args, kind: str, **what) -> dict:
    """What a sampled folder is for (see `thinkpix.sample_record`): model and adapter checksums,
    seed, sampler settings, images per prompt, batch size, plus `what` (the prompts or classes)."""
    from ..sample_record import folder_checksum

    return dict(what, model=folder_checksum(model_path(args, kind)), adapter=folder_checksum(args.adapter),
                think_steps=args.think_steps, seed=args.seed, images_per_prompt=args.images_per_prompt,
                batch_size=args.batch_size, **sampling_kwargs(args))


def sampling_kwargs(args) -> dict:
    return dict(steps=args.steps, guidance=args.guidance, method=args.sampler)


def add_run_flags(p) -> None:
    """--no-resume / --resume-from / --overwrite of the training commands (see `Trainer.fit`)."""
    p.add_argument("--no-resume", action="store_true", help="start from scratch (refused in a folder holding a "
                   "run unless --overwrite)")
    p.add_argument("--resume-from", default=None, metavar="CHECKPOINT",
                   help="resume from this checkpoint folder instead of OUT/checkpoints/latest")
    p.add_argument("--overwrite", action="store_true",
                   help="with --no-resume: replace the run already in the folder (its checkpoints and metrics)")


def run_flags(args) -> dict:
    return dict(resume=not args.no_resume, resume_from=args.resume_from, overwrite=args.overwrite)


def finish_run(trainer, last: dict, out, what: str) -> int:
    """Print the run's last loss and where `what` was written; close the process group."""
    from ..training import distributed

    if trainer.dist.is_main:
        done = f"final loss {last['loss']:.4f}; " if last else "no steps left to run; "
        print(f"{done}{what} written to {out}")
    distributed.teardown()
    return 0
