"""The paper's fine-tuning protocol on lake diffusion: adapters on a frozen, trained base, fit to a small
shifted set.

The base is a finished cell-diffusion run (`cell_diffusion.train`, trained on maps of sizes 4-5). The
shifted set is a fixed pool of 1,000 maps of sizes 6-8 (1-6 moves), drawn once with its own seed; every
fine-tune samples its batches from that pool only. Arms: an RSR reading attached to block 0 of the frozen
base (`adapter-<reading>`, random T ~ U{1..8}), a plain LoRA on the same block's image q/k/v with its rank
matched to the RSR adapter's parameter count (`lora`), and that LoRA at twice the steps (`lora-2x`).
Scored like every cell-diffusion run; the shifted target is the `larger` test split (sizes 6-8, 4-6 moves),
`in-range` reads forgetting.

    python -m thinkpix.worlds.lake.cell_finetune --arm adapter-refined-every-step --seed 0 \\
        --base stack-2 --base-runs RUNS --runs RUNS/finetune
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import asdict, replace
from pathlib import Path

import numpy as np
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.files import write_json

from . import ladder_task as task
from .cell_diffusion import CellDiffusion, loss, score, trained
from .ladder import Budget, fit, run_dir
from .ladder_models import Arm, arm_named

SHIFT_SIZES, POOL_SIZE, POOL_SEED = (6, 7, 8), 1000, 3_000_003
BUDGET = Budget(steps=1000)  # the ladder's recipe at 1,000 steps of 64 maps (64 passes over the pool)


def shifted_pool() -> list[np.ndarray]:
    """The 1,000 maps of the shifted set (sizes 6-8, 1-6 moves), the same for every arm and seed."""
    return task.training_maps(np.random.default_rng(POOL_SEED), POOL_SIZE, sizes=SHIFT_SIZES)


def from_pool(pool: list[np.ndarray]):
    """draw_maps(rng, count): `count` maps sampled with replacement from the pool."""
    return lambda rng, count: [pool[i] for i in rng.integers(len(pool), size=count)]


def rsr_adapter_parameters(base: torch.nn.Module) -> int:
    """Trainable parameters of the winning RSR reading as an adapter on `base` (what the LoRA is matched to)."""
    import copy

    model = CellDiffusion(arm_named("adapter-refined-every-step"), 0, copy.deepcopy(base))
    return sum(p.numel() for p in model.solver.trainable_parameters())


def finetune_arm(name: str, base: torch.nn.Module) -> tuple[Arm, Budget]:
    """The arm and budget behind a fine-tune arm's name: `adapter-<reading>`, `lora` or `lora-2x`."""
    if name in ("lora", "lora-2x"):
        from thinkpix.integrations.lora import matched_rank

        rank = matched_rank(base, [0], rsr_adapter_parameters(base))
        steps = BUDGET.steps * (2 if name == "lora-2x" else 1)
        return Arm(name, "lora", note=f"LoRA rank {rank} on block 0's image q/k/v", lora_rank=rank), \
            replace(BUDGET, steps=steps)
    arm = arm_named(name)
    if arm.kind != "adapter":
        raise ThinkpixError(f"fine-tune arm {name!r} is not adapter-<reading>, lora or lora-2x")
    return arm, BUDGET


def finetune(name: str, seed: int, base_arm: str, base_runs: Path, runs: Path, budget: Budget | None = None,
             log=print, splits=task.SPLITS, pool: list[np.ndarray] | None = None) -> Path:
    """Fine-tune arm `name` on the frozen base (seed `seed` of `base_arm` under `base_runs`) into
    RUNS/finetune-<name>/seed<seed>/ (resumes), then score it."""
    folder = run_dir(runs, f"finetune-{name}", seed)
    if (folder / "scores.json").is_file():
        log(f"{folder}: already finished")
        return folder
    base = trained(base_runs, arm_named(base_arm), seed).solver.transformer
    arm, default_budget = finetune_arm(name, base)
    budget = budget or default_budget
    torch.manual_seed(seed)  # the adapter's initial weights, then the run's noise
    model = CellDiffusion(arm, seed, base)
    draw = from_pool(shifted_pool() if pool is None else pool)
    record = fit(model, folder, seed, budget, lambda grids, depth, rng: loss(model, grids, depth, rng), log,
                 draw_maps=draw)
    write_json(folder / "train.json", {"arm": asdict(arm), "base": f"{base_arm} seed {seed}", **record})
    write_json(folder / "scores.json", score(model, splits=splits, log=log))
    return folder


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.cell_finetune",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--arm", required=True, help="adapter-<reading>, lora or lora-2x")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--base", default="stack-2", help="the base's arm name (a finished diffusion run)")
    parser.add_argument("--base-runs", type=Path, required=True, help="the run folder holding the base")
    parser.add_argument("--runs", type=Path, required=True, help="the run folder for the fine-tunes")
    parser.add_argument("--threads", type=int, default=1)
    args = parser.parse_args(argv)
    try:
        if args.threads < 1:
            raise ThinkpixError("--threads must be >= 1")
        torch.set_num_threads(args.threads)
        finetune(args.arm, args.seed, args.base, args.base_runs, args.runs)
    except ThinkpixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
