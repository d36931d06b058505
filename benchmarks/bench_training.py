"""Training and sampling throughput of the demo-size text-to-image model, and the training
FLOP rate as a fraction of this machine's measured fp32 matmul rate (same thread count).

    python -m benchmarks.bench_training --out benchmarks/results/training.json

Uses the bundled autoencoder and the frozen MiniLM text encoder (a freshly initialised demo-size
transformer: the cost does not depend on its weights), at batch 64, one thread, as in training.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import time

import torch


def build(space: str):
    from thinkpix.bundled import bundled_path
    from thinkpix.models.t2i import TextToImage

    ae = bundled_path("shapes-autoencoder") if space == "latent" else ""
    return TextToImage.create("demo", space, "minilm", 32, ae)


def timed(fn, repeats: int) -> float:
    fn()  # warm-up (and text-embedding cache fill)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--out", default="benchmarks/results/training.json")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--space", choices=("latent", "pixel"), default="latent")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from thinkpix.models.flops import count_flops, matmul_peak
    from thinkpix.sampling import generate_images
    from thinkpix.training.config import config_from_dict
    from thinkpix.training.objectives import FlowObjective

    model = build(args.space)
    cfg = config_from_dict({"model": {"kind": "mmdit", "size": "demo", "space": "pixel"}, "batch_size": args.batch_size})
    objective = FlowObjective(cfg, model).train()
    opt = torch.optim.AdamW([p for p in objective.parameters() if p.requires_grad], lr=1e-4)
    indices = range(args.batch_size)

    def train_step():
        opt.zero_grad()
        loss, _ = objective(0, indices)
        loss.backward()
        opt.step()

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


if __name__ == "__main__":
    main()
