"""Training and sampling throughput of the text-to-image model, and the training FLOP rate against
this machine's measured matmul rates (same thread count).

    python -m benchmarks.bench_training --out benchmarks/results/training.json
    python -m benchmarks.bench_training --precision fp32,bf16,auto --size demo,w256,w384 --out FILE

The first form measures the demo size in fp32 (the numbers of docs/model_card.md). The second compares
precisions (`thinkpix.precision`) per model size: the settings run alternated, round by round, in one
process, timed in CPU seconds of the process (a machine shared with other work, even at a higher
priority, then changes little: read the ratios, not the times), and it writes per size and precision
train images/s, sampling images/s (per CPU second; the fastest round of each), `train_speedup` and
`sample_speedup` over fp32, where a training step's time goes (matmuls, attention, convolutions, the
rest; torch.profiler self time) and the step's FLOP rate against measured fp32 and bf16 matmul rates.

Uses the bundled autoencoder and the frozen MiniLM text encoder (a freshly initialised transformer:
the cost does not depend on its weights), at batch 64, one thread, as in training.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def build(space: str, size: str = "demo"):
    from thinkpix.bundled import bundled_path
    from thinkpix.models.t2i import TextToImage

    ae = bundled_path("shapes-autoencoder") if space == "latent" else ""
    return TextToImage.create(size, space, "minilm", 32, ae)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and text-embedding cache fill)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def seconds(fn) -> float:
    """CPU seconds of this process running fn(): on a machine shared with other work (even at a higher
    priority) this counts this process's own work, where wall time would count the others' too."""
    start = time.process_time()
    fn()
    return time.process_time() - start


def training_parts(model, batch_size: int, precision: str = "fp32"):
    """-> (objective, optimiser, train_step(step)) of the trainer's flow objective on `model`, with the
    trainer's AdamW for `precision` (fused on the bf16 path, see `thinkpix.training.loop.adamw`)."""
    from thinkpix.training.config import config_from_dict
    from thinkpix.training.loop import adamw
    from thinkpix.training.objectives import FlowObjective

    cfg = config_from_dict({"model": {"kind": "mmdit", "size": "demo", "space": "pixel"}, "batch_size": batch_size,
                            "optim": {"lr": 1e-4}})
    objective = FlowObjective(cfg, model).train()
    opt = adamw([{"params": [p for p in objective.parameters() if p.requires_grad]}], cfg, precision)
    indices = range(batch_size)

    def train_step(step: int = 0):
        opt.zero_grad()
        loss, _ = objective(step, indices)
        loss.backward()
        opt.step()

    return objective, opt, train_step


def single(args) -> None:
    """The demo size in fp32 (docs/model_card.md)."""
    from thinkpix.models.flops import count_flops, matmul_peak
    from thinkpix.sampling import generate_images

    model = build(args.space)
    objective, _, train_step = training_parts(model, args.batch_size)

    def transformer_step():  # the transformer alone (no data, no autoencoder), forward + backward
        x = torch.randn(args.batch_size, *model.latent_shape)
        tokens, pooled = model.encode_text(["a photo of a red circle"] * args.batch_size)
        model.velocity(x, torch.rand(args.batch_size), tokens, pooled).pow(2).mean().backward()

    step_s = timed(train_step, args.repeats)
    flops = count_flops(transformer_step)
    transformer_s = timed(transformer_step, args.repeats)
    prompts = ["a photo of two red circles and a blue square"] * 16
    model.eval()
    sample_s = timed(lambda: generate_images(model, prompts, seed=0, steps=20, guidance=3.0), max(2, args.repeats // 2))
    peak = matmul_peak()
    n_params = sum(p.numel() for p in model.transformer.parameters())
    result = {
        "command": f"python -m benchmarks.bench_training --threads {args.threads} --batch-size {args.batch_size} --space {args.space}",
        "machine": platform.processor() or platform.machine(),
        "threads": args.threads,
        "space": args.space,
        "transformer_parameters": n_params,
        "train_images_per_s": args.batch_size / step_s,
        "train_step_s": step_s,
        "transformer_fwd_bwd_flops_per_image": flops / args.batch_size,
        "transformer_fwd_bwd_s": transformer_s,
        "transformer_flop_rate": flops / transformer_s,
        "matmul_peak_flop_rate": peak,
        "mfu_vs_measured_matmul": flops / transformer_s / peak,
        "sampling_images_per_s_20_euler_cfg": len(prompts) / sample_s,
    }
    from thinkpix.files import write_json
    write_json(args.out, result)
    for k, v in result.items():
        print(f"{k:40s} {v:.4g}" if isinstance(v, float) else f"{k:40s} {v}")


# ---- precisions compared ------------------------------------------------------------------------------
KINDS = {"matmul": ("aten::mm", "aten::addmm", "aten::bmm", "aten::baddbmm"),
         "attention": ("scaled_dot_product",), "convolution": ("convolution",)}


def time_shares(fn) -> dict:
    """Shares of one call's profiled self CPU time: matmuls, attention, convolutions, the optimiser's update
    and everything else (elementwise, norms, casts, Python overhead of the ops)."""
    from torch.profiler import ProfilerActivity, profile

    with profile(activities=[ProfilerActivity.CPU]) as prof:
        fn()
    events = prof.key_averages()
    total = sum(e.self_cpu_time_total for e in events)
    shares = {kind: 0.0 for kind in KINDS}
    for e in events:
        kind = next((k for k, names in KINDS.items() if any(n == e.key or (n in e.key and not n.startswith("aten::"))
                                                             for n in names)), None)
        if kind:
            shares[kind] += e.self_cpu_time_total / total
    optimiser = sum(e.cpu_time_total for e in events if e.key.startswith("Optimizer.step"))
    shares["optimizer_step"] = optimiser / total
    shares["other"] = 1.0 - sum(shares[k] for k in KINDS) - shares["optimizer_step"]
    top = sorted(events, key=lambda e: -e.self_cpu_time_total)[:12]
    shares["top_ops"] = [[e.key, e.self_cpu_time_total / total, e.count] for e in top]  # name, share, calls
    return shares


def peaks(widths: list[int], seconds_each: float) -> dict:
    """Measured matmul FLOP per CPU second, fp32 and bf16: square 1024 and each model width's
    (4096 x W) @ (W x W) (the shape of the transformer's linear layers at batch 64)."""

    from thinkpix.models.flops import matmul_rate

    def rate(m, k, n, dtype):
        return matmul_rate(m, k, n, dtype, seconds_each, clock=time.process_time)

    out = {"square_1024": {"fp32": rate(1024, 1024, 1024, torch.float32), "bf16": rate(1024, 1024, 1024, torch.bfloat16)}}
    for w in widths:
        out[f"4096x{w}@{w}x{w}"] = {"fp32": rate(4096, w, w, torch.float32), "bf16": rate(4096, w, w, torch.bfloat16)}
    return out


def compare(args) -> None:
    from thinkpix.files import write_json
    from thinkpix.models.flops import count_flops
    from thinkpix.models.registry import size_config
    from thinkpix.precision import PRECISIONS, autocast, cpu_bf16_flags, resolve
    from thinkpix.sampling import generate_images

    settings = [p.strip() for p in args.precision.split(",") if p.strip()]
    sizes = [s.strip() for s in args.size.split(",") if s.strip()]
    if not settings or any(p not in PRECISIONS for p in settings):
        raise SystemExit(f"--precision: a comma list of {', '.join(PRECISIONS)}")
    if "fp32" not in settings:
        settings.insert(0, "fp32")  # the reference of every speed-up
    widths = {}
    for s in sizes:
        c = size_config("mmdit", s)
        widths[s] = c["num_attention_heads"] * c["attention_head_dim"]
    prompts = [f"a photo of {n} red circles and a blue square" for n in ("one", "two", "three", "four")] * 2
    result = {
        "command": (f"python -m benchmarks.bench_training --precision {args.precision} --size {args.size} "
                    f"--rounds {args.rounds} --threads {args.threads} --batch-size {args.batch_size}"),
        "machine": platform.processor() or platform.machine(), "threads": args.threads,
        "batch_size": args.batch_size, "space": args.space, "clock": "process CPU time (time.process_time)", "cpu_bf16_flags": list(cpu_bf16_flags()),
        "auto_resolves_to": resolve("auto", "cpu"), "rounds": args.rounds,
        "sampling": {"images": len(prompts), "steps": args.sample_steps, "guidance": 3.0, "sampler": "euler"},
        "matmul_peaks_flop_per_s": peaks(sorted(set(widths.values())), 1.0), "sizes": {},
    }
    for size in sizes:
        model = build(args.space, size)
        steppers = {p: training_parts(model, args.batch_size, resolve(p, "cpu"))[2] for p in settings}
        flops = count_flops(lambda: steppers["fp32"](0))  # the whole step: transformer, autoencoder encode, text
        steps = {p: [] for p in settings}
        samples = {p: [] for p in settings}
        shares = {}
        for p in settings:  # warm-up of every setting (the text cache holds the batch's prompts), then its profile
            with autocast(p):
                steppers[p](0)
                shares[p] = time_shares(lambda: steppers[p](0))
                model.eval()
                generate_images(model, prompts[:2], seed=0, steps=2, guidance=3.0)
                model.train()
        for r in range(args.rounds):  # alternated: each round runs every setting once
            for p in settings:
                with autocast(p):
                    steps[p].append(seconds(lambda: steppers[p](0)))  # the same batch: no setting meets new prompts
                    model.eval()
                    samples[p].append(seconds(lambda: generate_images(model, prompts, seed=0, steps=args.sample_steps,
                                                                      guidance=3.0)))
                    model.train()
        step_s = {p: min(v) for p, v in steps.items()}  # the fastest round: other work on the machine only adds time
        sample_s = {p: min(v) for p, v in samples.items()}
        peak = result["matmul_peaks_flop_per_s"][f"4096x{widths[size]}@{widths[size]}x{widths[size]}"]
        entry = {"width": widths[size], "transformer_parameters": sum(x.numel() for x in model.transformer.parameters()),
                 "train_step_flops_per_image": flops / args.batch_size, "precisions": {}}
        for p in settings:
            rate = flops / step_s[p]
            entry["precisions"][p] = {
                "resolved": resolve(p, "cpu"),
                "train_images_per_s": args.batch_size / step_s[p], "train_step_s": step_s[p],
                "train_step_s_median": statistics.median(steps[p]), "sample_s_median": statistics.median(samples[p]),
                "sample_images_per_s": len(prompts) / sample_s[p],
                "train_speedup": step_s["fp32"] / step_s[p], "sample_speedup": sample_s["fp32"] / sample_s[p],
                "time_shares": shares[p], "train_flop_rate": rate,
                "flop_rate_vs_fp32_matmul_peak": rate / peak["fp32"],
                "flop_rate_vs_bf16_matmul_peak": rate / peak["bf16"],
            }
        result["sizes"][size] = entry
        write_json(args.out, result)  # after every size: a cut run keeps what it measured
        print(f"{size} (width {widths[size]}):")
        for p, e in entry["precisions"].items():
            s = e["time_shares"]
            print(f"  {p:5s} train {e['train_images_per_s']:6.1f} img/s (x{e['train_speedup']:.2f})  sample "
                  f"{e['sample_images_per_s']:6.2f} img/s (x{e['sample_speedup']:.2f})  matmul {s['matmul']:.0%} "
                  f"attention {s['attention']:.0%} conv {s['convolution']:.0%} adamw {s['optimizer_step']:.0%} "
                  f"other {s['other']:.0%}  FLOP rate {e['flop_rate_vs_fp32_matmul_peak']:.2f} of fp32 peak, "
                  f"{e['flop_rate_vs_bf16_matmul_peak']:.2f} of bf16")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default=None, help="JSON file (default benchmarks/results/training.json, "
                        "with --precision benchmarks/results/precision.json)")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--space", choices=("latent", "pixel"), default="latent")
    parser.add_argument("--precision", default=None, help="compare settings, e.g. fp32,bf16,auto (fp32 always runs)")
    parser.add_argument("--size", default="demo", help="model sizes to compare (with --precision), e.g. demo,w256,w384")
    parser.add_argument("--rounds", type=int, default=3, help="alternated rounds (with --precision)")
    parser.add_argument("--sample-steps", type=int, default=10, help="sampler steps (with --precision)")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    if args.precision:
        args.out = args.out or "benchmarks/results/precision.json"
        compare(args)
    else:
        args.out = args.out or "benchmarks/results/training.json"
        single(args)


if __name__ == "__main__":
    main()
