"""Base vs adapters on the committed GenEval-style set, with the same prompts and noise seeds for
every arm, scored by the exact evaluator. Each arm's overall has a bootstrap 95% interval, and each
arm's difference to every reference arm (`--versus`, default the first arm) a paired bootstrap
interval (prompts resampled within tasks).

    python -m benchmarks.compare_adapters --model shapes-base \
        --arm base --arm rsr_T2=runs/ft_rsr/adapter:2 --arm lora=runs/ft_lora/adapter \
        --images-per-prompt 2 --out benchmarks/results/finetune_compare.json

An arm is NAME (the base), NAME=ADAPTER_DIR[:THINK_STEPS], or NAME=:T (a model trained with RSR in it,
`model.rsr`, given by `--arm-model`, at T latent steps). Per arm, `--arm-model NAME=DIR` samples
another model (e.g. a base trained further) and `--arm-steps NAME=N` another number of sampler steps
(inference-compute matching); every arm's sampling time per image is measured and reported.
`--prompts` may be given twice (e.g. the GenEval set and `data/eval/dense.jsonl`): the overall and its
paired differences are over the GenEval tasks only, dense prompts get their own paired difference.
`--pool NAME=ARM,ARM,...` adds a row whose per-prompt scores are the mean over the listed arms (the
fine-tune seeds of one setting), paired against the references like any arm.
`--table REPORT [--per-task REF]` prints a written report's tables; `--seeds 0=R0 1=R1 ...
--difference ARM:REF [--tasks t,t]` prints the chosen paired differences of several training seeds'
reports side by side (the rows a conclusion that needs every seed rests on).
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import torch

BOOTSTRAP = 2000
DENSE = "dense"


def per_prompt_scores(results: list[dict]) -> dict[str, dict[str, float]]:
    """task -> prompt folder -> mean image score (correctness; a dense image's question score)."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in results:
        out.setdefault(r["tag"], {}).setdefault(r["folder"], []).append(float(r.get("score", r["correct"])))
    return {t: {f: float(np.mean(v)) for f, v in d.items()} for t, d in out.items()}


def paired_difference(a: dict, b: dict, seed: int = 0) -> tuple[float, float, float]:
    """Mean over tasks of (b - a) per prompt, unweighted over tasks, with a paired bootstrap 95% interval."""
    from thinkpix.evaluation.bootstrap import percentile_interval, stratified_bootstrap_means

    diffs = [np.array([b[task][f] - a[task][f] for f in sorted(a[task])]) for task in a]  # per task: (prompts,)
    boot = stratified_bootstrap_means(diffs, BOOTSTRAP, seed)
    return (float(np.mean([d.mean() for d in diffs])), *percentile_interval(boot))


def split_dense(scores: dict) -> tuple[dict, dict]:
    """-> (the GenEval tasks, the dense task alone (empty if none))."""
    return ({t: v for t, v in scores.items() if t != DENSE}, {t: v for t, v in scores.items() if t == DENSE})


def pooled(scores: list[dict]) -> dict:
    """Per-prompt mean over several arms' scores (same prompts)."""
    return {t: {f: float(np.mean([s[t][f] for s in scores])) for f in scores[0][t]} for t in scores[0]}


def comparisons(scores: dict, name: str, references: list[str]) -> dict:
    """`name` against every reference arm: {"minus_REF": {difference, ci95}, "dense_minus_REF": ...}."""
    out = {}
    for ref in references:
        if ref == name:
            continue
        for label, part in (("", 0), ("dense_", 1)):
            a, b = split_dense(scores[ref])[part], split_dense(scores[name])[part]
            if a:
                diff, lo, hi = paired_difference(a, b)
                out[f"{label}minus_{ref}"] = {"difference": diff, "ci95": [lo, hi]}
                print(f"{name} - {ref}{' (dense)' if label else ''}: {diff:+.3f} (paired 95% CI {lo:+.3f} to {hi:+.3f})")
        out[f"per_task_minus_{ref}"] = per_task_differences(split_dense(scores[ref])[0], split_dense(scores[name])[0])
    return out


def per_task_differences(a: dict, b: dict) -> dict:
    """{task: {difference, ci95}}: b - a on each task alone, prompts resampled (the depth ladder's reading)."""
    out = {}
    for task in sorted(a):
        diff, lo, hi = paired_difference({task: a[task]}, {task: b[task]})
        out[task] = {"difference": diff, "ci95": [lo, hi]}
    return out


TASK_COLUMNS = ("single_object", "two_object", "counting", "colors", "position", "color_attr")


def _ci(c: dict) -> str:
    return f"{c['difference']:+.3f} ({c['ci95'][0]:+.3f} to {c['ci95'][1]:+.3f})"


def _ci_marked(c: dict) -> str:
    """`_ci`, in bold where the interval excludes zero."""
    return f"**{_ci(c)}**" if c["ci95"][0] > 0 or c["ci95"][1] < 0 else _ci(c)


def markdown(report: dict) -> str:
    """One row per arm: per-task accuracy, overall with its interval, dense score, sampling time and the
    paired differences against every reference arm (overall; dense in the last columns)."""
    arms = report["arms"]
    refs = sorted({k[len("minus_"):] for a in arms.values() for k in a if k.startswith("minus_")},
                  key=list(arms).index)
    head = (["arm", *TASK_COLUMNS, "overall (95% CI)", "dense", "s / image"] + [f"- {r}" for r in refs]
            + [f"dense - {r}" for r in refs])
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, a in arms.items():
        tasks = a.get("tasks", {})
        cells = [name] + [f"{tasks[t]:.3f}" if t in tasks else "" for t in TASK_COLUMNS]
        ci = a.get("overall_ci95")
        cells.append(f"**{a['overall']:.3f}**" + (f" ({ci[0]:.3f}-{ci[1]:.3f})" if ci else " (pooled)"))
        cells.append(f"{tasks['dense']:.3f}" if "dense" in tasks else "")
        cells.append(f"{a['sampling']['seconds_per_image']:.3f}" if "sampling" in a else "")
        cells += [_ci(a[f"minus_{r}"]) if f"minus_{r}" in a else "" for r in refs]
        cells += [_ci(a[f"dense_minus_{r}"]) if f"dense_minus_{r}" in a else "" for r in refs]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def _difference_cells(arm: dict, ref: str, tasks) -> list[str]:
    """An arm's paired difference to `ref` on each of `tasks` (blank where not measured), then overall."""
    per_task = arm[f"per_task_minus_{ref}"]
    return [_ci_marked(per_task[t]) if t in per_task else "" for t in tasks] + [_ci_marked(arm[f"minus_{ref}"])]


def per_task_markdown(report: dict, ref: str) -> str:
    """One row per arm compared with `ref`: its paired difference to `ref` on each task alone and overall,
    each with its 95% interval (prompts resampled); a task whose interval excludes zero is in bold."""
    head = ["arm", *TASK_COLUMNS, "overall"]
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for name, a in report["arms"].items():
        per_task = a.get(f"per_task_minus_{ref}")
        if per_task is None:
            continue
        lines.append("| " + " | ".join([f"{name} - {ref}", *_difference_cells(a, ref, TASK_COLUMNS)]) + " |")
    return "\n".join(lines)


def seeds_markdown(reports: dict[str, dict], differences: list[tuple[str, str]], tasks=TASK_COLUMNS) -> str:
    """One row per difference `arm - ref` and training seed (`reports`: {seed label: report}), its paired
    difference on each of `tasks` alone and overall, as in `per_task_markdown`: the deciding rows of a
    conclusion that needs every seed, side by side."""
    head = ["difference", "seed", *tasks, "overall"]
    lines = [f"| {' | '.join(head)} |", "|" + "---|" * len(head)]
    for arm, ref in differences:
        for label, report in reports.items():
            a = report["arms"].get(arm, {})
            if f"minus_{ref}" not in a:
                raise SystemExit(f"report of seed {label} has no paired difference {arm} - {ref}")
            lines.append("| " + " | ".join([f"{arm} - {ref}", label, *_difference_cells(a, ref, tasks)]) + " |")
    return "\n".join(lines)


def _per_arm(values: list[str], cast) -> dict:
    out = {}
    for v in values:
        name, sep, value = v.partition("=")
        if not sep or not value:
            raise SystemExit(f"expected NAME=VALUE, got {v!r}")
        out[name] = cast(value)
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shapes-base")
    parser.add_argument("--arm", action="append", default=[])
    parser.add_argument("--table", metavar="REPORT", help="print the markdown table of a report JSON and exit")
    parser.add_argument("--per-task", metavar="REF", help="with --table: the per-task paired differences to arm REF")
    parser.add_argument("--seeds", nargs="+", metavar="SEED=REPORT",
                        help="print, per training seed, the paired differences given by --difference and exit")
    parser.add_argument("--difference", action="append", default=[], metavar="ARM:REF",
                        help="with --seeds: a difference ARM - REF to show (repeatable)")
    parser.add_argument("--tasks", help="with --seeds: comma-separated tasks (default: all six)")
    parser.add_argument("--arm-model", action="append", default=[], metavar="NAME=DIR")
    parser.add_argument("--arm-steps", action="append", default=[], metavar="NAME=N")
    parser.add_argument("--versus", action="append", default=[], metavar="NAME",
                        help="reference arm(s) for the paired differences (default: the first arm)")
    parser.add_argument("--pool", action="append", default=[], metavar="NAME=ARM,ARM,...")
    parser.add_argument("--prompts", action="append", default=[])
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="outputs/compare", help="where the image folders go")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true",
                        help="keep an arm's image folder from an earlier run with the same settings instead of re-sampling")
    parser.add_argument("--out", default="benchmarks/results/finetune_compare.json")
    args = parser.parse_args()
    if args.table:
        report = json.loads(Path(args.table).read_text())
        print(per_task_markdown(report, args.per_task) if args.per_task else markdown(report))
        return
    if args.seeds:
        reports = {label: json.loads(Path(path).read_text()) for label, path in _per_arm(args.seeds, str).items()}
        differences = [tuple(d.split(":", 1)) for d in args.difference]
        if not differences or any(len(d) != 2 or not all(d) for d in differences):
            parser.error("--seeds needs at least one --difference ARM:REF")
        tasks = tuple(args.tasks.split(",")) if args.tasks else TASK_COLUMNS
        unknown = [t for t in tasks if t not in TASK_COLUMNS]
        if unknown:
            parser.error(f"unknown task(s) {unknown}; choose from {list(TASK_COLUMNS)}")
        print(seeds_markdown(reports, differences, tasks))
        return
    if not args.arm:
        parser.error("give at least one --arm (or --table REPORT)")
    torch.set_num_threads(args.threads)
    prompt_files = args.prompts or ["data/eval/geneval.jsonl"]
    arm_models, arm_steps = _per_arm(args.arm_model, str), _per_arm(args.arm_steps, int)
    names = [a.partition("=")[0] for a in args.arm]
    pools = _per_arm(args.pool, lambda v: v.split(","))
    for name in [*arm_models, *arm_steps, *(a for arms in pools.values() for a in arms)]:
        if name not in names:
            raise SystemExit(f"{name!r} is not one of the arms {names}")
    for name in args.versus:
        if name not in names and name not in pools:
            raise SystemExit(f"--versus {name!r} is not one of the arms or pools {names + list(pools)}")

    from thinkpix.integrations.methods import prepare_for_sampling
    from thinkpix.bundled import resolve_model
    from thinkpix.evaluation.metadata import read_metadata
    from thinkpix.evaluation.runner import evaluate_folder, format_table
    from thinkpix.files import portable, write_json
    from thinkpix.models.t2i import TextToImage
    from thinkpix.sampling import write_geneval_folder

    rows = [m for f in prompt_files for _, m in read_metadata(Path(f))]
    report = {"command": "python -m benchmarks.compare_adapters " + " ".join(
        [f"--model {args.model}"] + [f"--arm {a}" for a in args.arm]
        + [f"--arm-model {a}" for a in args.arm_model] + [f"--arm-steps {a}" for a in args.arm_steps]
        + [f"--versus {a}" for a in args.versus] + [f"--pool {a}" for a in args.pool]
        + [f"--prompts {p}" for p in prompt_files]
        + [f"--images-per-prompt {args.images_per_prompt}", f"--seed {args.seed}"]), "arms": {}}
    scores = {}
    for arm in args.arm:
        name, _, spec = arm.partition("=")
        model_name, steps = arm_models.get(name, args.model), arm_steps.get(name, 20)
        folder = Path(args.work) / name
        stamp = json.dumps({"model": model_name, "spec": spec, "n": args.images_per_prompt, "seed": args.seed,
                            "prompts": prompt_files, "steps": steps})
        timing_file = folder / "timing.json"
        if not (args.reuse and (folder / "arm.json").is_file() and (folder / "arm.json").read_text() == stamp
                and timing_file.is_file()):
            model = TextToImage.load(resolve_model(model_name))
            path, _, think = spec.partition(":")  # ":T" alone: a model trained with RSR in it, at T steps
            prepare_for_sampling(model, model_name, path or None, int(think) if think else None)
            start = time.perf_counter()
            done = write_geneval_folder(model, rows, folder, args.images_per_prompt, args.seed, steps=steps, guidance=3.0)
            seconds = time.perf_counter() - start
            images = done["generated"] * args.images_per_prompt
            timing_file.write_text(json.dumps({"seconds_per_image": seconds / max(1, images), "images": images,
                                               "threads": args.threads}))
            (folder / "arm.json").write_text(stamp)
        results, summary = evaluate_folder(folder)
        print(f"== {name}\n{format_table(summary)}")
        scores[name] = per_prompt_scores(results)
        report["arms"][name] = {"spec": spec, "model": model_name, "sampler_steps": steps,
                                "sampling": json.loads(timing_file.read_text()), "tasks": summary["tasks"],
                                "overall": summary["overall"], "overall_ci95": summary["overall_ci95"],
                                "prompts_correct": summary["prompts_correct"]}
    for name, arms in pools.items():
        scores[name] = pooled([scores[a] for a in arms])
        geneval = split_dense(scores[name])[0]
        report["arms"][name] = {"pool": arms, "overall": float(np.mean([np.mean(list(v.values())) for v in geneval.values()]))}
    references = args.versus or [names[0]]
    for name in report["arms"]:
        report["arms"][name].update(comparisons(scores, name, references))
    write_json(args.out, portable(report))
    print(markdown(report))


if __name__ == "__main__":
    main()
