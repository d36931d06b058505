"""Evaluator speed and every must-show number of the exact evaluator, on the committed sets.

    python -m benchmarks.bench_evaluator --out benchmarks/results/evaluator.json

One thread. Renders data/eval/geneval.jsonl (and dense.jsonl) at 4 images per prompt as PNG in
GenEval's layout, then:
- speed: `evaluate_folder` end to end (PNG decoding, detection, GenEval rules, results.jsonl),
  the median of `--repeats` runs, in images/s; and the in-memory detector + rules alone, for this
  evaluator and the one before its fix side by side (each in its own subprocess, same images), on
  the ground-truth renders and on degraded renders (`thinkpix.evaluation.degraded`);
- ground truth per task, Gaussian noise sigma 0.05, 3x3 Gaussian and box blurs, and each
  controlled break's false-accept rate (`thinkpix.evaluation.checks.must_show`);
- a robustness sweep beyond the must-shows (stronger noise, blur applied twice) and the dense
  set's ground-truth, noise and blur scores.
"""

from __future__ import annotations

import os

os.environ.setdefault("OMP_NUM_THREADS", "1")  # before numpy: one thread
os.environ.setdefault("OPENBLAS_NUM_THREADS", "1")
os.environ.setdefault("MKL_NUM_THREADS", "1")

import argparse  # noqa: E402
import platform  # noqa: E402
import statistics  # noqa: E402
import tempfile  # noqa: E402
import time  # noqa: E402
from pathlib import Path  # noqa: E402

import numpy as np  # noqa: E402

from thinkpix.evaluation.checks import add_noise, blur, must_show  # noqa: E402
from thinkpix.evaluation.metadata import read_metadata  # noqa: E402
from thinkpix.evaluation.truth_images import ground_truth, image_rng, write_folder  # noqa: E402
from thinkpix.evaluation.runner import evaluate_folder, score_image  # noqa: E402
from thinkpix.files import portable, write_json  # noqa: E402
from thinkpix.worlds import render  # noqa: E402

ROOT = Path(__file__).resolve().parents[1]
SWEEP = {
    "noise_0.10": lambda im, rng: add_noise(im, rng, 0.10),
    "noise_0.15": lambda im, rng: add_noise(im, rng, 0.15),
    "noise_0.20": lambda im, rng: add_noise(im, rng, 0.20),
    "blur_gaussian_x2": lambda im, rng: blur(blur(im)),
    "blur_box_x2": lambda im, rng: blur(blur(im, "box"), "box"),
    "blur_gaussian+noise_0.05": lambda im, rng: add_noise(blur(im), rng),
}


def _per_task(rows: list[tuple[str, float]]) -> dict:
    tasks: dict[str, list[float]] = {}
    for tag, v in rows:
        tasks.setdefault(tag, []).append(v)
    per = {t: round(float(np.mean(v)), 4) for t, v in tasks.items()}
    return {"tasks": per, "overall": round(float(np.mean(list(per.values()))), 4)}


def sweep(metas: list[dict], images_per_prompt: int, seed: int) -> dict:
    rows: dict[str, list] = {name: [] for name in SWEEP}
    for i, meta in enumerate(metas):
        for j in range(images_per_prompt):
            rng = image_rng(seed, i, j)
            image = render(ground_truth(meta, rng))
            for name, f in SWEEP.items():
                r = score_image(f(image, rng), meta)
                rows[name].append((meta["tag"], r.get("score", float(r["correct"]))))
    return {name: _per_task(r) for name, r in rows.items()}


def dense_scores(metas: list[dict], images_per_prompt: int, seed: int) -> dict:
    out: dict[str, list[float]] = {"clean": [], "noise_0.05": [], "blur_gaussian": [], "blur_box": []}
    for i, meta in enumerate(metas):
        for j in range(images_per_prompt):
            rng = image_rng(seed, i, j)
            image = render(ground_truth(meta, rng))
            for name, img in (("clean", image), ("noise_0.05", add_noise(image, rng)),
                              ("blur_gaussian", blur(image)), ("blur_box", blur(image, "box"))):
                out[name].append(score_image(img, meta)["score"])
    return {name: round(float(np.mean(v)), 4) for name, v in out.items()}


def speed(folder: Path, repeats: int) -> dict:
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        results, _ = evaluate_folder(folder)
        times.append(time.perf_counter() - t0)
    t = statistics.median(times)
    return {"images": len(results), "seconds": round(t, 3), "images_per_s": round(len(results) / t, 1),
            "runs": [round(x, 3) for x in times]}


def in_memory_speed(metas: list[dict], images_per_prompt: int, seed: int) -> dict:
    pairs = [(render(ground_truth(m, image_rng(seed, i, j))), m)
             for i, m in enumerate(metas) for j in range(images_per_prompt)]
    t0 = time.perf_counter()
    for image, meta in pairs:
        score_image(image, meta)
    t = time.perf_counter() - t0
    return {"images": len(pairs), "seconds": round(t, 3), "images_per_s": round(len(pairs) / t, 1)}


def side_by_side(prompts: Path, images_per_prompt: int, repeats: int, before: str | None) -> dict:
    """In-memory speed (best of `repeats`) of this evaluator and the earlier one, each in a fresh
    subprocess on the same images: ground-truth renders of the prompt set, then degraded renders of
    the same scenes (seed 2). Ratio = now / before (above 1: faster now)."""
    from benchmarks import evaluator_versions as versions

    rev = before or versions.BEFORE
    out = {"before_rev": rev}
    for kind in ("ground_truth", "degraded"):
        now, then = (versions.speed(prompts, images_per_prompt, repeats, r, degraded=kind == "degraded")
                     for r in (None, rev))
        out[kind] = {"now": now, "before": then, "ratio": round(now["images_per_s"] / then["images_per_s"], 3)}
    return out


def _rel(path: str) -> str:
    p = Path(path).resolve()
    return str(p.relative_to(ROOT)) if p.is_relative_to(ROOT) else str(p)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/evaluator.json")
    p.add_argument("--prompts", default=str(ROOT / "data/eval/geneval.jsonl"))
    p.add_argument("--dense", default=str(ROOT / "data/eval/dense.jsonl"))
    p.add_argument("--images-per-prompt", type=int, default=4)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--before", default=None, help="git revision of the earlier evaluator (default: BEFORE)")
    args = p.parse_args(argv)

    metas = [m for _, m in read_metadata(Path(args.prompts))]
    dense = [m for _, m in read_metadata(Path(args.dense))]
    n = args.images_per_prompt
    report: dict = {"prompts": _rel(args.prompts), "dense_prompts": _rel(args.dense), "images_per_prompt": n,
                    "seed": args.seed}
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(metas, Path(tmp) / "geneval", n, args.seed)
        write_folder(dense, Path(tmp) / "dense", n, args.seed)
        report["speed_folder"] = speed(Path(tmp) / "geneval", args.repeats)
        report["speed_folder_dense"] = speed(Path(tmp) / "dense", args.repeats)
    report["speed_in_memory"] = in_memory_speed(metas, n, args.seed)
    report["speed_side_by_side"] = side_by_side(Path(args.prompts), n, args.repeats, args.before)
    report["must_show"] = must_show(metas, n, args.seed)
    report["sweep"] = sweep(metas, n, args.seed)
    report["dense"] = dense_scores(dense, n, args.seed)
    report["machine"] = {"python": platform.python_version(), "numpy": np.__version__,
                         "processor": platform.processor() or platform.machine(), "threads": 1}

    out = write_json(args.out, portable(report), indent=2)
    ms = report["must_show"]
    print(f"evaluator: {report['speed_folder']['images_per_s']} images/s end to end "
          f"({report['speed_folder']['images']} PNGs in {report['speed_folder']['seconds']} s), "
          f"{report['speed_in_memory']['images_per_s']} images/s in memory; one thread")
    sbs = report["speed_side_by_side"]
    print("side by side, images/s now vs before: " + ", ".join(
        f"{k} {sbs[k]['now']['images_per_s']:.0f} vs {sbs[k]['before']['images_per_s']:.0f} (x{sbs[k]['ratio']})"
        for k in ("ground_truth", "degraded")))
    print("ground truth: " + ", ".join(f"{t} {v:.4f}" for t, v in ms["clean"]["tasks"].items())
          + f"; overall {ms['clean']['overall']:.4f}")
    for name in ("noise", "blur_gaussian", "blur_box"):
        print(f"{name}: overall {ms[name]['overall']:.4f}")
    print("false accepts: " + ", ".join(f"{k} {v['pooled']:.4f} (max per task {max(v['tasks'].values()):.4f})"
                                        for k, v in ms["false_accept"].items()))
    print("sweep: " + ", ".join(f"{k} {v['overall']:.4f}" for k, v in report["sweep"].items()))
    print("dense: " + ", ".join(f"{k} {v:.4f}" for k, v in report["dense"].items()))
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
