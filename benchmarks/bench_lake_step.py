"""Training-step time of the lake diffusion model (`worlds/lake/cell_diffusion.py`) in fp32 and bf16.

    python -m benchmarks.bench_lake_step --arm stack-2 --out benchmarks/results/lake_step.json

The step of `ladder.fit` (batch 64 fresh maps, a random shortest path per map, the rectified-flow loss,
backward, gradient clipping, AdamW) at a fixed depth T = `--depth`, in each precision under
`thinkpix.precision.autocast`; the settings alternated step by step in one process, timed in CPU seconds of
the process (`time.process_time`: a machine shared with other work changes little; read the ratio) after
`--warmup` steps each; the median of `--steps` steps counts. Writes the median step, seconds per 1,000
steps and bf16's speed-up over fp32.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import torch


def main() -> None:
    from thinkpix.files import write_json
    from thinkpix.precision import autocast, cpu_bf16_flags
    from thinkpix.worlds.lake import cell_diffusion as cd
    from thinkpix.worlds.lake import ladder_task as task
    from thinkpix.worlds.lake.ladder import Budget
    from thinkpix.worlds.lake.ladder_models import arm_named

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", default="stack-2")
    parser.add_argument("--depth", type=int, default=1, help="latent steps T of a looped arm (a stack ignores it)")
    parser.add_argument("--steps", type=int, default=20, help="timed steps per setting")
    parser.add_argument("--warmup", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = ("fp32", "bf16")
    budget = Budget()
    parts = {}
    for p in settings:
        torch.manual_seed(0)
        model = cd.CellDiffusion(arm_named(args.arm), 0).train()
        params = [x for x in model.parameters() if x.requires_grad]
        opt = torch.optim.AdamW(params, lr=budget.lr, betas=(0.9, 0.99), weight_decay=0.01)
        parts[p] = (model, params, opt, np.random.default_rng([0, 1]))

    def step(p):
        model, params, opt, rng = parts[p]
        grids = task.training_maps(rng, budget.batch)
        with autocast(p):
            loss = cd.loss(model, grids, args.depth, rng)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()

    times = {p: [] for p in settings}
    load_before = os.getloadavg()[0]
    for i in range(args.warmup + args.steps):
        for p in settings:
            start = time.process_time()
            step(p)
            if i >= args.warmup:
                times[p].append(time.process_time() - start)
    median = {p: statistics.median(v) for p, v in times.items()}
    result = {"command": (f"python -m benchmarks.bench_lake_step --arm {args.arm} --depth {args.depth} --steps {args.steps} "
                          f"--warmup {args.warmup} --threads {args.threads}"),
              "machine": platform.processor() or platform.machine(), "cpu_bf16_flags": list(cpu_bf16_flags()),
              "arm": args.arm, "depth": args.depth, "batch": budget.batch, "threads": args.threads,
              "clock": "process CPU time (time.process_time), median step",
              "load_average_1min": [load_before, os.getloadavg()[0]],
              "settings": {p: {"step_cpu_s": median[p], "cpu_s_per_1000_steps": 1000 * median[p],
                               "steps_cpu_s": times[p], "speedup_over_fp32": median["fp32"] / median[p]}
                           for p in settings}}
    write_json(args.out, result)
    for p, e in result["settings"].items():
        print(f"{p}: {e['step_cpu_s'] * 1000:.1f} ms CPU a step, {e['cpu_s_per_1000_steps'] / 60:.1f} CPU min per 1,000 "
              f"steps, x{e['speedup_over_fp32']:.2f} over fp32")


if __name__ == "__main__":
    main()
