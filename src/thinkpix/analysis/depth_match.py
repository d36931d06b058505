"""Which plain text-to-image base costs what a looped one costs? Forward FLOPs of one transformer call
(torch's FLOP counter: matmuls and attention) of a `<size>-d<N>` base, with or without RSR trained in at
T latent steps, and the depth whose plain stack is nearest to a looped model's cost at inference.

    python -m thinkpix.analysis.depth_match --size demo-d1 \
        --rsr preset=refined-every-step,layers=0,experts=2,latent_steps=8,rank=8 --latent-steps 8

prints the FLOPs of each plain depth 1..--max-depth and the nearest one as JSON.

    python -m thinkpix.analysis.depth_match --pick-base experiments/results/shapes_depth_ladder.json

prints the depth ladder's verdict, the RSR base's number of blocks: the shallowest base that falls short of
the 6-block one on some task (its paired interval against it below zero); the tasks go to stderr. Weights do not change
FLOPs, so the models are built untrained at the shapes world's geometry (the bundled autoencoder's latents,
MiniLM's token width).
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from thinkpix.integrations.attach import attach_rsr, set_latent_steps
from thinkpix.models.bundle import space_geometry
from thinkpix.models.flops import count_flops
from thinkpix.models.registry import size_config
from thinkpix.models.t2i import build_transformer
from thinkpix.bundled import bundled_path
from thinkpix.errors import ThinkpixError
from thinkpix.rsr.config import RSRConfig

TEXT_DIM = 384  # MiniLM's token and pooled width (the shapes world's text encoder)
TEXT_TOKENS = 16  # a shapes-world prompt's token count, the same for every arm


def transformer_flops(size: str, rsr: str = "", latent_steps: int = 0) -> int:
    """FLOPs of one velocity call on one image of a base of `size`; with `rsr` (a spec), at `latent_steps`."""
    _, channels, sample, patch = space_geometry("latent", 32, bundled_path("shapes-autoencoder"))
    transformer = build_transformer(size, channels, sample, patch, TEXT_DIM).eval()
    if rsr:
        attach_rsr(transformer, RSRConfig.parse(rsr), freeze_base=False)
        set_latent_steps(transformer, latent_steps)
    x = torch.zeros(1, channels, sample, sample)  # (1, C, h, w)
    tokens, pooled = torch.zeros(1, TEXT_TOKENS, TEXT_DIM), torch.zeros(1, TEXT_DIM)  # (1, L, Dt), (1, Dt)
    t = torch.ones(1)

    def call():
        with torch.no_grad():
            transformer(hidden_states=x, encoder_hidden_states=tokens, pooled_projections=pooled, timestep=t,
                        return_dict=False)

    return count_flops(call)


def nearest_depth(target: int, family: str = "demo", max_depth: int = 12) -> tuple[int, dict[int, int]]:
    """The number of blocks whose plain `<family>-d<N>` forward is nearest to `target` FLOPs, and every
    depth's FLOPs."""
    flops = {n: transformer_flops(f"{family}-d{n}") for n in range(1, max_depth + 1)}
    return min(flops, key=lambda n: abs(flops[n] - target)), flops


def pick_base(report: dict, deepest: str = "d6") -> tuple[int, list[str]]:
    """The depth ladder's rule on its results: the shallowest `d<N>` arm whose per-task paired difference to
    `deepest` lies below zero on some task, and those tasks. A ThinkpixError if depth helps on no task."""
    for name in sorted((a for a in report["arms"] if a.startswith("d") and a != deepest), key=lambda a: int(a[1:])):
        short = sorted(task for task, c in report["arms"][name].get(f"per_task_minus_{deepest}", {}).items()
                       if c["ci95"][1] < 0)
        if short:
            return int(name[1:]), short
    raise ThinkpixError(f"no base falls short of {deepest} on any task: depth helps nowhere on this prompt set")


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--pick-base", metavar="LADDER_JSON", help="print the depth ladder's RSR base depth and exit")
    parser.add_argument("--size", help="the looped model's size, e.g. demo-d1")
    parser.add_argument("--rsr", help="its RSR spec (model.rsr)")
    parser.add_argument("--latent-steps", type=int, help="T at inference")
    parser.add_argument("--max-depth", type=int, default=12)
    args = parser.parse_args(argv)
    if args.pick_base:
        depth, tasks = pick_base(json.loads(Path(args.pick_base).read_text()))
        print(f"the {depth}-block base falls short of the 6-block one on: {', '.join(tasks)}", file=sys.stderr)
        print(depth)
        return
    if not (args.size and args.rsr and args.latent_steps is not None):
        parser.error("--size, --rsr and --latent-steps are required (or --pick-base)")
    size_config("mmdit", args.size)  # a KeyError naming the known sizes if unknown
    target = transformer_flops(args.size, args.rsr, args.latent_steps)
    family = args.size.rpartition("-d")[0] or args.size
    depth, flops = nearest_depth(target, family, args.max_depth)
    print(json.dumps({"looped": {"size": args.size, "rsr": args.rsr, "latent_steps": args.latent_steps,
                                 "flops": target},
                      "plain_flops": flops, "nearest_depth": depth}, indent=1))


if __name__ == "__main__":
    main()
