"""Figures the docs show (small, compressed PNGs under docs/figures/).

    python -m benchmarks.make_figures base-samples                          # docs/figures/base_samples.png
    python -m benchmarks.make_figures think-steps --adapter runs/ft_rsr/adapter   # docs/figures/think_steps.png
    python -m benchmarks.make_figures class-arms --work outputs/class_table --arm base --arm lora --arm rsr
                                                                            # docs/figures/class_arms.png
    python -m benchmarks.make_figures class-failures --work outputs/class_table --arm base
                                                                            # docs/figures/class_failures.png
    python -m benchmarks.make_figures routing --run full=R/rsr_best_s1 --run tokens_only=R/rsr_tokens_s1
                                                                            # docs/figures/routing_usage.png
    python -m benchmarks.make_figures t-curve --report benchmarks/results/trained_in_s0.json
                                                                            # docs/figures/trained_in_t_curve.png
    python -m benchmarks.make_figures t-curve --report experiments/results/shapes_rsr_depth_s0.json --prefix loop_T \
        --reference base,deep,lora --out docs/figures/shapes_rsr_depth_t_curve.png
"""

from __future__ import annotations

import argparse

import numpy as np
import torch

BASE_PROMPTS = [
    "a photo of a red circle",
    "a photo of two blue squares",
    "a photo of three yellow triangles",
    "a photo of a green square left of a pink circle",
    "a photo of an orange triangle and a white circle",
    "a photo of a purple circle above a blue triangle",
]


def base_samples(out: str = "docs/figures/base_samples.png", model: str = "shapes-base") -> None:
    from thinkpix.bundled import resolve_model
    from thinkpix.imaging import grid, save_png
    from thinkpix.models.t2i import TextToImage
    from thinkpix.sampling import generate_images

    m = TextToImage.load(resolve_model(model))
    rows = [grid(generate_images(m, [p] * 4, seed=0, steps=20, guidance=3.0), cols=4, upscale=3) for p in BASE_PROMPTS]
    sheet = np.concatenate([np.concatenate(rows[i : i + 2], axis=1) for i in range(0, len(rows), 2)], axis=0)
    print(f"wrote {save_png(sheet, out)} (rows, left to right: {BASE_PROMPTS})")


THINK_PROMPTS = ["a photo of a triangle left of a square", "a photo of three circles",
                 "a photo of a red square and a blue circle"]


def think_steps(adapter: str, out: str = "docs/figures/think_steps.png", model: str = "shapes-base",
                steps: tuple[int, ...] = (0, 1, 2, 3)) -> None:
    """Rows: prompts; columns: RSR latent steps T (0 = the base model), 4 seeds each."""
    from thinkpix.integrations.methods import load_adapter
    from thinkpix.bundled import resolve_model
    from thinkpix.imaging import grid, save_png
    from thinkpix.integrations.attach import set_latent_steps
    from thinkpix.models.t2i import TextToImage
    from thinkpix.sampling import generate_images

    m = TextToImage.load(resolve_model(model))
    load_adapter(m.transformer, adapter)
    m.eval()
    rows = []
    for prompt in THINK_PROMPTS:
        cells = []
        for t in steps:
            set_latent_steps(m.transformer, t)
            cells.append(grid(generate_images(m, [prompt] * 4, seed=0, steps=20, guidance=3.0), cols=4, upscale=2))
        rows.append(np.concatenate(cells, axis=1))
    print(f"wrote {save_png(np.concatenate(rows, axis=0), out)} (rows: {THINK_PROMPTS}; columns: T = {steps})")


def class_arms(work: str, arms: list[str], out: str = "docs/figures/class_arms.png", per_class: int = 1) -> None:
    """Rows: the arms of a `benchmarks.class_table` run (read from its work folder, nothing is sampled);
    columns: the classes in label order, `per_class` images each (the table's first images, same seeds
    in every row)."""
    from pathlib import Path

    from safetensors.torch import load_file

    from thinkpix.imaging import grid, save_png

    rows = []
    for arm in arms:
        images = load_file(Path(work) / f"{arm}.safetensors")["images"]  # (N, H, W, 3); image i has class i % 24
        rows.append(grid(images[: 24 * per_class], cols=24, upscale=2))
    print(f"wrote {save_png(np.concatenate(rows, axis=0), out)} (row blocks: {arms}; columns: classes 0..23)")


def class_failures(work: str, arm: str, out: str = "docs/figures/class_failures.png", count: int = 24) -> None:
    """The first `count` images of a `benchmarks.class_table` arm that the class detector before
    the evaluator before its fix rejected (row 1-2) and the first `count` the detector now rejects (rows 3-4, if any),
    in table order, at 3x (read from the work folder; nothing is sampled)."""
    from pathlib import Path

    from safetensors.torch import load_file

    from .evaluator_versions import BEFORE, class_judgements
    from thinkpix.imaging import grid, save_png
    from thinkpix.worlds.classes.sets import CLASSES

    path = Path(work) / f"{arm}.safetensors"
    images = load_file(path)["images"]  # (N, H, W, 3); image i has class i % 24
    before, now = class_judgements(path, BEFORE), class_judgements(path)
    rows = []
    for name, verdicts in (("before", before), ("now", now)):
        wrong = [i for i, ok in enumerate(verdicts) if not ok][:count]
        print(f"rejected {name} ({sum(not v for v in verdicts)} of {len(verdicts)}), first {len(wrong)}: "
              + ", ".join(f"{i} {CLASSES[i % len(CLASSES)]}" + ("" if name == "now" or not now[i] else " (accepted now)")
                          for i in wrong))
        if wrong:
            rows.append(grid(images[wrong], cols=12, upscale=3))
    print(f"wrote {save_png(np.concatenate(rows, axis=0), out)}")


def _pyplot():
    """matplotlib's pyplot on the file-only Agg backend (figures are written, never shown)."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def routing(runs: list[str], out: str = "docs/figures/routing_usage.png") -> None:
    """The paper's Figure 4 analogue: expert usage (argmax share of the last expert) per diffusion-timestep
    bin and latent step, per RSR layer, read from each run's last validation probe (`metrics.jsonl`)."""
    import json
    from pathlib import Path

    plt = _pyplot()

    probes = []
    for spec in runs:
        label, _, run = spec.rpartition("=")
        records = [json.loads(line) for line in open(Path(run) / "metrics.jsonl")]
        last = [r for r in records if "probe" in r][-1]
        probes.append((label or Path(run).name, last))
    layers = len(probes[0][1]["probe"]["layers"])
    fig, axes = plt.subplots(len(probes), layers, figsize=(2.6 * layers, 1.9 * len(probes)), squeeze=False)
    for row, (label, record) in enumerate(probes):
        probe = record["probe"]
        for col, layer in enumerate(probe["layers"]):
            usage = np.array(layer["usage"])  # (bins, latent steps, experts)
            share = usage[..., -1].T  # (latent steps, bins): the last expert's share
            ax = axes[row][col]
            ax.imshow(share, vmin=0, vmax=1, cmap="coolwarm", aspect="auto")
            for (i, j), v in np.ndenumerate(share):
                ax.text(j, i, f"{v:.2f}", ha="center", va="center", fontsize=7)
            ax.set_xticks(range(len(probe["bins"])), [f"{b:.2f}" for b in probe["bins"]], fontsize=7)
            ax.set_yticks(range(share.shape[0]), [f"t{i + 1}" for i in range(share.shape[0])], fontsize=7)
            ax.set_title(f"{label}, block {layer['layer']} (step {record['step']})", fontsize=8)
            if row == len(probes) - 1:
                ax.set_xlabel("diffusion time t (1 = noise)", fontsize=7)
    fig.suptitle("share of tokens routed to the last expert, per latent step and timestep", fontsize=9)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def t_curve(report_file: str, out: str = "docs/figures/trained_in_t_curve.png", prefix: str = "rsr_T",
            references: list[str] | None = None) -> None:
    """Accuracy (GenEval overall, 95% interval) and sampling time per image against the latent steps T
    at inference, from a `compare_adapters` report whose arms PREFIX<T> are one model at several T;
    the `references` arms (default: every other arm, at most four) are drawn as horizontal bands (their
    overall and interval) for reference."""
    import json
    import re

    plt = _pyplot()

    arms = json.loads(open(report_file).read())["arms"]
    t_arm = re.compile(re.escape(prefix) + r"(\d+)")
    curve = sorted((int(m.group(1)), a) for n, a in arms.items() if (m := t_arm.fullmatch(n)))
    if not curve:
        raise SystemExit(f"no arm named {prefix}<T> in {report_file}")
    others = {n: a for n, a in arms.items() if not t_arm.fullmatch(n) and "overall_ci95" in a}
    if references:
        missing = [n for n in references if n not in others]
        if missing:
            raise SystemExit(f"no reference arm(s) {missing} in {report_file}; it has {sorted(others)}")
        others = {n: others[n] for n in references}
    if len(others) > 4:
        raise SystemExit(f"{len(others)} reference arms {sorted(others)}: choose at most four with --reference")
    ts = [t for t, _ in curve]
    fig, (acc, cost) = plt.subplots(1, 2, figsize=(7.5, 2.8))
    for (name, a), colour in zip(others.items(), ["0.5", "tab:green", "tab:purple", "tab:brown"]):
        lo, hi = a["overall_ci95"]
        acc.axhspan(lo, hi, color=colour, alpha=0.2)
        acc.axhline(a["overall"], color=colour, lw=1, label=name)
        cost.axhline(1000 * a["sampling"]["seconds_per_image"], color=colour, lw=1, label=name)
    y = np.array([a["overall"] for _, a in curve])
    err = np.array([[a["overall"] - a["overall_ci95"][0], a["overall_ci95"][1] - a["overall"]] for _, a in curve]).T
    acc.errorbar(ts, y, yerr=err, marker="o", color="tab:red", capsize=3, label=f"{prefix}<T>")
    acc.set(xlabel="latent steps T at inference", ylabel="GenEval overall", xticks=ts)
    cost.plot(ts, [1000 * a["sampling"]["seconds_per_image"] for _, a in curve], marker="o", color="tab:red")
    cost.set(xlabel="latent steps T at inference", ylabel="ms per image (sampling)", xticks=ts)
    acc.legend(fontsize=7)
    fig.tight_layout()
    fig.savefig(out, dpi=110)
    print(f"wrote {out}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("figure", choices=["base-samples", "think-steps", "class-arms", "class-failures", "routing",
                                                  "t-curve"])
    parser.add_argument("--run", action="append", default=[], metavar="LABEL=RUN",
                        help="RSR fine-tune run folders (routing)")
    parser.add_argument("--out", default=None)
    parser.add_argument("--adapter", default=None, help="RSR adapter folder (think-steps)")
    parser.add_argument("--work", default="outputs/class_table", help="class_table's work folder (class-arms)")
    parser.add_argument("--arm", action="append", help="arm names, in row order (class-arms; class-failures: the first)")
    parser.add_argument("--report", default=None, help="a compare_adapters report JSON (t-curve)")
    parser.add_argument("--prefix", default="rsr_T", help="t-curve: the arms PREFIX<T> are the curve")
    parser.add_argument("--reference", default=None, help="t-curve: comma-separated arms drawn as bands")
    args = parser.parse_args()
    torch.set_num_threads(2)
    if args.figure == "base-samples":
        base_samples()
    elif args.figure == "think-steps":
        if not args.adapter:
            parser.error("think-steps needs --adapter")
        think_steps(args.adapter)
    elif args.figure == "class-arms":
        class_arms(args.work, args.arm or ["base"])
    elif args.figure == "class-failures":
        class_failures(args.work, (args.arm or ["base"])[0])
    elif args.figure == "routing":
        if not args.run:
            parser.error("routing needs --run LABEL=RUN (one or more)")
        routing(args.run, args.out or "docs/figures/routing_usage.png")
    elif args.figure == "t-curve":
        if not args.report:
            parser.error("t-curve needs --report REPORT.json (a compare_adapters report)")
        t_curve(args.report, args.out or "docs/figures/trained_in_t_curve.png", args.prefix,
                args.reference.split(",") if args.reference else None)


if __name__ == "__main__":
    main()
