"""Does `torch.compile` pay for training and sampling on this CPU? fp32 and bf16, with and without.

    python -m benchmarks.bench_compile --size demo,w256 --out benchmarks/results/compile.json

Per size, one model and a copy of it with every transformer block compiled (`block.compile()`,
inductor, mode default; regional: the blocks share one compiled graph, the same regional compile as
`bench_fastpath --compile`). Per precision (`thinkpix.precision.autocast`, so bf16 is the trainer's
fast path):

- `compile_s`: the first training forward + backward and the first sampling call of the compiled copy,
  timed on their own in CPU seconds of the process and of its finished children (the C++ compiler
  calls; `TORCHINDUCTOR_COMPILE_THREADS=1`) and wall seconds (they compile forward, backward and the
  no-grad sampling graph; a cold inductor cache: the run uses
  a fresh `TORCHINDUCTOR_CACHE_DIR` unless `--warm-cache DIR` names one);
- `max_abs_diff`: the compiled copy against the eager model, same weights, in that precision: the loss
  and the gradients of one training batch, and the latents the sampler returns (same prompts and seed);
- then rounds, alternated: each round runs one training step (batch `--batch-size`) and one sampling
  call (8 prompts, `--sample-steps` Euler steps, guidance 3) of every variant (eager / compiled x fp32 /
  bf16), timed in CPU seconds of the process (`time.process_time`) and wall seconds; the fastest round
  counts. `speedup` is eager over compiled at the same precision; `break_even_steps` is the compile
  time over the per-step training gain.

The machine's load (1-minute load average before and after) and the process's CPU share of wall time
are written with the numbers: on a machine shared with other work, read the ratios of CPU time.
"""

from __future__ import annotations

import argparse
import copy
import os
import platform
import resource
import statistics
import tempfile
import time

import torch

SETTINGS = ("fp32", "bf16")
PROMPTS = [f"a photo of {n} red circles and a blue square" for n in ("one", "two", "three", "four")] * 2


def cpu_seconds() -> float:
    """CPU seconds of this process and of its finished children (inductor's compiler calls)."""
    children = resource.getrusage(resource.RUSAGE_CHILDREN)
    return time.process_time() + children.ru_utime + children.ru_stime


def clocks(fn) -> tuple[float, float]:
    """(CPU seconds of this process and its finished children, wall seconds) of fn()."""
    c, w = cpu_seconds(), time.perf_counter()
    fn()
    return cpu_seconds() - c, time.perf_counter() - w


RECOMPILE_LIMIT = 64  # graphs per block: {train, sample} x {fp32, bf16} x {block, last block} x shapes > dynamo's 8


def compiled_copy(model):
    """A deep copy of `model` (same weights) whose transformer blocks are compiled (regional compile)."""
    import torch._dynamo

    for name in ("recompile_limit", "cache_size_limit"):  # past dynamo's limit a block would silently run eagerly
        if hasattr(torch._dynamo.config, name):
            setattr(torch._dynamo.config, name, RECOMPILE_LIMIT)
    twin = copy.deepcopy(model)
    for block in twin.transformer.transformer_blocks:
        block.compile()  # nn.Module.compile: in place, inductor, mode default
    return twin


def fwd_bwd(objective, batch_size: int, precision: str) -> tuple[float, dict]:
    """One training forward + backward (no optimiser step) -> (loss, {name: grad}); grads zeroed after."""
    from thinkpix.precision import autocast

    with autocast(precision):
        loss, _ = objective(0, range(batch_size))
    loss.backward()
    grads = {n: p.grad.detach().clone() for n, p in objective.named_parameters() if p.grad is not None}
    objective.zero_grad(set_to_none=True)
    return loss.item(), grads


def latents(model, precision: str) -> torch.Tensor:
    """The sampler's latents (8, C, h, w) for PROMPTS, seed 0, no grad, eval mode, under `precision`."""
    from thinkpix.models.sampler import generate_latents
    from thinkpix.precision import autocast

    model.eval()
    with torch.no_grad(), autocast(precision):
        out = generate_latents(model, PROMPTS, seed=0, steps=SAMPLE_STEPS[0], guidance=3.0)
    model.train()
    return out.float()


SAMPLE_STEPS = [10]  # set from --sample-steps


def measure_size(size: str, args) -> dict:
    from benchmarks.bench_training import build, training_parts
    from thinkpix.models.registry import size_config
    from thinkpix.precision import autocast
    from thinkpix.sampling import generate_images

    cfg = size_config("mmdit", size)
    eager = build("latent", size)
    twin = compiled_copy(eager)
    models = {"eager": eager, "compiled": twin}
    variants = {}  # (mode, precision) -> (objective, train_step)
    for mode, m in models.items():
        for p in SETTINGS:
            objective, _, step = training_parts(m, args.batch_size, p)
            variants[(mode, p)] = (objective, step)

    def sample(m, p, prompts=PROMPTS, steps=args.sample_steps):
        m.eval()
        with autocast(p):
            generate_images(m, prompts, seed=0, steps=steps, guidance=3.0)
        m.train()

    out = []  # results of timed calls
    entry = {"width": cfg["num_attention_heads"] * cfg["attention_head_dim"], "compile_s": {}, "max_abs_diff": {},
             "variants": {}}
    for p in SETTINGS:  # eager warm-up (text cache, allocator), then the compiled copy's first calls
        fwd_bwd(variants[("eager", p)][0], args.batch_size, p)
        sample(eager, p, PROMPTS[:2], 2)
    for p in SETTINGS:  # same weights on both (no optimiser step yet): compile, and compare the numbers
        loss_e, grads_e = fwd_bwd(variants[("eager", p)][0], args.batch_size, p)
        cpu, wall = clocks(lambda: out.append(fwd_bwd(variants[("compiled", p)][0], args.batch_size, p)))
        loss_c, grads_c = out.pop()
        lat_e = latents(eager, p)
        s_cpu, s_wall = clocks(lambda: out.append(latents(twin, p)))
        lat_c = out.pop()
        second = clocks(lambda: fwd_bwd(variants[("compiled", p)][0], args.batch_size, p))
        entry["compile_s"][p] = {"train_first_fwd_bwd_cpu": cpu, "train_first_fwd_bwd_wall": wall,
                                 "train_second_fwd_bwd_cpu": second[0],
                                 "sample_first_call_cpu": s_cpu, "sample_first_call_wall": s_wall}
        entry["max_abs_diff"][p] = {
            "loss": abs(loss_c - loss_e), "loss_eager": loss_e,
            "grad_max_abs_diff": max((grads_c[n] - g).abs().max().item() for n, g in grads_e.items()),
            "grad_max_abs": max(g.abs().max().item() for g in grads_e.values()),
            "sample_latents": (lat_c - lat_e).abs().max().item(), "sample_latents_max_abs": lat_e.abs().max().item()}
        print(f"{size} {p}: first compiled fwd+bwd {cpu:.1f} CPU s / {wall:.1f} wall s; first compiled sampling "
              f"{s_cpu:.1f} CPU s; diffs {entry['max_abs_diff'][p]}", flush=True)
    times = {k: {"train": [], "sample": []} for k in variants}
    for _ in range(args.rounds):
        for (mode, p), (_, step) in variants.items():
            times[(mode, p)]["train"].append(clocks(lambda: _step_in(step, p)))
            times[(mode, p)]["sample"].append(clocks(lambda: sample(models[mode], p)))
    for (mode, p), t in times.items():
        train_cpu, sample_cpu = min(c for c, _ in t["train"]), min(c for c, _ in t["sample"])
        entry["variants"][f"{p} {mode}"] = {
            "train_step_cpu_s": train_cpu, "train_step_wall_s": min(w for _, w in t["train"]),
            "train_images_per_cpu_s": args.batch_size / train_cpu,
            "sample_call_cpu_s": sample_cpu, "sample_call_wall_s": min(w for _, w in t["sample"]),
            "sample_images_per_cpu_s": len(PROMPTS) / sample_cpu,
            "rounds_train_cpu_s": [c for c, _ in t["train"]], "rounds_sample_cpu_s": [c for c, _ in t["sample"]],
            "train_median_cpu_s": statistics.median(c for c, _ in t["train"]),
        }
    for p in SETTINGS:
        e, c = entry["variants"][f"{p} eager"], entry["variants"][f"{p} compiled"]
        c["train_speedup_over_eager"] = e["train_step_cpu_s"] / c["train_step_cpu_s"]
        c["sample_speedup_over_eager"] = e["sample_call_cpu_s"] / c["sample_call_cpu_s"]
        gain = e["train_step_cpu_s"] - c["train_step_cpu_s"]
        first = entry["compile_s"][p]["train_first_fwd_bwd_cpu"]
        c["break_even_train_steps"] = first / gain if gain > 0 else None
        c["speedup_over_fp32_eager_train"] = entry["variants"]["fp32 eager"]["train_step_cpu_s"] / c["train_step_cpu_s"]
        e["speedup_over_fp32_eager_train"] = entry["variants"]["fp32 eager"]["train_step_cpu_s"] / e["train_step_cpu_s"]
    return entry


def _step_in(step, precision: str) -> None:
    from thinkpix.precision import autocast

    with autocast(precision):
        step(0)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="demo,w256")
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--sample-steps", type=int, default=10)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--warm-cache", default=None, help="an inductor cache folder to reuse (default: a fresh one)")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from thinkpix.files import write_json

    cache = args.warm_cache or tempfile.mkdtemp(prefix="inductor-")
    os.environ["TORCHINDUCTOR_CACHE_DIR"] = cache  # before inductor is first imported (by the first compile)
    os.environ.setdefault("TORCHINDUCTOR_COMPILE_THREADS", "1")  # compile in this process: its CPU time is counted
    torch.set_num_threads(args.threads)
    SAMPLE_STEPS[0] = args.sample_steps
    sizes = [s.strip() for s in args.size.split(",") if s.strip()]
    result = {"command": (f"python -m benchmarks.bench_compile --size {args.size} --batch-size {args.batch_size} "
                          f"--rounds {args.rounds} --sample-steps {args.sample_steps} --threads {args.threads}"),
              "machine": platform.processor() or platform.machine(), "torch": torch.__version__,
              "threads": args.threads, "batch_size": args.batch_size, "inductor_cache": "warm" if args.warm_cache else "cold",
              "sampling": {"images": len(PROMPTS), "steps": args.sample_steps, "guidance": 3.0, "sampler": "euler"},
              "clock": "fastest round; CPU = time.process_time + finished children, wall = time.perf_counter",
              "load_average_1min_before": os.getloadavg()[0], "sizes": {}}
    start_cpu, start_wall = time.process_time(), time.perf_counter()
    for size in sizes:
        result["sizes"][size] = measure_size(size, args)
        from torch._dynamo.utils import counters

        result["sizes"][size]["dynamo_counters"] = {k: {str(n): c for n, c in v.items()} for k, v in counters.items()
                                                    if k in ("stats", "recompiles", "graph_break")}
        result["load_average_1min_after"] = os.getloadavg()[0]
        result["process_cpu_over_wall"] = (time.process_time() - start_cpu) / (time.perf_counter() - start_wall)
        write_json(args.out, result)  # after every size: a cut run keeps what it measured
    from thinkpix.analysis.speed_tables import compile_table

    print(compile_table(result))


if __name__ == "__main__":
    main()
