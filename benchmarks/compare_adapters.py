"""Base vs adapters on the committed GenEval-style set, with the same prompts and noise seeds for
every arm, scored by the exact evaluator. Each arm's overall has a bootstrap 95% interval, and each
adapter's difference to the base a paired bootstrap interval (prompts resampled within tasks).

    python -m benchmarks.compare_adapters --model shapes-base \
        --arm base --arm rsr_T2=runs/ft_rsr/adapter:2 --arm lora=runs/ft_lora/adapter \
        --images-per-prompt 2 --out benchmarks/results/finetune_compare.json

An arm is NAME (the base), or NAME=ADAPTER_DIR[:THINK_STEPS].
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

BOOTSTRAP = 2000


def per_prompt_scores(results: list[dict]) -> dict[str, dict[str, float]]:
    """task -> prompt folder -> mean image correctness."""
    out: dict[str, dict[str, list[float]]] = {}
    for r in results:
        out.setdefault(r["tag"], {}).setdefault(r["folder"], []).append(float(r["correct"]))
    return {t: {f: float(np.mean(v)) for f, v in d.items()} for t, d in out.items()}


def paired_difference(a: dict, b: dict, seed: int = 0) -> tuple[float, float, float]:
    """Overall(b) - overall(a) (unweighted over tasks) with a paired bootstrap 95% interval."""
    from thinkpix.evaluation.bootstrap import percentile_interval, stratified_bootstrap_means

    diffs = [np.array([b[task][f] - a[task][f] for f in sorted(a[task])]) for task in a]  # per task: (prompts,)
    boot = stratified_bootstrap_means(diffs, BOOTSTRAP, seed)
    return (float(np.mean([d.mean() for d in diffs])), *percentile_interval(boot))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shapes-base")
    parser.add_argument("--arm", action="append", required=True)
    parser.add_argument("--prompts", default="data/eval/geneval.jsonl")
    parser.add_argument("--images-per-prompt", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--work", default="outputs/compare", help="where the image folders go")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--reuse", action="store_true",
                        help="keep an arm's image folder from an earlier run with the same settings instead of re-sampling")
    parser.add_argument("--out", default="benchmarks/results/finetune_compare.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from thinkpix.adapters import load_adapter
    from thinkpix.bundled import resolve_model
    from thinkpix.evaluation.metadata import read_metadata
    from thinkpix.evaluation.runner import evaluate_folder, format_table
    from thinkpix.models.t2i import TextToImage
    from thinkpix.sampling import write_geneval_folder

    rows = [m for _, m in read_metadata(Path(args.prompts))]
    report = {"command": "python -m benchmarks.compare_adapters " + " ".join(
        [f"--model {args.model}"] + [f"--arm {a}" for a in args.arm]
        + [f"--images-per-prompt {args.images_per_prompt}", f"--seed {args.seed}"]), "arms": {}}
    scores = {}
    for arm in args.arm:
        name, _, spec = arm.partition("=")
        model = TextToImage.load(resolve_model(args.model))
        if spec:
            path, _, steps = spec.partition(":")
            load_adapter(model.transformer, path, int(steps) if steps else None)
            model.eval()
        folder = Path(args.work) / name
        stamp = json.dumps({"model": args.model, "spec": spec, "n": args.images_per_prompt, "seed": args.seed,
                            "prompts": args.prompts})
        if not (args.reuse and (folder / "arm.json").is_file() and (folder / "arm.json").read_text() == stamp):
            write_geneval_folder(model, rows, folder, args.images_per_prompt, args.seed, steps=20, guidance=3.0)
            (folder / "arm.json").write_text(stamp)
        results, summary = evaluate_folder(folder)
        print(f"== {name}\n{format_table(summary)}")
        scores[name] = per_prompt_scores(results)
        report["arms"][name] = {"spec": spec, "tasks": summary["tasks"], "overall": summary["overall"],
                                "overall_ci95": summary["overall_ci95"], "prompts_correct": summary["prompts_correct"]}
    first = args.arm[0].partition("=")[0]
    for name in list(report["arms"])[1:]:
        diff, lo, hi = paired_difference(scores[first], scores[name])
        report["arms"][name][f"minus_{first}"] = {"difference": diff, "ci95": [lo, hi]}
        print(f"{name} - {first}: {diff:+.3f} (paired 95% CI {lo:+.3f} to {hi:+.3f})")
    from thinkpix.files import write_json
    write_json(args.out, report)


if __name__ == "__main__":
    main()
