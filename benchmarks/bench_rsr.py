"""RSR forward overhead on CPU: measured time ratios next to the FLOP ratios the config predicts.

    python -m benchmarks.bench_rsr --out benchmarks/results/rsr_overhead.json
    python -m benchmarks.bench_rsr --backbones dit,flux --repeats 11    # a subset, fewer rounds

For each backbone, on a moderately sized model (width 256, batch 8, 64 image tokens, one thread,
eval, no grad), with RSR on three blocks (rank 16, top-1):
- sd3:  SD3Transformer2DModel, 8 joint blocks, 16 text tokens, RSR on blocks 2/4/6;
- dit:  DiTTransformer2DModel (class-conditional, 1000 classes), 8 blocks, no text, RSR on blocks 2/4/6;
- flux: FluxTransformer2DModel, 4 double-stream + 8 single-stream blocks (FLUX's 1:2 ratio),
        16 text tokens, rotary embeddings, RSR on double-stream blocks 1/2/3;
it measures
- forward time with RSR at T = 1, 2, 3, 5 divided by the base forward time, next to the predicted
  FLOP ratio (`thinkpix.integrations.<backbone>.estimate_forward_flops`);
- time with M = 16 experts / time with M = 2 at top-1 and the same T (target <= 1.10: the sparse
  path's cost follows the selected experts, not the pool). Experts get random B and gates random
  output weights, so tokens really spread over all experts.
Timings: `--warmup` untimed forwards, then `--repeats` rounds in which every configuration of a
backbone runs once, back to back. A time ratio is the median over rounds of the per-round ratio
(paired, so that drift in machine load cancels); the ratio of medians and the ratio of minima (the
least disturbed estimate on a shared machine) are reported too.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time

import torch

BATCH, TEXT_TOKENS = 8, 16
RSR = dict(rank=16, top_k=1)

MODELS = {
    "sd3": dict(sample_size=16, patch_size=2, in_channels=4, out_channels=4, num_layers=8, attention_head_dim=64,
                num_attention_heads=4, joint_attention_dim=64, caption_projection_dim=256, pooled_projection_dim=64,
                pos_embed_max_size=16),
    "dit": dict(num_attention_heads=4, attention_head_dim=64, in_channels=4, out_channels=8, num_layers=8,
                sample_size=16, patch_size=2, num_embeds_ada_norm=1000),
    "flux": dict(patch_size=1, in_channels=16, num_layers=4, num_single_layers=8, attention_head_dim=64,
                 num_attention_heads=4, joint_attention_dim=64, pooled_projection_dim=64, axes_dims_rope=(16, 24, 24)),
}
LAYERS = {"sd3": [2, 4, 6], "dit": [2, 4, 6], "flux": [1, 2, 3]}
IMAGE_TOKENS = 64  # sd3/dit: (16 / 2) ** 2 patches; flux: an 8 x 8 grid of packed latents


def model_class(backbone: str):
    import diffusers

    return {"sd3": diffusers.SD3Transformer2DModel, "dit": diffusers.DiTTransformer2DModel,
            "flux": diffusers.FluxTransformer2DModel}[backbone]


def build(backbone: str, num_experts: int | None, steps: int):
    from thinkpix import RSRConfig, attach_rsr

    torch.manual_seed(0)
    model = model_class(backbone)(**MODELS[backbone]).eval()
    cfg = None
    if num_experts is not None:
        cfg = RSRConfig(layers=LAYERS[backbone], num_experts=num_experts, latent_steps=steps, **RSR)
        trained_looking(attach_rsr(model, cfg))
    return model, cfg


def trained_looking(rsr, seed: int = 1):
    """Seeded non-zero experts and gates: a trained-looking adapter, routing spread over the pool
    (a zero-init adapter would time a degenerate routing). -> rsr"""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for e in rsr.experts.values():
            e.B.normal_(0.0, 0.02, generator=g)
        for gate in rsr.gates.values():
            gate.out.weight.normal_(0.0, 1.0, generator=g)
    return rsr


def inputs(backbone: str) -> dict:
    g = torch.Generator().manual_seed(2)
    m = MODELS[backbone]
    if backbone == "sd3":
        s = m["sample_size"]
        return dict(hidden_states=torch.randn(BATCH, m["in_channels"], s, s, generator=g),
                    encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, m["joint_attention_dim"], generator=g),
                    pooled_projections=torch.randn(BATCH, m["pooled_projection_dim"], generator=g),
                    timestep=torch.full((BATCH,), 500.0), return_dict=False)
    if backbone == "dit":
        s = m["sample_size"]
        return dict(hidden_states=torch.randn(BATCH, m["in_channels"], s, s, generator=g),
                    timestep=torch.full((BATCH,), 500, dtype=torch.long),
                    class_labels=torch.randint(0, m["num_embeds_ada_norm"], (BATCH,), generator=g), return_dict=False)
    side = int(IMAGE_TOKENS ** 0.5)
    grid = torch.stack(torch.meshgrid(torch.zeros(1), torch.arange(side * 1.0), torch.arange(side * 1.0),
                                      indexing="ij"), -1).reshape(-1, 3)
    return dict(hidden_states=torch.randn(BATCH, IMAGE_TOKENS, m["in_channels"], generator=g),
                encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, m["joint_attention_dim"], generator=g),
                pooled_projections=torch.randn(BATCH, m["pooled_projection_dim"], generator=g),
                timestep=torch.full((BATCH,), 0.5), img_ids=grid, txt_ids=torch.zeros(TEXT_TOKENS, 3),
                return_dict=False)


def flops(backbone: str, model, cfg, steps: int) -> dict:
    from thinkpix.integrations import dit, flux, sd3

    if backbone == "dit":
        return dit.estimate_forward_flops(model, BATCH, IMAGE_TOKENS, cfg, steps=steps)
    mod = sd3 if backbone == "sd3" else flux
    return mod.estimate_forward_flops(model, BATCH, IMAGE_TOKENS, TEXT_TOKENS, cfg, steps=steps)


def bench_backbone(backbone: str, warmup: int, repeats: int) -> dict:
    runs = {"base": (None, 0), "M2_T1": (2, 1), "M2_T2": (2, 2), "M16_T2": (16, 2), "M2_T3": (2, 3), "M2_T5": (2, 5)}
    models = {name: build(backbone, *spec) for name, spec in runs.items()}
    x = inputs(backbone)
    times = {name: [] for name in runs}
    with torch.inference_mode():
        for name, (model, _) in models.items():
            for _ in range(warmup):
                model(**x)
        for _ in range(repeats):  # round-robin: load drift hits every configuration alike
            for name, (model, _) in models.items():
                t0 = time.perf_counter()
                model(**x)
                times[name].append(time.perf_counter() - t0)
    med = {name: statistics.median(v) for name, v in times.items()}
    best = {name: min(v) for name, v in times.items()}  # least disturbed by other processes

    def paired(a, b):  # median over rounds of time(a) / time(b) measured back to back: cancels load drift
        return statistics.median(x / y for x, y in zip(times[a], times[b]))

    base_model = models["base"][0]
    f = {name: flops(backbone, base_model, models[name][1], runs[name][1]) for name in runs}
    rows = []
    for T in (1, 2, 3, 5):
        name = f"M2_T{T}"
        rows.append({"config": name, "latent_steps": T, "num_experts": 2,
                     "time_ratio": paired(name, "base"), "time_ratio_of_medians": med[name] / med["base"],
                     "time_ratio_min": best[name] / best["base"],
                     "flop_ratio": f[name]["total"] / f["base"]["total"],
                     "median_ms": 1e3 * med[name]})
    pool_ratio = paired("M16_T2", "M2_T2")
    return {
        "model_class": type(base_model).__name__, "model": MODELS[backbone], "batch": BATCH,
        "image_tokens": IMAGE_TOKENS, "text_tokens": 0 if backbone == "dit" else TEXT_TOKENS,
        "rsr": dict(RSR, layers=LAYERS[backbone]),
        "base_median_ms": 1e3 * med["base"], "base_gflops": f["base"]["total"] / 1e9,
        "overhead": rows,
        "experts_16_vs_2": {"time_ratio": pool_ratio, "target": 1.10, "ok": pool_ratio <= 1.10,
                            "time_ratio_min": best["M16_T2"] / best["M2_T2"],
                            "flop_ratio": f["M16_T2"]["total"] / f["M2_T2"]["total"],
                            "m2_median_ms": 1e3 * med["M2_T2"], "m16_median_ms": 1e3 * med["M16_T2"]},
        "times_s": times,
    }


def report(backbone: str, r: dict, threads: int) -> None:
    text = f"{r['text_tokens']} text tokens" if r["text_tokens"] else "no text"
    print(f"[{backbone}] {r['model_class']}: base forward {r['base_median_ms']:.1f} ms ({r['base_gflops']:.2f} GFLOP, "
          f"batch {r['batch']}, {r['image_tokens']} image tokens, {text}, {threads} thread)")
    print(f"  RSR layers {r['rsr']['layers']}, rank {r['rsr']['rank']}, M=2, top-1")
    print(f"  {'T':>3} {'time / base':>12} {'(min / min)':>12} {'FLOPs / base':>13} {'median ms':>10}")
    for row in r["overhead"]:
        print(f"  {row['latent_steps']:>3} {row['time_ratio']:>12.3f} {row['time_ratio_min']:>12.3f} "
              f"{row['flop_ratio']:>13.3f} {row['median_ms']:>10.1f}")
    pool = r["experts_16_vs_2"]
    print(f"  M=16 / M=2 at top-1, T=2: time {pool['time_ratio']:.3f} (min/min {pool['time_ratio_min']:.3f}; "
          f"target <= 1.10: {'ok' if pool['ok'] else 'MISSED'}), FLOPs {pool['flop_ratio']:.3f}")


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/rsr_overhead.json")
    ap.add_argument("--backbones", default="sd3,dit,flux", help="comma-separated subset of sd3,dit,flux")
    ap.add_argument("--warmup", type=int, default=3)
    ap.add_argument("--repeats", type=int, default=31)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args(argv)
    backbones = [b.strip() for b in args.backbones.split(",") if b.strip()]
    unknown = sorted(set(backbones) - set(MODELS))
    if unknown:
        ap.error(f"unknown backbone(s) {unknown}; choose from {sorted(MODELS)}")
    torch.set_num_threads(args.threads)

    results = {}
    for backbone in backbones:
        results[backbone] = bench_backbone(backbone, args.warmup, args.repeats)
        report(backbone, results[backbone], args.threads)
    result = {
        "command": "python -m benchmarks.bench_rsr " + " ".join(sys.argv[1:] if argv is None else argv),
        "threads": args.threads, "warmup": args.warmup, "repeats": args.repeats,
        "load_average_1min_at_end": os.getloadavg()[0] if hasattr(os, "getloadavg") else None,
        "torch": torch.__version__, "machine": platform.machine(), "processor": platform.processor(),
        "backbones": results,
    }
    from thinkpix.files import portable, write_json
    out = write_json(args.out, portable(result), indent=2)
    print(f"wrote {out}")
    return result


if __name__ == "__main__":
    main()
