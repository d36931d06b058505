"""The candidate pieces of the bf16 fast path, side by side in one process: which of them pay.

    python -m benchmarks.bench_fastpath --size demo --out benchmarks/results/fastpath_demo.json

One model and one batch (the trainer's flow objective, batch 64, one thread), one training step per
variant per round, the variants alternated round by round and timed in CPU seconds of the process
(`time.process_time`) and in wall seconds; the fastest round counts. Variants:

- `fp32 loop` (the fp32 trainer: AdamW's per-tensor loop), `fp32 foreach`, `fp32 fused`;
- `bf16` (the fast path as the trainer runs it: `thinkpix.precision.autocast`, so differentiated
  attention in fp32, and fused AdamW), `bf16 sdpa` (attention in bf16 as well: plain bf16
  autocast), `bf16 foreach` (foreach AdamW instead of fused);
- with `--compile`, `bf16 compiled`: the fast path with each transformer block compiled
  (`torch.compile`, inductor; regional: the six blocks share one compiled graph). Its first step,
  which compiles, is timed on its own (`compile_seconds`); `break_even_steps` is that time over the
  per-step gain.

`--threads 1,2` repeats the fp32 and bf16 steps with two threads (wall and CPU time: on two cores
shared with other work a second thread can only be read from the wall clock, and only roughly).
"""

from __future__ import annotations

import argparse
import contextlib
import platform
import time

import torch


def objective_for(model, batch_size: int):
    from thinkpix.training.config import config_from_dict
    from thinkpix.training.objectives import FlowObjective

    cfg = config_from_dict({"model": {"kind": "mmdit", "size": "demo", "space": "pixel"}, "batch_size": batch_size,
                            "optim": {"lr": 1e-4}})
    return FlowObjective(cfg, model).train()


def adamw(params, kind: str) -> torch.optim.AdamW:
    flags = {"loop": {"foreach": False}, "foreach": {"foreach": True}, "fused": {"fused": True}}[kind]
    return torch.optim.AdamW(params, lr=1e-4, **flags)


def stepper(objective, batch_size: int, opt, context):
    indices = range(batch_size)

    def step():
        opt.zero_grad()
        with context():
            loss, _ = objective(0, indices)
        loss.backward()
        opt.step()

    return step


def clocks(fn) -> tuple[float, float]:
    """(CPU seconds of this process, wall seconds) of fn()."""
    c, w = time.process_time(), time.perf_counter()
    fn()
    return time.process_time() - c, time.perf_counter() - w


def main() -> None:
    from benchmarks.bench_training import build
    from thinkpix.files import write_json
    from thinkpix.precision import autocast

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="demo")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--compile", action="store_true", help="add the compiled variant (compiles first, timed)")
    parser.add_argument("--threads", default="1", help="thread counts to compare, e.g. 1,2")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    thread_counts = [int(t) for t in args.threads.split(",")]
    torch.set_num_threads(thread_counts[0])

    model = build("latent", args.size)
    objective = objective_for(model, args.batch_size)
    params = [p for p in objective.parameters() if p.requires_grad]
    plain_bf16 = lambda: torch.autocast("cpu", dtype=torch.bfloat16)  # noqa: E731
    variants = {
        "fp32 loop": stepper(objective, args.batch_size, adamw(params, "loop"), contextlib.nullcontext),
        "fp32 foreach": stepper(objective, args.batch_size, adamw(params, "foreach"), contextlib.nullcontext),
        "fp32 fused": stepper(objective, args.batch_size, adamw(params, "fused"), contextlib.nullcontext),
        "bf16": stepper(objective, args.batch_size, adamw(params, "fused"), lambda: autocast("bf16")),
        "bf16 sdpa": stepper(objective, args.batch_size, adamw(params, "fused"), plain_bf16),
        "bf16 foreach": stepper(objective, args.batch_size, adamw(params, "foreach"), lambda: autocast("bf16")),
    }
    result = {"command": (f"python -m benchmarks.bench_fastpath --size {args.size} --batch-size {args.batch_size} "
                          f"--rounds {args.rounds} --threads {args.threads}" + (" --compile" if args.compile else "")),
              "machine": platform.processor() or platform.machine(), "size": args.size, "batch_size": args.batch_size,
              "torch": torch.__version__, "clock": "fastest round; CPU = time.process_time, wall = time.perf_counter",
              "variants": {}}
    for fn in variants.values():
        fn()  # warm-up (text cache, allocator)
    if args.compile:
        compiled_model = build("latent", args.size)
        compiled_model.transformer.load_state_dict(model.transformer.state_dict())
        for block in compiled_model.transformer.transformer_blocks:
            block.compile()
        c_objective = objective_for(compiled_model, args.batch_size)
        c_params = [p for p in c_objective.parameters() if p.requires_grad]
        variants["bf16 compiled"] = stepper(c_objective, args.batch_size, adamw(c_params, "fused"), plain_bf16)
        cpu, wall = clocks(variants["bf16 compiled"])  # compiles forward and backward
        cpu2, wall2 = clocks(variants["bf16 compiled"])  # anything left (e.g. a recompile) shows here
        result["compile_seconds"] = {"cpu": cpu, "wall": wall, "second_step_cpu": cpu2, "second_step_wall": wall2}
        print(f"compile: {cpu:.1f} CPU s, {wall:.1f} wall s (second step {cpu2:.2f} CPU s)")
    times = {(n, t): [] for n in variants for t in thread_counts if t == thread_counts[0] or n in ("fp32 loop", "bf16")}
    for r in range(args.rounds):
        for (name, threads) in times:
            torch.set_num_threads(threads)
            times[(name, threads)].append(clocks(variants[name]))
    torch.set_num_threads(thread_counts[0])
    ref = min(c for c, _ in times[("fp32 loop", thread_counts[0])])
    ref_bf16 = min(c for c, _ in times[("bf16", thread_counts[0])])
    for (name, threads), v in times.items():
        cpu, wall = min(c for c, _ in v), min(w for _, w in v)
        key = name if threads == thread_counts[0] else f"{name} threads={threads}"
        result["variants"][key] = {"threads": threads, "step_cpu_s": cpu, "step_wall_s": wall,
                                   "rounds_cpu_s": [c for c, _ in v], "rounds_wall_s": [w for _, w in v],
                                   "speedup_vs_fp32_loop_cpu": ref / cpu, "speedup_vs_bf16_cpu": ref_bf16 / cpu}
        print(f"{key:28s} {cpu * 1000:7.0f} ms CPU  {wall * 1000:7.0f} ms wall  x{ref / cpu:.2f} over fp32 loop  "
              f"x{ref_bf16 / cpu:.2f} over bf16")
    if args.compile:
        gain = ref_bf16 - result["variants"]["bf16 compiled"]["step_cpu_s"]
        result["compile_seconds"]["gain_per_step_cpu_s"] = gain
        result["compile_seconds"]["break_even_steps"] = result["compile_seconds"]["cpu"] / gain if gain > 0 else None
    write_json(args.out, result)




if __name__ == "__main__":
    main()
