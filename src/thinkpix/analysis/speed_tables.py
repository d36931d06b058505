"""The docs' speed tables from the committed benchmark results: `torch.compile` of the transformer
(`benchmarks/bench_compile.py`) and the thread settings of training (`benchmarks/bench_threads.py`).
Each table is tested verbatim against docs/training.md."""

from __future__ import annotations


def compile_table(result: dict) -> str:
    """The Markdown table of docs/training.md (torch.compile) from a result (tested verbatim)."""
    rows = ["| size (width) | setting | train step (CPU) | compiled | train speed-up | sample call (CPU) | compiled "
            "| sample speed-up | first compiled train step | break-even steps | max abs diff: loss | grads | sampled latents |",
            "|" + "---|" * 13]
    for size, entry in result["sizes"].items():
        for p in ("fp32", "bf16"):
            e, c = entry["variants"][f"{p} eager"], entry["variants"][f"{p} compiled"]
            even, d = c["break_even_train_steps"], entry["max_abs_diff"][p]
            rows.append(
                f"| {size} ({entry['width']}) | {p} | {e['train_step_cpu_s'] * 1000:.0f} ms "
                f"| {c['train_step_cpu_s'] * 1000:.0f} ms | {c['train_speedup_over_eager']:.2f}x "
                f"| {e['sample_call_cpu_s']:.2f} s | {c['sample_call_cpu_s']:.2f} s | {c['sample_speedup_over_eager']:.2f}x "
                f"| {entry['compile_s'][p]['train_first_fwd_bwd_cpu']:.0f} s | {'never' if even is None else f'{even:.0f}'} "
                f"| {d['loss']:.1e} | {d['grad_max_abs_diff']:.1e} | {d['sample_latents']:.1e} |")
    return "\n".join(rows)


def threads_table(result: dict) -> str:
    """The Markdown table of the docs from a result (tested verbatim)."""
    rows = ["| setting | train img/s (wall) | over 1 x 1 | CPU s / image | load average (before - after) |",
            "|---|---|---|---|---|"]
    for name, s in result["settings"].items():
        loads = [x for r in s["rounds"] for x in (r["load_before"], r["load_after"])]
        ratio = "-" if s["speedup_over_1x1"] is None else f"{s['speedup_over_1x1']:.2f}x"
        rows.append(f"| {name} | {s['images_per_s']:.1f} | {ratio} | {s['cpu_s_per_image']:.4f} "
                    f"| {min(loads):.1f} - {max(loads):.1f} |")
    return "\n".join(rows)
