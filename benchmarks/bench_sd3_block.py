"""The cost of RSR at real scale: one SD3-medium-sized joint block on CPU, measured as ratios.

    python -m benchmarks.bench_sd3_block --out benchmarks/results/sd3_block.json

One `JointTransformerBlock` of SD3-medium's size (width 1536, 24 heads of 64, 1024 image tokens =
a 64x64 latent in 2x2 patches, 333 text tokens = 77 CLIP + 256 T5, batch 1) inside a diffusers
`SD3Transformer2DModel`, with RSR on it (rank 128, M = 2 experts, top-1, T = 2 latent steps, the
paper's adapter) against the same block at T = 0 (the original diffusers processor, bit for bit
the base block). Reported:
- forward time with RSR / without (eval, no grad; paired rounds, median of per-round ratios) next to
  the FLOP ratio (the accounting of `thinkpix.integrations.sd3.estimate_forward_flops` restricted to
  the block); target: time ratio <= 1.10 x FLOP ratio;
- memory of one RSR training step (forward + backward of the adapter, frozen base), with and without
  gradient checkpointing of the block, each in a fresh subprocess: the tensors kept for backward
  (counted with autograd's saved-tensor hooks; per block, this is what checkpointing saves in a deep
  network) and the peak resident set size during the step (sampled every millisecond) minus the size
  just before it (for a single block, checkpointing recomputes the activations inside backward, so the
  peak of one block alone is not expected to drop).
Experts get random B and gates random output weights, so tokens spread over both experts.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import threading
import time

import torch

WIDTH, HEADS, IMAGE_TOKENS, TEXT_TOKENS, BATCH = 1536, 24, 1024, 333, 1
RSR = dict(layers=[0], num_experts=2, latent_steps=2, rank=128, top_k=1)


def build(steps: int = 2):
    """-> (transformer with RSR on block 0, block 0, its RSRModule). Block 0 is a full joint block
    (the last block of an SD3 transformer has no text out-projection, hence two layers)."""
    from diffusers import SD3Transformer2DModel

    from thinkpix import RSRConfig, attach_rsr

    from .bench_rsr import trained_looking

    torch.manual_seed(0)
    model = SD3Transformer2DModel(sample_size=64, patch_size=2, in_channels=16, out_channels=16, num_layers=2,
                                  attention_head_dim=WIDTH // HEADS, num_attention_heads=HEADS,
                                  joint_attention_dim=64, caption_projection_dim=WIDTH, pooled_projection_dim=64,
                                  pos_embed_max_size=64)
    rsr = trained_looking(attach_rsr(model, RSRConfig(**dict(RSR, latent_steps=steps))))
    return model, model.transformer_blocks[0], rsr


def block_inputs() -> dict:
    g = torch.Generator().manual_seed(2)
    return dict(hidden_states=torch.randn(BATCH, IMAGE_TOKENS, WIDTH, generator=g),  # (B, N, D)
                encoder_hidden_states=torch.randn(BATCH, TEXT_TOKENS, WIDTH, generator=g),  # (B, L, D)
                temb=torch.randn(BATCH, WIDTH, generator=g))  # (B, D)


def call_block(block, rsr, x: dict):
    rsr.begin_forward(None)  # what the transformer's pre-hook does at the start of every forward
    return block(**x)


def block_flops(model, rsr, steps: int) -> dict:
    """FLOPs of block 0 (matmuls + attention), same accounting as `sd3.estimate_forward_flops`."""
    from thinkpix.integrations import common

    D, B, N, L = WIDTH, BATCH, IMAGE_TOKENS, TEXT_TOKENS
    block = model.transformer_blocks[0]
    f = 2 * B * D * block.norm1.linear.out_features + 2 * B * D * 6 * D  # adaLN of both streams
    f += 2 * (N + L) * B * 3 * D * D + 4 * B * (N + L) ** 2 * D  # q/k/v of both streams, QK^T and AV
    f += 2 * B * (N + L) * D * D + 16 * B * (N + L) * D * D  # out-projections, 4x MLPs
    extra = common.rsr_flops(model, "attn", rsr.config, steps, B, N, N + L)
    return {"base": f, "rsr": extra, "total": f + extra}


def time_forward(warmup: int, repeats: int) -> dict:
    model, block, rsr = build()
    x = block_inputs()
    times = {"base": [], "rsr": []}
    with torch.inference_mode():
        for name, T in (("base", 0), ("rsr", RSR["latent_steps"])):
            rsr.set_latent_steps(T)
            for _ in range(warmup):
                call_block(block, rsr, x)
        for _ in range(repeats):  # paired rounds: load drift hits both alike
            for name, T in (("base", 0), ("rsr", RSR["latent_steps"])):
                rsr.set_latent_steps(T)
                t0 = time.perf_counter()
                call_block(block, rsr, x)
                times[name].append(time.perf_counter() - t0)
    f_base, f_rsr = block_flops(model, rsr, 0), block_flops(model, rsr, RSR["latent_steps"])
    time_ratio = statistics.median(a / b for a, b in zip(times["rsr"], times["base"]))
    flop_ratio = f_rsr["total"] / f_base["total"]
    return {"time_ratio": time_ratio, "time_ratio_min": min(times["rsr"]) / min(times["base"]),
            "flop_ratio": flop_ratio, "time_over_flop_ratio": time_ratio / flop_ratio, "target": 1.10,
            "ok": time_ratio / flop_ratio <= 1.10, "base_gflops": f_base["total"] / 1e9,
            "rsr_gflops": f_rsr["total"] / 1e9, "base_median_s": statistics.median(times["base"]),
            "rsr_median_s": statistics.median(times["rsr"]), "times_s": times}


def profile_rsr_forward() -> str:
    """Where the time of one RSR forward (T = 2) goes, by op (after one warm-up forward)."""
    from torch.profiler import profile

    _, block, rsr = build()
    x = block_inputs()
    with torch.inference_mode():
        call_block(block, rsr, x)
        with profile() as prof:
            call_block(block, rsr, x)
    return prof.key_averages().table(sort_by="self_cpu_time_total", row_limit=12)


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


def train_step_memory(checkpointing: bool) -> dict:
    """One RSR training step on the block, in a fresh process (nothing cached from an earlier step):
    - `saved_mib`: activations (not weights) the forward keeps alive for backward (what a network of such blocks holds
      per block until its backward; with checkpointing, only the block's inputs);
    - `peak_extra_mib`: peak resident set size during forward + backward minus the size just before."""
    from torch.utils.checkpoint import checkpoint

    model, block, rsr = build()
    model.train()
    x = block_inputs()
    storages: dict[int, int] = {}
    weights = {p.untyped_storage().data_ptr() for p in model.parameters()}  # held anyway: not activations

    def pack(t):  # every activation saved for backward, counted once per storage
        if t.untyped_storage().data_ptr() not in weights:
            storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
        return t

    def forward():
        if checkpointing:  # the block's inputs are what checkpointing keeps
            for t in x.values():
                storages[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes()
            return checkpoint(lambda h, e, t: call_block(block, rsr, dict(hidden_states=h, encoder_hidden_states=e,
                                                                          temb=t)),
                              x["hidden_states"], x["encoder_hidden_states"], x["temb"], use_reentrant=False)
        return call_block(block, rsr, x)

    peak, done = [0], threading.Event()

    def sample():
        while not done.is_set():
            peak[0] = max(peak[0], _rss_bytes())
            time.sleep(0.001)

    before = _rss_bytes()
    peak[0] = before
    watcher = threading.Thread(target=sample, daemon=True)
    watcher.start()
    t0 = time.perf_counter()
    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        enc, hid = forward()
    saved = sum(storages.values())
    hid.square().mean().backward()
    seconds = time.perf_counter() - t0
    done.set()
    watcher.join()
    grads = sum(int(p.grad is not None) for p in rsr.parameters())
    return {"checkpointing": checkpointing, "saved_mib": saved / 2**20, "peak_extra_mib": (peak[0] - before) / 2**20,
            "step_s": seconds, "rsr_tensors_with_grad": grads, "rsr_parameters": sum(p.numel() for p in rsr.parameters())}


def main(argv=None) -> dict:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--out", default="benchmarks/results/sd3_block.json")
    ap.add_argument("--warmup", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=2)
    ap.add_argument("--memory-only", choices=("on", "off"), default=None, help=argparse.SUPPRESS)  # subprocess
    ap.add_argument("--profile", action="store_true", help="print torch.profiler's op table of one RSR forward, then stop")
    args = ap.parse_args(argv)
    torch.set_num_threads(args.threads)
    if args.profile:
        print(profile_rsr_forward())
        return {}
    if args.memory_only:
        print(json.dumps(train_step_memory(args.memory_only == "on")))
        return {}
    timing = time_forward(args.warmup, args.repeats)
    print(f"forward of one SD3-medium joint block: base {timing['base_median_s']:.3f} s "
          f"({timing['base_gflops']:.1f} GFLOP), RSR M=2 T=2 rank 128 {timing['rsr_median_s']:.3f} s; "
          f"time ratio {timing['time_ratio']:.3f} vs FLOP ratio {timing['flop_ratio']:.3f} "
          f"-> {timing['time_over_flop_ratio']:.3f}x (target <= 1.10: {'ok' if timing['ok'] else 'MISSED'})")
    memory = {}
    for mode in ("off", "on"):
        cmd = [sys.executable, "-m", "benchmarks.bench_sd3_block", "--memory-only", mode, "--threads", str(args.threads)]
        out = subprocess.run(cmd, check=True, capture_output=True, text=True).stdout.strip().splitlines()[-1]
        memory[f"checkpointing_{mode}"] = json.loads(out)
        m = memory[f"checkpointing_{mode}"]
        print(f"training step, gradient checkpointing {mode}: saved for backward {m['saved_mib']:.0f} MiB, "
              f"peak RSS +{m['peak_extra_mib']:.0f} MiB")
    for key in ("saved_mib", "peak_extra_mib"):
        memory[f"{key}_ratio_on_over_off"] = (memory["checkpointing_on"][key]
                                              / max(memory["checkpointing_off"][key], 1e-9))
    result = {
        "command": "python -m benchmarks.bench_sd3_block " + " ".join(sys.argv[1:] if argv is None else argv),
        "block": {"width": WIDTH, "heads": HEADS, "image_tokens": IMAGE_TOKENS, "text_tokens": TEXT_TOKENS,
                  "batch": BATCH}, "rsr": RSR, "threads": args.threads, "warmup": args.warmup,
        "repeats": args.repeats, "forward": timing, "training_memory": memory,
        "load_average_1min_at_end": os.getloadavg()[0], "torch": torch.__version__, "machine": platform.machine(),
    }
    from thinkpix.files import portable, write_json

    print(f"wrote {write_json(args.out, portable(result), indent=2)}")
    return result


if __name__ == "__main__":
    main()
