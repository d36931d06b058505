"""Accuracy of lake arms by path length, grid size and split, paired differences, and accuracy against
the number of latent steps T for RSR arms, with the measured sampling time per T.

    python -m benchmarks.lake_arms --arm base=RUN_A/final --arm rsr_in=RUN_B/final \
        --sweep rsr_in=0,1,2,3,4,5,6,7,8 --out benchmarks/results/lake_arms.json

An arm is NAME=MODEL or NAME=MODEL+ADAPTER. Every arm samples data/eval/lake.jsonl with the same
noise (image of map i from seed SEED + i), so differences are paired: the 95% interval of a
difference is a bootstrap over maps. The first arm is the reference of the differences; --versus NAME
adds another (e.g. an RSR adapter against its matched LoRA). With --sweep NAME=Ts the arm is also
sampled at each T (the T that its row uses is its own default).
Prints markdown tables; `python -m benchmarks.lake_arms --table REPORT.json` prints them again, and
`python -m benchmarks.lake_arms --seeds R0.json R1.json ...` tabulates reports that differ only in
the training seed: each arm's accuracy and the paired differences, one column per seed.
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
from pathlib import Path

import numpy as np
import torch

from thinkpix.evaluation.bootstrap import bootstrap_mean_interval
from thinkpix.worlds.lake.evaluation import evaluate_lake_folder
from thinkpix.evaluation.metadata import read_jsonl
from thinkpix.files import portable, write_json
from thinkpix.worlds.lake.sampling import load_lake, write_lake_folder



def score_arm(model, metas, work: Path, seed: int, steps: int) -> tuple[dict, np.ndarray, float]:
    """-> (summary, per-map correct (maps,), sampling seconds per image)."""
    if work.exists():
        shutil.rmtree(work)
    seconds = write_lake_folder(model, metas, work, 1, seed, steps, progress=False)
    results, summary = evaluate_lake_folder(work)
    correct = np.array([r["correct"] for r in sorted(results, key=lambda r: r["folder"])], dtype=np.float64)
    return summary, correct, seconds / len(metas)


def paired(a: np.ndarray, b: np.ndarray, metas: list[dict]) -> dict:
    """b - a overall, per split and per length, with 95% bootstrap intervals over maps; and the
    least-squares slope of the per-map difference against path length with its interval."""
    diff = b - a
    out = {"overall": _diff(diff)}
    for key in ("split", "length"):
        values = np.array([m[key] for m in metas])
        out[f"by_{key}"] = {str(v): _diff(diff[values == v]) for v in sorted(set(values.tolist()))}
    lengths = np.array([m["length"] for m in metas], dtype=np.float64)
    rng = np.random.default_rng(0)
    slopes = [np.polyfit(lengths[i], diff[i], 1)[0] for i in rng.integers(len(diff), size=(1000, len(diff)))]
    out["slope_per_move"] = {"value": float(np.polyfit(lengths, diff, 1)[0]),
                             "ci95": [float(x) for x in np.quantile(slopes, [0.025, 0.975])]}
    return out


def _diff(d: np.ndarray) -> dict:
    return {"maps": int(len(d)), "difference": float(d.mean()), "ci95": list(bootstrap_mean_interval(d))}


def _cell(g: dict) -> str:
    return f"{g['accuracy']:.2f} ({g['ci95'][0]:.2f}-{g['ci95'][1]:.2f})"


def _cells(arm: dict, split: str) -> str:
    """Path-cell precision and its chance level on one split ('-' for reports made before the instrument)."""
    c = arm.get("path_cells", {}).get("by_split", {}).get(split)
    return f"{c['precision']:.2f} ({c['chance']:.2f})" if c and c["drawn"] else "-"


def _difference(d: dict, digits: int = 3) -> str:
    return f"{d['difference']:+.{digits}f} ({d['ci95'][0]:+.{digits}f} to {d['ci95'][1]:+.{digits}f})"


def comparisons(report: dict) -> dict[str, dict]:
    """'arm - reference' -> its paired differences, for every reference of a report."""
    return {f"{name} - {key[len('paired_vs_'):]}": d for key, by_arm in report.items()
            if key.startswith("paired_vs_") for name, d in by_arm.items()}


def differences_markdown(report: dict) -> list[str]:
    """One row per paired comparison: overall, in-range and longer splits, and the slope per move."""
    lines = ["", "| paired difference | overall | in-range | longer | slope per move |", "|---|---|---|---|---|"]
    for label, d in comparisons(report).items():
        split = d["by_split"]
        lines.append(f"| {label} | {_difference(d['overall'])} | " + " | ".join(
            _difference(split[s]) if s in split else "-" for s in ("in-range", "longer"))
            + f" | {d['slope_per_move']['value']:+.4f} ({d['slope_per_move']['ci95'][0]:+.4f} to "
            f"{d['slope_per_move']['ci95'][1]:+.4f}) |")
    return lines


def seeds_markdown(reports: list[dict]) -> str:
    """Reports that differ only in the training seed: each arm's accuracy, then the paired differences, a
    row per arm or comparison (names with their seed suffix '_sN' removed), a column per report, for the
    in-range split and overall."""
    tables = [{_unseeded(label): d for label, d in comparisons(r).items()} for r in reports]
    header = " | ".join(f"report {i + 1}" for i in range(len(reports))) + " |"
    lines = ["| arm | split | " + header, "|---|---|" + "---|" * len(reports)]
    accuracy = [{_unseeded(name): arm for name, arm in r["arms"].items()} for r in reports]
    for name in accuracy[0]:
        for split in ("in-range", "overall"):
            lines.append(f"| {name} | {split} | " + " | ".join(
                _accuracy(a[name], split) if name in a else "-" for a in accuracy) + " |")
    lines += ["", "| paired difference | split | " + header, "|---|---|" + "---|" * len(reports)]
    for label in tables[0]:
        for split in ("in-range", "overall"):
            lines.append(f"| {label} | {split} | " + " | ".join(
                _difference(t[label]["overall"] if split == "overall" else t[label]["by_split"][split])
                if label in t else "-" for t in tables) + " |")
    return "\n".join(lines)


def _accuracy(arm: dict, split: str) -> str:
    """An arm's accuracy on a split, or overall (three decimals), with its 95% interval."""
    if split != "overall":
        return _cell(arm["by_split"][split])
    return f"{arm['overall']:.3f} ({arm['overall_ci95'][0]:.3f}-{arm['overall_ci95'][1]:.3f})"


def _unseeded(label: str) -> str:
    return " - ".join(part.rsplit("_s", 1)[0] if part.rsplit("_s", 1)[-1].isdigit() else part
                      for part in label.split(" - "))


def markdown(report: dict) -> str:
    """Markdown tables of a report: accuracy by split and by length per arm, the T sweeps."""
    arms = report["arms"]
    names = list(arms)
    lines = ["| split | maps | " + " | ".join(names) + " |", "|---|---|" + "---|" * len(names)]
    first = arms[names[0]]
    for key in ("by_split", "by_length"):
        for group in first[key]:
            lines.append(f"| {'length ' if key == 'by_length' else ''}{group} | {first[key][group]['images']} | "
                         + " | ".join(_cell(arms[n][key][group]) for n in names) + " |")
    lines.append("| **overall** | " + f"{first['images']} | " + " | ".join(
        f"**{arms[n]['overall']:.3f}** ({arms[n]['overall_ci95'][0]:.3f}-{arms[n]['overall_ci95'][1]:.3f})"
        for n in names) + " |")
    lines.append("| path cells on a shortest path, in-range (chance) | | " + " | ".join(
        _cells(arms[n], "in-range") for n in names) + " |")
    for name, sweep in report.get("sweeps", {}).items():
        splits = list(next(iter(sweep.values()))["by_split"])
        lines += ["", f"{name}: accuracy against T", "",
                  "| T | overall | " + " | ".join(splits) + " | vs T=0 | path cells in-range (chance) | ms / image |",
                  "|---|---|" + "---|" * len(splits) + "---|---|---|"]
        for t, row in sweep.items():
            d = row["paired_vs_T0"] and row["paired_vs_T0"]["overall"]
            vs = f"{d['difference']:+.3f} ({d['ci95'][0]:+.3f}..{d['ci95'][1]:+.3f})" if d else "-"
            lines.append(f"| {t} | {row['overall']:.3f} | " + " | ".join(
                f"{row['by_split'][s]['accuracy']:.3f}" for s in splits)
                + f" | {vs} | {_cells(row, 'in-range')} | {row['seconds_per_image'] * 1000:.1f} |")
    return "\n".join(lines + differences_markdown(report))


def main(argv=None) -> int:
    if argv is None and len(sys.argv) == 3 and sys.argv[1] == "--table":
        print(markdown(json.loads(Path(sys.argv[2]).read_text())))  # tables of an existing report
        return 0
    if argv is None and len(sys.argv) > 2 and sys.argv[1] == "--seeds":
        print(seeds_markdown([json.loads(Path(f).read_text()) for f in sys.argv[2:]]))
        return 0
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--arm", action="append", required=True, metavar="NAME=MODEL[+ADAPTER]")
    p.add_argument("--sweep", action="append", default=[], metavar="NAME=T,T,...")
    p.add_argument("--versus", action="append", default=[], metavar="NAME",
                   help="another reference arm for the paired differences (the first arm always is one)")
    p.add_argument("--prompts", default="data/eval/lake.jsonl")  # from a clone
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--steps", type=int, default=20)
    p.add_argument("--threads", type=int, default=2)
    p.add_argument("--work", default="/tmp/lake_arms")
    p.add_argument("--out", default="benchmarks/results/lake_arms.json")
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)

    metas = [m for _, m in read_jsonl(Path(args.prompts))]
    arms = dict(a.split("=", 1) for a in args.arm)
    sweeps = {k: [int(t) for t in v.split(",")] for k, v in (s.split("=", 1) for s in args.sweep)}
    first = next(iter(arms))
    references = [first] + [v for v in args.versus if v != first]
    unknown = [v for v in references + list(sweeps) if v not in arms]
    if unknown:
        p.error(f"--versus/--sweep name no --arm: {', '.join(unknown)}")
    report: dict = {"prompts": str(Path(args.prompts)), "seed": args.seed, "sampler_steps": args.steps,
                    "threads": args.threads, "arms": {}, "sweeps": {}}
    correct: dict[str, np.ndarray] = {}
    for name, spec in arms.items():
        model_path, _, adapter = spec.partition("+")
        model = load_lake(model_path, adapter or None)
        summary, correct[name], per_image = score_arm(model, metas, Path(args.work) / name, args.seed, args.steps)
        report["arms"][name] = {"model": spec, "seconds_per_image": per_image, **summary}
        print(f"{name}: accuracy {summary['overall']:.3f} " + " ".join(
            f"{k} {v['accuracy']:.3f}" for k, v in summary["by_split"].items()))
        write_json(args.out, portable(report), indent=1)
        at_zero = None  # per-map correct at T = 0, the reference of the sweep's differences
        for t in sweeps.get(name, []):
            model = load_lake(model_path, adapter or None, latent_steps=t)
            s, c, per_image = score_arm(model, metas, Path(args.work) / f"{name}_T{t}", args.seed, args.steps)
            at_zero = c if t == 0 else at_zero
            report["sweeps"].setdefault(name, {})[str(t)] = {
                "overall": s["overall"], "overall_ci95": s["overall_ci95"], "seconds_per_image": per_image,
                "by_split": s["by_split"], "by_length": s["by_length"], "verdicts": s["verdicts"],
                "path_cells": s["path_cells"],
                "paired_vs_T0": paired(at_zero, c, metas) if t and at_zero is not None else None}
            print(f"  {name} T={t}: accuracy {s['overall']:.3f} ({per_image * 1000:.1f} ms/image)")
            write_json(args.out, portable(report), indent=1)  # partial results survive an interrupted run
    for ref in references:
        report["paired_vs_" + ref] = {name: paired(correct[ref], correct[name], metas)
                                      for name in arms if name != ref}
    write_json(args.out, portable(report), indent=1)
    print(markdown(report))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
