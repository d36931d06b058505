"""Helpers shared by the sampling commands: common flags and records (model loading: `loading`)."""

from __future__ import annotations

from .. import declarations as d
from ..deprecation import add_aliases
from ..schema import option
from .loading import model_path


def add_sampling_flags(p) -> None:
    option(p, "--model", spec=d.MODEL, help="model folder or bundled name (default: the bundled base; "
           "class-conditional: shapes-dit)")
    option(p, "--seed", spec=d.SEED, default=0, help="image i uses noise seed SEED + i")
    option(p, "--steps", spec=d.SAMPLER_STEPS, default=20)
    option(p, "--guidance", spec=d.GUIDANCE, default=3.0)
    option(p, "--sampler", spec=d.SAMPLER, default="euler")
    option(p, "--threads", spec=d.THREADS, default=0)
    add_precision_flag(p)
    option(p, "--adapter", spec=d.ADAPTER)
    add_aliases(p, option(p, "--latent_steps", spec=d.LATENT_STEPS), "--latent-steps", "--think-steps")


def sample_record(args, kind: str, **what) -> dict:
    """What a sampled folder is for (see `thinkpix.sample_record`): model and adapter checksums,
    seed, sampler settings, images per prompt, batch size, plus `what` (the prompts or classes)."""
    from ..sample_record import folder_checksum

    return dict(what, model=folder_checksum(model_path(args, kind)), adapter=folder_checksum(args.adapter),
                latent_steps=args.latent_steps, seed=args.seed, images_per_prompt=args.images_per_prompt,
                batch_size=args.batch_size, **sampling_kwargs(args), **precision_record(args))


def add_precision_flag(p) -> None:
    option(p, "--precision", spec=d.PRECISION, default="fp32")


def sampling_device(args):
    """The device a sampling command runs on: --device of a --pretrained base, else the CPU."""
    if getattr(args, "pretrained", None):
        from ..models.pipeline_base import resolve_device

        return resolve_device(args.device)
    return "cpu"


def precision_record(args) -> dict:
    """{} for fp32 (so folders sampled before the option existed still resume), else {precision: bf16}."""
    from ..precision import resolve

    resolved = resolve(getattr(args, "precision", "fp32"), sampling_device(args))
    return {} if resolved == "fp32" else {"precision": resolved}


def sampling_precision(args, model):
    """The autocast context of --precision on the device of `model`'s transformer."""
    from ..precision import autocast

    return autocast(getattr(args, "precision", "fp32"), next(model.transformer.parameters()).device)


def sampling_kwargs(args) -> dict:
    return dict(steps=args.steps, guidance=args.guidance, method=args.sampler)


def add_run_flags(p) -> None:
    """--resume_from_checkpoint / --no_resume / --overwrite / --precision of the training commands (see
    `Trainer.fit`; `resume_kwargs` reads them); --resume-from and --no-resume are deprecated spellings."""
    add_aliases(p, option(p, "--resume_from_checkpoint", spec=d.RESUME_FROM, metavar="latest|DIR",
                          help="the checkpoint to resume from (default: latest, when the run folder holds one)"),
                "--resume-from")
    add_aliases(p, option(p, "--no_resume", spec=d.SWITCH,
                          help="start from scratch (refused in a folder holding a run unless --overwrite)"),
                "--no-resume")
    option(p, "--overwrite", spec=d.OVERWRITE,
           help="start over (implies --no_resume): replace the run already in the folder (its checkpoints "
                "and metrics); a resume with another request (base, data, settings) is refused without it")
    option(p, "--precision", spec=d.RUN_PRECISION)


def precision_override(args) -> list[str]:
    """--precision as a config override (none when the flag is not given)."""
    return [f"precision={args.precision}"] if getattr(args, "precision", None) else []


RUN_MARK = ".thinkpix-run"  # in an exported folder: the run folder that wrote it (hidden: not in checksums.json)


def check_export(export, out_dir, overwrite: bool) -> None:
    """Before a run trains: refuse an --export folder that holds files another run (or the user) wrote,
    unless --overwrite. Its own run folder's exports (inside OUT, or marked as this run's) may be rewritten."""
    from pathlib import Path

    from ..errors import ThinkpixError

    if not export or overwrite:
        return
    target, run = Path(export), Path(out_dir).resolve()
    if not target.is_dir() or not any(target.iterdir()) or run in target.resolve().parents:
        return
    mark = target / RUN_MARK
    if mark.is_file() and mark.read_text(encoding="utf-8", errors="replace").strip() == str(run):
        return
    raise ThinkpixError(f"--export {target}: holds files this run did not write (another model or adapter?); "
                        "choose a new folder, or pass --overwrite to replace it (--overwrite also starts the run over)")


def resume_kwargs(args) -> dict:
    """Trainer.fit's resume arguments of --resume_from_checkpoint latest|DIR, --no_resume, --overwrite."""
    from ..errors import ThinkpixError

    chosen = args.resume_from_checkpoint
    if chosen == "latest" and (args.no_resume or args.overwrite):
        raise ThinkpixError(f"--resume_from_checkpoint latest and {'--overwrite' if args.overwrite else '--no_resume'} "
                            "contradict each other")
    return dict(resume=not args.no_resume, resume_from=None if chosen in (None, "latest") else chosen,
                overwrite=args.overwrite)


def finish_run(trainer, last: dict, out, what: str) -> int:
    """Print the run's last loss and where `what` was written; close the process group."""
    from ..training import distributed

    if trainer.dist.is_main:
        from pathlib import Path

        (Path(out) / RUN_MARK).write_text(str(trainer.out.resolve()) + "\n")  # a rerun may rewrite its own export
        done = f"final loss {last['loss']:.4f}; " if last else "no steps left to run; "
        print(f"{done}{what} written to {out}")
    distributed.teardown()
    return 0
