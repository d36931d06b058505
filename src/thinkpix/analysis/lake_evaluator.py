"""The lake evaluator's must-show numbers on the committed set, and its robustness.

    python -m benchmarks.lake_evaluator --out benchmarks/results/lake_evaluator.json

For every map of data/eval/lake.jsonl (every grid size 4..8, every path length 1..2N): the
ground-truth solution (canonical shortest path) and a random other shortest path must be judged
correct; each controlled break (`thinkpix.worlds.lake.breaks`) must be judged correct at most 1%
of the time; and the ground truth under Gaussian noise (sigma 0.05, 0.10) and 3x3 blurs.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np

from thinkpix.evaluation.checks import add_noise, blur
from thinkpix.worlds.lake.evaluation import ground_truth_image, judge
from thinkpix.worlds.lake.breaks import BREAKS, break_solution
from thinkpix.evaluation.metadata import read_jsonl
from thinkpix.files import portable, write_json
from thinkpix.worlds.lake import map_of, render, shortest_path, with_path

PERTURB = {
    "noise_0.05": lambda im, rng: add_noise(im, rng, 0.05),
    "noise_0.10": lambda im, rng: add_noise(im, rng, 0.10),
    "blur_gaussian": lambda im, rng: blur(im),
    "blur_box": lambda im, rng: blur(im, "box"),
}


def _rel(path: str) -> str:
    p, here = Path(path).resolve(), Path.cwd().resolve()  # the scripts run from a clone's root
    return str(p.relative_to(here)) if p.is_relative_to(here) else str(p)


def rate(verdicts: list[str]) -> dict:
    return {"images": len(verdicts), "judged_correct": float(np.mean([v == "correct" for v in verdicts]))
            if verdicts else None}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/lake_evaluator.json")
    p.add_argument("--prompts", default="data/eval/lake.jsonl")  # from a clone
    p.add_argument("--seed", type=int, default=0)
    args = p.parse_args(argv)

    grids = [map_of(m) for _, m in read_jsonl(Path(args.prompts))]
    rng = np.random.default_rng(args.seed)
    verdicts: dict[str, list[str]] = {k: [] for k in ("ground_truth", "other_shortest_path", *BREAKS, *PERTURB)}
    not_applicable = {k: 0 for k in BREAKS}
    t0 = time.perf_counter()
    for grid in grids:
        truth = ground_truth_image(grid)
        verdicts["ground_truth"].append(judge(truth, grid)["verdict"])
        other = render(with_path(grid, shortest_path(grid, rng)))
        verdicts["other_shortest_path"].append(judge(other, grid)["verdict"])
        for kind in BREAKS:
            broken = break_solution(kind, grid, rng)
            if broken is None:
                not_applicable[kind] += 1
            else:
                verdicts[kind].append(judge(render(broken), grid)["verdict"])
        for name, f in PERTURB.items():
            verdicts[name].append(judge(f(truth, rng), grid)["verdict"])
    seconds = time.perf_counter() - t0
    sizes = sorted({g.shape[0] for g in grids})
    report = {
        "prompts": _rel(args.prompts), "maps": len(grids), "seed": args.seed,
        "sizes": sizes,
        "must_show": {"ground_truth": rate(verdicts["ground_truth"]),
                      "other_shortest_path": rate(verdicts["other_shortest_path"]),
                      "breaks": {k: rate(verdicts[k]) | {"not_applicable": not_applicable[k],
                                                         "verdicts": {v: verdicts[k].count(v) for v in set(verdicts[k])}}
                                 for k in BREAKS}},
        "robustness": {k: rate(verdicts[k]) for k in PERTURB},
        "judge_images_per_s": round(len(grids) * (2 + len(BREAKS) + len(PERTURB)) / seconds, 1),
    }
    write_json(args.out, portable(report), indent=2)
    ms = report["must_show"]
    print(f"ground truth {ms['ground_truth']['judged_correct']:.3f}, another shortest path "
          f"{ms['other_shortest_path']['judged_correct']:.3f}; breaks judged correct: "
          + ", ".join(f"{k} {v['judged_correct']:.3f} (n={v['images']})" for k, v in ms["breaks"].items()))
    print("robustness: " + ", ".join(f"{k} {v['judged_correct']:.3f}" for k, v in report["robustness"].items()))
    print(f"written to {args.out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
