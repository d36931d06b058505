"""The docs' precision tables from the committed benchmark results (`benchmarks/bench_training.py
--precision`, `benchmarks/bench_fastpath.py`): what a bf16 speed-up could be, where a step's time goes,
the fast-path variants. Each table is tested verbatim against docs/training.md."""

from __future__ import annotations


def matmul_bound(result: dict, size: str) -> float:
    """The training speed-up bf16 matmuls alone could give (Amdahl): the fp32 step's matmul share m sped
    up by the measured bf16/fp32 matmul rate r at the model's shape, the rest unchanged: 1 / (1 - m + m / r)."""
    entry = result["sizes"][size]
    m = entry["precisions"]["fp32"]["time_shares"]["matmul"]
    peak = result["matmul_peaks_flop_per_s"][f"4096x{entry['width']}@{entry['width']}x{entry['width']}"]
    return 1.0 / (1.0 - m + m / (peak["bf16"] / peak["fp32"]))


def precision_table(result: dict) -> str:
    """The Markdown table of docs/training.md (Precision) from a `bench_training --precision` result (tested
    verbatim)."""
    rows = ["| size (width) | setting | train img/s | train speed-up | bound | sample img/s | sample speed-up | matmul "
            "| attention | conv | AdamW | rest | FLOP rate / fp32 peak | / bf16 peak |", "|" + "---|" * 14]
    for size, entry in result["sizes"].items():
        for p, e in entry["precisions"].items():
            bound = f"{matmul_bound(result, size):.2f}x" if e["resolved"] == "bf16" else "-"
            s = e["time_shares"]
            shares = " | ".join(f"{s[k]:.0%}" for k in ("matmul", "attention", "convolution", "optimizer_step", "other"))
            rows.append(f"| {size} ({entry['width']}) | {p} | {e['train_images_per_s']:.1f} | {e['train_speedup']:.2f}x "
                        f"| {bound} "
                        f"| {e['sample_images_per_s']:.2f} | {e['sample_speedup']:.2f}x | {shares} "
                        f"| {e['flop_rate_vs_fp32_matmul_peak']:.2f} | {e['flop_rate_vs_bf16_matmul_peak']:.2f} |")
    return "\n".join(rows)


def profile_table(result: dict, size: str, settings=("fp32", "bf16"), n: int = 8) -> str:
    """The heaviest ops of one training step of `size` (profiled self time share), side by side."""
    tops = {p: result["sizes"][size]["precisions"][p]["time_shares"]["top_ops"][:n] for p in settings}
    rows = ["| rank | " + " | ".join(f"{p} op | share" for p in settings) + " |", "|" + "---|" * (1 + 2 * len(settings))]
    for i in range(n):
        cells = " | ".join(f"`{tops[p][i][0].replace('aten::', '')}` | {tops[p][i][1]:.0%}" for p in settings)
        rows.append(f"| {i + 1} | {cells} |")
    return "\n".join(rows)


def fastpath_table(result: dict) -> str:
    """The Markdown table of docs/training.md (Precision) from a `benchmarks/bench_fastpath.py` result (tested
    verbatim)."""
    rows = ["| variant | step (CPU) | step (wall) | speed-up over fp32 loop | over bf16 |", "|---|---|---|---|---|"]
    for name, v in result["variants"].items():
        rows.append(f"| {name} | {v['step_cpu_s'] * 1000:.0f} ms | {v['step_wall_s'] * 1000:.0f} ms "
                    f"| {v['speedup_vs_fp32_loop_cpu']:.2f}x | {v['speedup_vs_bf16_cpu']:.2f}x |")
    return "\n".join(rows)
