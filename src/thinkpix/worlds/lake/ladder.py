"""The recursion ladder: does a loop carry computation from one latent step to the next?

Train one arm (`ladder_models.ARMS`) on the supervised lake task (`ladder_task`) with random depth
T ~ U{1..T_max} per batch, then score exact-map accuracy on the held-out splits at T = 1..16. A loop
that computes gets better with T (most on long paths, and beyond the training range when it
extrapolates); an inert loop is flat.

    python -m thinkpix.worlds.lake.ladder train --arm loop --seed 0 --runs RUNS     # RUNS/loop/seed0/
    python -m thinkpix.worlds.lake.ladder table --runs RUNS --out results.json       # paired intervals

A run folder holds checkpoints (resumed automatically, exactly: data and depth generators included),
`scores.json` (per-map 0/1 correctness per split and T) and `train.json` (loss curve, timing).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch

from thinkpix.errors import ThinkpixError
from thinkpix.files import write_json
from thinkpix.precision import PRECISIONS, autocast, resolve
from thinkpix.training.checkpoint import latest_checkpoint, load_checkpoint, save_checkpoint

from . import ladder_task as task
from .ladder_models import Arm, Solver, arm_named

EVAL_STEPS = tuple(range(1, 17))  # T at test time: 1..16 (training draws 1..T_max)


@dataclass(frozen=True)
class Budget:
    """The training recipe every arm gets (the same tuning budget for all: none beyond this)."""

    steps: int = 1800
    batch: int = 64
    lr: float = 1e-3
    warmup: int = 100
    max_depth: int = 8  # T_max: training depth T ~ U{1..T_max} per batch
    checkpoint_every: int = 300


def run_dir(runs: Path, arm: str, seed: int) -> Path:
    return Path(runs) / arm / f"seed{seed}"


def lr_at(step: int, b: Budget) -> float:
    """Linear warm-up, then cosine decay to a tenth."""
    if step < b.warmup:
        return b.lr * (step + 1) / b.warmup
    p = (step - b.warmup) / max(1, b.steps - b.warmup)
    return b.lr * (0.1 + 0.9 * 0.5 * (1 + np.cos(np.pi * p)))


def trained(runs: Path, arm: Arm, seed: int) -> Solver:
    """The trained model of a finished run (ThinkpixError naming the command that makes it, if none)."""
    base = trained(runs, arm_named("stack-1"), seed).transformer if arm.kind == "adapter" else None
    return load_finished(Solver(arm, seed, base), run_dir(runs, arm.name, seed), f"train --arm {arm.name} --seed {seed}")


def load_finished(model: torch.nn.Module, folder: Path, command: str) -> torch.nn.Module:
    """`model` with the weights of the finished run in `folder`, in eval mode (ThinkpixError naming `command`)."""
    ckpt = latest_checkpoint(folder / "checkpoints")
    if not (folder / "scores.json").is_file() or ckpt is None:
        raise ThinkpixError(f"{folder} has no finished run: run `{command}` first")
    tensors, _, _ = load_checkpoint(ckpt)
    model.load_state_dict({k.removeprefix("param."): v for k, v in tensors.items()})
    return model.eval()


def frozen_base(runs: Path, seed: int) -> torch.nn.Module:
    """The trained `stack-1` transformer of this seed, frozen: the base of the `adapter-*` arms."""
    return trained(runs, arm_named("stack-1"), seed).transformer


VALIDATION = (task.Split("in-range", task.TRAIN_SIZES, (4, 5, 6), 50),)  # 300 maps drawn with VALIDATION_SEED


def validate(runs: Path, log=print) -> list[Path]:
    """Score every finished run without `validation.json` on the validation maps at T = 1 and 8: what the
    choice of the best reading reads (never the test splits)."""
    written = []
    for scores in sorted(Path(runs).glob("*/seed*/scores.json")):
        folder = scores.parent
        if (folder / "validation.json").is_file():
            continue
        model = trained(runs, arm_named(folder.parent.name), int(folder.name.removeprefix("seed")))
        write_json(folder / "validation.json", score(model, (1, 8), task.VALIDATION_SEED, VALIDATION, log=log))
        written.append(folder / "validation.json")
    return written


def fit(model: torch.nn.Module, folder: Path, seed: int, budget: Budget, batch_loss, log=print,
        stop_at: int | None = None, draw_maps=task.training_maps, precision: str = "fp32") -> dict | None:
    """The ladder's training loop, shared by its solvers and the cell-diffusion models.

    `batch_loss(grids, depth, data_rng) -> loss` for training maps `draw_maps(data_rng, batch)` (fresh ones by
    default) and a depth T ~ U{1..T_max}.
    Checkpoints (weights, optimizer, the data and depth generators, torch's global generator, the loss curve)
    go to FOLDER/checkpoints and a rerun resumes from the newest one, exactly. `precision` (fp32 | bf16 | auto,
    `thinkpix.precision`) autocasts the loss's forward; weights, optimiser and loss stay fp32, a run resumes
    only in its own precision, and a non-fp32 run's record names it. Returns the training record,
    or None when stopped early at `stop_at` (a later call resumes)."""
    precision = resolve(precision)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=budget.lr, betas=(0.9, 0.99), weight_decay=0.01)
    data_rng, depth_rng = np.random.default_rng([seed, 1]), np.random.default_rng([seed, 2])
    curve, start, seconds = [], 0, 0.0
    ckpt = latest_checkpoint(folder / "checkpoints")
    if ckpt is not None:  # resume exactly: weights, optimizer, every generator, the curve so far
        tensors, opt_state, state = load_checkpoint(ckpt)
        if state.get("precision", "fp32") != precision:
            raise ThinkpixError(f"{folder} was trained in {state.get('precision', 'fp32')}; it resumes only in that "
                                f"precision, not {precision}")
        model.load_state_dict({k.removeprefix("param."): v for k, v in tensors.items()})
        opt.load_state_dict(opt_state)
        data_rng.bit_generator.state, depth_rng.bit_generator.state = state["data_rng"], state["depth_rng"]
        torch.set_rng_state(torch.tensor(state["torch_rng"], dtype=torch.uint8))
        curve, start, seconds = state["curve"], state["step"], state["seconds"]
        log(f"{folder}: resumed at step {start}")
    model.train()
    tick = time.perf_counter()
    for step in range(start, budget.steps):
        grids = draw_maps(data_rng, budget.batch)
        depth = int(depth_rng.integers(1, budget.max_depth + 1))
        for g in opt.param_groups:
            g["lr"] = lr_at(step, budget)
        with autocast(precision):  # bf16: the forward's matmuls in bf16
            loss = batch_loss(grids, depth, data_rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        curve.append(round(loss.item(), 5))
        done = step + 1
        if done % budget.checkpoint_every == 0 or done == budget.steps:
            seconds += time.perf_counter() - tick
            tick = time.perf_counter()
            state = {"seed": seed, "budget": asdict(budget), "curve": curve, "seconds": seconds,
                     "data_rng": data_rng.bit_generator.state, "depth_rng": depth_rng.bit_generator.state,
                     "torch_rng": torch.get_rng_state().tolist(), **precision_record(precision)}
            trained_now = {f"param.{k}": v for k, v in model.state_dict().items()}
            save_checkpoint(folder / "checkpoints", done, trained_now, opt, state, keep=1)
            log(f"{folder.parent.name} seed {seed}: step {done}/{budget.steps} loss {np.mean(curve[-100:]):.4f} "
                f"({seconds:.0f} s)")
            if stop_at is not None and done >= stop_at and done < budget.steps:
                return None
    return {"seed": seed, "budget": asdict(budget), "parameters": sum(p.numel() for p in params),
            "seconds": round(seconds, 1), "loss_every_50": curve[::50], **precision_record(precision)}


def precision_record(precision: str) -> dict:
    """{"precision": ...} for a non-fp32 run, {} for fp32 (so fp32 records stay as they were before the option)."""
    return {} if precision == "fp32" else {"precision": precision}


def train(arm: Arm, seed: int, runs: Path, budget: Budget = Budget(), log=print, stop_at: int | None = None,
          splits=task.SPLITS, eval_steps=EVAL_STEPS, precision: str = "fp32") -> Path:
    """Train `arm` with `seed` into RUNS/<arm>/seed<seed>/ (resuming from its newest checkpoint); score it.

    `stop_at`: return after the checkpoint of that step (train in slices; a later call resumes). `precision`:
    of the training forward (see `fit`); scoring is fp32."""
    folder = run_dir(runs, arm.name, seed)
    if (folder / "scores.json").is_file():
        log(f"{folder}: already finished")
        return folder
    base = frozen_base(runs, seed) if arm.kind == "adapter" else None
    torch.manual_seed(seed)  # the new weights' init, then the run's Gumbel noise
    model = Solver(arm, seed, base)

    def batch_loss(grids, depth, _rng):
        maps, target, mask = task.encode(grids)
        return task.cell_loss(model(maps, depth), target, mask)

    record = fit(model, folder, seed, budget, batch_loss, log, stop_at, precision=precision)
    if record is None:
        return folder
    write_json(folder / "train.json", {"arm": asdict(arm), **record})
    write_json(folder / "scores.json", score(model, eval_steps, splits=splits, log=log))
    return folder


@torch.no_grad()
def score(model: Solver, steps=EVAL_STEPS, seed: int = task.TEST_SEED, splits=task.SPLITS, log=print) -> dict:
    """{split: {"lengths": [...], "sizes": [...], "T": {T: [0/1 per map]}}} on the held-out splits."""
    model.eval()
    out = {}
    for split in splits:
        grids = task.split_maps(split, seed)
        maps, target, mask = task.encode(grids)
        if model.arm.kind == "loop":  # one pass gives the read-out after every loop step
            logits = dict(zip(range(1, max(steps) + 1), model.readouts(maps, max(steps))))
        else:
            logits = {T: model(maps, T) for T in steps}
        rows = {str(T): task.solved(logits[T], target, mask).int().tolist() for T in steps}
        out[split.name] = {"lengths": [task.path_length(g) for g in grids], "sizes": [g.shape[0] for g in grids],
                           "T": rows}
        log(f"  {split.name}: " + " ".join(f"T{T}={np.mean(rows[str(T)]):.2f}" for T in steps if T in (1, 2, 4, 8, 16)))
    model.train()
    return out


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.ladder", description=__doc__.split("\n")[0])
    sub = parser.add_subparsers(dest="command", required=True)
    t = sub.add_parser("train", help="train and score one arm and seed (resumes)")
    t.add_argument("--arm", required=True, help="arm name (see ladder_models.ARMS)")
    t.add_argument("--seed", type=int, default=0)
    t.add_argument("--runs", type=Path, required=True, help="run folder (outside the repository)")
    t.add_argument("--steps", type=int, default=Budget.steps)
    t.add_argument("--threads", type=int, default=1)
    t.add_argument("--precision", choices=PRECISIONS, default="fp32",
                   help="of the training forward (thinkpix.precision; scoring is fp32); a run resumes only in its own")
    t.add_argument("--task", choices=("solve", "diffusion"), default="solve",
                   help="solve: the supervised per-cell task; diffusion: draw the path with rectified flow "
                        "(cell_diffusion, into RUNS/diffusion-<arm>/)")
    v = sub.add_parser("validate", help="score finished runs on the validation maps (for choosing the best reading)")
    v.add_argument("--runs", type=Path, required=True)
    v.add_argument("--task", choices=("solve", "diffusion"), default="solve")
    tab = sub.add_parser("table", help="tabulate finished runs with paired bootstrap intervals")
    tab.add_argument("--runs", type=Path, required=True)
    tab.add_argument("--out", type=Path, required=True, help="results JSON (paths relative to --runs)")
    tab.add_argument("--doc", type=Path, help="a docs page whose ladder tables to rewrite from the results")
    args = parser.parse_args(argv)
    try:
        if args.command == "train":
            if args.steps < 1 or args.threads < 1:
                raise ThinkpixError("--steps and --threads must be >= 1")
            torch.set_num_threads(args.threads)
            if args.task == "diffusion":
                from .cell_diffusion import train as train_diffusion

                train_diffusion(arm_named(args.arm), args.seed, args.runs, Budget(steps=args.steps),
                                precision=args.precision)
            else:
                train(arm_named(args.arm), args.seed, args.runs, Budget(steps=args.steps), precision=args.precision)
        elif args.command == "validate":
            if args.task == "diffusion":
                from .cell_diffusion import validate as validate_diffusion

                validate_diffusion(args.runs)
            else:
                validate(args.runs)
        else:
            from .ladder_table import fill_doc, publish, tabulate

            result = tabulate(args.runs)
            publish(result, args.out, args.doc, fill_doc)
            print(json.dumps(result["summary"], indent=1))
    except ThinkpixError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
