"""Where one training step's time goes, per model size and precision (torch.profiler, CPU).

    python -m benchmarks.profile_step --size demo,w256 --precision fp32,bf16 \
        --out benchmarks/results/profile_step.json

The step is the trainer's: the flow objective on one batch (the shapes world rendered, the text
embeddings cached after the first step, the frozen autoencoder's encoder in fp32), forward under the
precision's autocast, backward, and the trainer's AdamW for that precision (`thinkpix.training.loop.adamw`).
The profiled self CPU time of every op is put into one category (`thinkpix.analysis.step_profile` says which).

Settings run alternated, round by round, in one process and are timed in CPU seconds of the process
(`time.process_time`: a machine shared with other work counts little; read the ratios).
"""

from __future__ import annotations

import argparse
import platform
import time

import torch

from thinkpix.analysis.step_profile import CATEGORIES, annotate_adaln, profiled  # the logic (tested there)


def main() -> None:
    from benchmarks.bench_training import build, training_parts
    from thinkpix.files import write_json
    from thinkpix.models.registry import size_config
    from thinkpix.precision import PRECISIONS, autocast, resolve

    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", default="demo,w256")
    parser.add_argument("--precision", default="fp32,bf16")
    parser.add_argument("--rounds", type=int, default=3, help="alternated timing rounds (the fastest counts)")
    parser.add_argument("--profiled-steps", type=int, default=2)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--out", default="benchmarks/results/profile_step.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    settings = [p for p in args.precision.split(",") if p]
    if any(p not in PRECISIONS for p in settings):
        raise SystemExit(f"--precision: a comma list of {', '.join(PRECISIONS)}")
    result = {"command": (f"python -m benchmarks.profile_step --size {args.size} --precision {args.precision} "
                          f"--rounds {args.rounds} --profiled-steps {args.profiled_steps} --threads {args.threads} "
                          f"--batch-size {args.batch_size}"),
              "machine": platform.processor() or platform.machine(), "threads": args.threads,
              "batch_size": args.batch_size, "clock": "process CPU time (time.process_time)",
              "categories": list(CATEGORIES), "sizes": {}}
    for size in [s for s in args.size.split(",") if s]:
        c = size_config("mmdit", size)
        model = build("latent", size)
        handles = annotate_adaln(model.transformer)
        steps = {p: training_parts(model, args.batch_size, resolve(p, "cpu"))[2] for p in settings}

        def run(p):
            with autocast(p):
                steps[p](0)

        times = {p: [] for p in settings}
        for p in settings:
            run(p)  # warm-up (text cache, allocator, kernels)
        for _ in range(args.rounds):
            for p in settings:
                start = time.process_time()
                run(p)
                times[p].append(time.process_time() - start)
        entry = {"width": c["num_attention_heads"] * c["attention_head_dim"], "precisions": {}}
        for p in settings:
            seconds, running = profiled(lambda: run(p), args.profiled_steps)
            step_s = min(times[p])
            seconds["outside ops"] = step_s - sum(seconds.values())
            entry["precisions"][p] = {"resolved": resolve(p, "cpu"), "step_cpu_s": step_s, "step_cpu_s_all": times[p],
                                      "profiled_cpu_over_wall": running,
                                      "seconds": seconds, "shares": {k: v / step_s for k, v in seconds.items()}}
        for h in handles:
            h.remove()
        result["sizes"][size] = entry
        write_json(args.out, result)
        print(f"{size} (width {entry['width']}):")
        for p, e in entry["precisions"].items():
            print(f"  {p}: step {e['step_cpu_s'] * 1000:.0f} ms  " + "  ".join(
                f"{k} {e['seconds'][k] * 1000:.0f}" for k in CATEGORIES))


if __name__ == "__main__":
    main()
