"""Run the evaluator of another git revision beside this one: before/after scores and speeds.

The other revision's `src/` is unpacked with `git archive` into a temporary folder and imported
in a subprocess (never into this process), so both evaluators score the same files side by side.
BEFORE is the last commit before the evaluator's fix (the soft shape fit); the docs' "before"
numbers come from it.

    python -m benchmarks.evaluator_versions folder DIR [--rev REV]      # per-image verdicts, both
    python -m benchmarks.evaluator_versions classes FILE.safetensors    # class-track judgements, both
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from functools import lru_cache
from pathlib import Path

# Another revision comes from the git clone the command runs in; this one is the installed package.
THIS_SOURCE = Path(__file__).resolve().parent.parent.parent  # the folder holding `thinkpix/`
BEFORE = "98d5e51"  # the evaluator before its fix

# Code run in the subprocess: scores with whichever `thinkpix` its PYTHONPATH finds.
_FOLDER = """
import json, sys
from thinkpix.evaluation.runner import evaluate_folder
results, summary = evaluate_folder(sys.argv[1], write=False)
print(json.dumps({"results": [{k: r[k] for k in ("folder", "sample", "tag", "correct")} for r in results],
                  "summary": summary}))
"""
_CLASSES = """
import json, sys
import numpy as np
from safetensors.numpy import load_file
from thinkpix.worlds.classes.evaluation import judge
from thinkpix.worlds.classes.sets import CLASSES
images = load_file(sys.argv[1])["images"]  # (N, H, W, 3) uint8, image i of class i mod 24 (class_table)
print(json.dumps([bool(judge(im, i % len(CLASSES))[0]) for i, im in enumerate(images)]))
"""
_SETTLED = """
import json, sys
from pathlib import Path
import numpy as np
from PIL import Image
from thinkpix.worlds.classes.evaluation import judge
from thinkpix.evaluation.runner import score_image
path = Path(sys.argv[1])
out = []
for line in path.read_text().splitlines():
    row = json.loads(line)
    image = np.asarray(Image.open(path.parent / row["image"]).convert("RGB"))
    out.append(bool(judge(image, row["label"])[0]) if "label" in row else bool(score_image(image, row["metadata"])["correct"]))
print(json.dumps(out))
"""
_SPEED = """
import json, sys, time
from thinkpix.evaluation.metadata import read_metadata
from thinkpix.evaluation.truth_images import ground_truth, image_rng
from thinkpix.evaluation.runner import score_image
from thinkpix.worlds import render
metas = [m for _, m in read_metadata(sys.argv[1])]
n, repeats, images = int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
if images == "-":
    pairs = [(render(ground_truth(m, image_rng(0, i, j))), m) for i, m in enumerate(metas) for j in range(n)]
else:  # degraded renders of the same scenes, written by this checkout (the other may not know how)
    import numpy as np
    stack = np.load(images)
    pairs = [(stack[k], m) for k, (m, _) in enumerate((m, j) for m in metas for j in range(n))]
times = []
for _ in range(repeats):
    t0 = time.perf_counter()
    for image, meta in pairs:
        score_image(image, meta)
    times.append(time.perf_counter() - t0)
print(json.dumps({"images": len(pairs), "seconds": min(times), "images_per_s": len(pairs) / min(times),
                  "runs": times}))
"""


@lru_cache(maxsize=None)
def source(rev: str) -> Path:
    """`src/` of git revision `rev` unpacked into a temporary folder (kept for this process)."""
    out = Path(tempfile.mkdtemp(prefix=f"thinkpix-{rev}-"))
    archive = subprocess.run(["git", "archive", rev, "src"], check=True, capture_output=True).stdout
    subprocess.run(["tar", "-x", "-C", str(out)], input=archive, check=True)
    return out / "src"


def run(code: str, args: list[str], rev: str | None = None) -> object:
    """Run `code` with `args` in a subprocess on revision `rev`'s code (None: this checkout's)."""
    env = dict(os.environ, PYTHONPATH=str(source(rev) if rev else THIS_SOURCE), OMP_NUM_THREADS="1")
    out = subprocess.run([sys.executable, "-c", code, *args], check=True, capture_output=True, text=True, env=env)
    return json.loads(out.stdout.strip().splitlines()[-1])


def folder_scores(folder: Path, rev: str | None = None) -> dict:
    return run(_FOLDER, [str(folder)], rev)


def class_judgements(path: Path, rev: str | None = None) -> list[bool]:
    return run(_CLASSES, [str(path)], rev)


def settled_verdicts(path: Path, rev: str | None = None) -> list[bool]:
    """The evaluator's verdict on each image of a settled-verdicts JSONL (see data/settled/)."""
    return run(_SETTLED, [str(path)], rev)


def speed(prompts: Path, images_per_prompt: int, repeats: int, rev: str | None = None, degraded: bool = False) -> dict:
    """In-memory speed of scoring the prompt set's ground-truth renders (image j of prompt i from
    `image_rng(0, i, j)`), or with `degraded` the same scenes drawn degraded (seed 2)."""
    if not degraded:
        return run(_SPEED, [str(prompts), str(images_per_prompt), str(repeats), "-"], rev)
    path = _degraded_stack(str(prompts), images_per_prompt)
    return run(_SPEED, [str(prompts), str(images_per_prompt), str(repeats), str(path)], rev)


@lru_cache(maxsize=None)
def _degraded_stack(prompts: str, images_per_prompt: int) -> Path:
    """(N, H, W, 3) uint8 .npy of the prompt set's scenes drawn degraded (seed 2), in set order."""
    import numpy as np

    from thinkpix.evaluation.degraded import draw, from_scene, random_degradation
    from thinkpix.evaluation.metadata import read_metadata
    from thinkpix.evaluation.truth_images import ground_truth, image_rng

    images = []
    for i, (_, meta) in enumerate(read_metadata(Path(prompts))):
        for j in range(images_per_prompt):
            rng = image_rng(2, i, j)
            images.append(draw(from_scene(ground_truth(meta, rng), rng), random_degradation(rng), rng).image)
    path = Path(tempfile.mkdtemp(prefix="thinkpix-degraded-")) / "images.npy"
    np.save(path, np.stack(images))
    return path


def compare_folder(folder: Path, rev: str = BEFORE) -> dict:
    """Before/after summaries of one folder and the images whose verdict changed."""
    before, after = folder_scores(folder, rev), folder_scores(folder)
    changed = [(a["folder"], a["sample"], a["tag"], b["correct"], a["correct"])
               for a, b in zip(after["results"], before["results"]) if a["correct"] != b["correct"]]
    return {"before": before["summary"], "after": after["summary"], "before_rev": rev,
            "changed": {"rejected_to_accepted": sum(1 for c in changed if c[4]),
                        "accepted_to_rejected": sum(1 for c in changed if not c[4])}}


def compare_classes(path: Path, rev: str = BEFORE) -> dict:
    """Before/after class accuracy (95% interval, per class) of a class_table arm's kept images."""
    import numpy as np

    from thinkpix.evaluation.bootstrap import bootstrap_mean_interval
    from thinkpix.worlds.classes.sets import CLASSES

    out: dict = {"before_rev": rev}
    for name, correct in (("before", class_judgements(path, rev)), ("after", class_judgements(path))):
        c = np.array(correct, dtype=bool)
        labels = np.arange(len(c)) % len(CLASSES)
        out[name] = {"accuracy": float(c.mean()), "ci95": list(bootstrap_mean_interval(c, 1000)),
                     "per_class": {CLASSES[k]: float(c[labels == k].mean()) for k in range(len(CLASSES))},
                     "correct": c.tolist()}
    out["n"] = len(c)
    b, a = np.array(out["before"].pop("correct")), np.array(out["after"].pop("correct"))
    out["changed"] = {"rejected_to_accepted": int((a & ~b).sum()), "accepted_to_rejected": int((b & ~a).sum())}
    return out


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("kind", choices=["folder", "classes"])
    p.add_argument("path")
    p.add_argument("--rev", default=BEFORE)
    p.add_argument("--out", help="write the comparison as JSON here")
    args = p.parse_args(argv)
    command = f"python -m benchmarks.evaluator_versions {args.kind} {args.path} --rev {args.rev}"
    if args.kind == "folder":
        report = compare_folder(Path(args.path), args.rev)
        for name in ("before", "after"):
            s = report[name]
            print(f"{name}: overall {s['overall']:.3f} ({s['overall_ci95'][0]:.3f}-{s['overall_ci95'][1]:.3f}) "
                  + ", ".join(f"{t} {v:.3f}" for t, v in s["tasks"].items()))
    else:
        report = compare_classes(Path(args.path), args.rev)
        print(f"class accuracy before {report['before']['accuracy']:.3f}, after {report['after']['accuracy']:.3f}"
              f" ({report['n']} images)")
    report["command"] = command
    print(json.dumps(report.get("changed", {})))
    if args.out:
        from thinkpix.files import portable, write_json

        write_json(args.out, portable(report), indent=2)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
