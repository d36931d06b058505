"""Score a folder in GenEval's layout and summarise it.

    DIR/00000/metadata.jsonl      one metadata line (GenEval schema; dense lines add questions)
    DIR/00000/samples/0000.png    the images generated for it
    DIR/00001/...

Writes DIR/results.jsonl (one line per image) and DIR/summary.json. Summary: per-task
accuracy (share of correct images; for dense prompts the mean image score), `overall` = the
unweighted mean over the GenEval tasks present (over all tasks when none is), and
`prompts_correct` = the share of prompts with at least one correct image (a dense image is
correct when it scores 1).
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
from PIL import Image

from ..errors import ThinkpixError, located
from ..sample_record import prompt_folder_complete, read_record
from ..validation import image_size
from ..worlds.shapes.dense import is_dense
from ..worlds.shapes.prompts import TASKS
from ..worlds.shapes.scene import DEFAULT_CANVAS as MIN_SIDE  # the world's smallest canvas (32; 64 is the other)
from .bootstrap import percentile_interval, stratified_bootstrap_means
from .dense import score_dense
from .detect import COUNTING_THRESHOLD, THRESHOLD, detect_all, group
from .geneval import evaluate, threshold_for
from .metadata import read_metadata

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".webp")
BOOTSTRAP = 1000  # resamples of prompts for the overall score's 95% interval


def score_image(image: np.ndarray, metadata: dict) -> dict:
    """One image against its metadata -> {'correct', 'reason', ['score'], 'details'}."""
    found = detect_all(image)
    if is_dense(metadata):
        score, _, reason = score_dense(group(found, THRESHOLD), group(found, COUNTING_THRESHOLD), metadata)
        out = {"correct": score == 1.0, "score": score, "reason": reason}
    else:
        correct, reason = evaluate(group(found, threshold_for(metadata)), metadata)
        out = {"correct": correct, "reason": reason}
    out["details"] = [[d.shape, d.color, round(d.confidence, 3), list(d.box)]
                      for d in sorted(found, key=lambda d: -d.confidence)]
    return out


def check_image_header(path: Path, canvas: int | None) -> int:
    """The image's side from its header alone (nothing decoded); a `ThinkpixError` if unreadable,
    too large, smaller than the world's smallest canvas, or not canvas x canvas (not square when
    `canvas` is None)."""
    w, h = image_size(path)
    side = canvas or w
    if (h, w) != (side, side):
        raise located(path, None, f"image is {w}x{h}, expected {side}x{side}")
    if side < MIN_SIDE:  # at 1x1 a single pixel is a whole "object" to the detector
        raise located(path, None, f"image is {w}x{h}, smaller than the shapes world's smallest canvas "
                                  f"({MIN_SIDE}x{MIN_SIDE}); nothing that small can be scored")
    return side


def to_rgb8(im: Image.Image, path: Path) -> np.ndarray:
    """(H, W, 3) uint8 of any 8- or 16-bit image: palettes through their palette, 16-bit grey scaled to
    8 bits (not clipped to white), transparency and floating-point pixels refused."""
    if im.mode.startswith("I"):  # 16-bit (I;16*) or 32-bit integer grey
        grey = np.asarray(im).astype(np.int64)
        if grey.size and (grey.min() < 0 or grey.max() > 65535):
            raise located(path, None, f"{im.mode} image with values outside 0..65535; save it as 8-bit RGB")
        grey = ((grey * 255 + 32767) // 65535).astype(np.uint8)  # 0..65535 -> 0..255, rounded
        return np.repeat(grey[..., None], 3, axis=-1)
    if im.mode == "F":
        raise located(path, None, "floating-point image; save it as 8-bit RGB")
    if "A" in im.mode or (im.mode == "P" and "transparency" in im.info):
        rgba = np.asarray(im.convert("RGBA"))
        if (rgba[..., 3] < 255).any():
            raise located(path, None, "image has transparent pixels; the evaluator scores opaque RGB images")
        return np.ascontiguousarray(rgba[..., :3])
    return np.asarray(im.convert("RGB"))


def load_image(path: Path, canvas: int | None) -> np.ndarray:
    """(H, W, 3) uint8, after `check_image_header`."""
    check_image_header(path, canvas)
    try:
        with Image.open(path) as im:
            return to_rgb8(im, path)
    except (OSError, ValueError) as exc:
        raise located(path, None, f"cannot read image ({exc})") from None


def prompt_folders(root: Path) -> list[Path]:
    root = Path(root)
    if not root.is_dir():
        raise ThinkpixError(f"{root}: folder not found")
    folders = sorted(p for p in root.iterdir() if p.is_dir() and p.name.isdigit())
    if not folders:
        raise ThinkpixError(f"{root}: no prompt folders (expected GenEval's layout DIR/00000/metadata.jsonl "
                            "and DIR/00000/samples/*.png)")
    return folders


def _folder_metadata(folder: Path) -> dict:
    path = folder / "metadata.jsonl"
    lines = read_metadata(path)
    if len(lines) != 1:
        raise located(path, lines[1][0], f"expected one metadata line, found {len(lines)}")
    return lines[0][1]


def sample_paths(folder: Path) -> list[Path]:
    samples = sorted(p for p in (folder / "samples").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES)
    if not samples:
        raise located(folder / "samples", None, "no images (expected samples/0000.png ...)")
    return samples


def incomplete_folders(root: Path, folders: list[Path]) -> tuple[list[Path], int]:
    """(prompt folders missing images or metadata, prompt folders missing altogether). With a
    sampler's record the expected counts are known; otherwise every folder must hold metadata and
    as many images as the fullest one."""
    record = read_record(root)
    if record is not None:
        n = record["images_per_prompt"]
        bad = [f for f in folders if not prompt_folder_complete(f, None, n)]
        return bad, max(0, record.get("num_prompts", len(folders)) - len(folders))
    counts = {f: len([p for p in (f / "samples").glob("*") if p.suffix.lower() in IMAGE_SUFFIXES]) for f in folders}
    most = max(counts.values(), default=0)
    return [f for f in folders if not (f / "metadata.jsonl").is_file() or counts[f] < most], 0


def evaluate_folder(root: Path, canvas: int | None = None, write: bool = True,
                    partial: bool = False) -> tuple[list[dict], dict]:
    """Score every image under `root`. `canvas`: required image side (default: the first
    image's, all others must match). An incomplete folder (see `incomplete_folders`) is refused,
    or with `partial` its complete prompt folders are scored and the summary counts the rest
    (`incomplete_prompts`). Every metadata file and image header is checked before any image is
    decoded. Returns (results, summary); writes results.jsonl and summary.json when `write`."""
    root = Path(root)
    folders = prompt_folders(root)
    bad, missing = incomplete_folders(root, folders)
    if (bad or missing) and not partial:
        example = f" (e.g. {bad[0]})" if bad else ""
        raise ThinkpixError(f"{root}: incomplete: {len(bad)} prompt folder(s) lack images or metadata{example} and "
                            f"{missing} are missing; finish it by rerunning the same `thinkpix sample` command, or "
                            "score the complete ones with --partial")
    jobs = [(folder, _folder_metadata(folder), sample_paths(folder)) for folder in folders if folder not in bad]
    for _, _, samples in jobs:  # every header before any decoding
        for path in samples:
            canvas = check_image_header(path, canvas)  # the first image fixes the size for the rest
    results = []
    for folder, meta, samples in jobs:
        for path in samples:
            image = load_image(path, canvas)
            row = {"folder": folder.name, "sample": path.name, "tag": meta["tag"], "prompt": meta["prompt"]}
            results.append(row | score_image(image, meta))
    summary = summarise(results)
    if partial:
        summary["incomplete_prompts"] = len(bad) + missing
    if write:
        with (root / "results.jsonl").open("w", encoding="utf-8") as f:
            f.writelines(json.dumps(r) + "\n" for r in results)
        (root / "summary.json").write_text(json.dumps(summary, indent=2) + "\n", encoding="utf-8")
    return results, summary


def summarise(results: list[dict], seed: int = 0) -> dict:
    """Per-task accuracy, overall (unweighted over GenEval tasks), prompts correct, and a
    bootstrap 95% interval for overall (prompts resampled within each task)."""
    by_task: dict[str, dict[str, list[float]]] = {}  # task -> prompt folder -> image scores
    any_correct: dict[str, bool] = {}
    for r in results:
        value = r.get("score", float(r["correct"]))
        by_task.setdefault(r["tag"], {}).setdefault(r["folder"], []).append(value)
        any_correct[r["folder"]] = any_correct.get(r["folder"], False) or bool(r["correct"])
    order = [t for t in TASKS if t in by_task] + sorted(t for t in by_task if t not in TASKS)
    per_prompt = {t: np.array([np.mean(v) for v in by_task[t].values()]) for t in order}
    # accuracy over images; prompts have equal image counts in the usual layout
    tasks = {t: float(np.mean([x for v in by_task[t].values() for x in v])) for t in order}
    main = [t for t in order if t in TASKS] or order
    overall = float(np.mean([tasks[t] for t in main])) if main else 0.0
    boot = stratified_bootstrap_means([per_prompt[t] for t in main], BOOTSTRAP, seed) if main else np.zeros(1)
    return {
        "tasks": tasks,
        "overall": overall,
        "prompts_correct": float(np.mean(list(any_correct.values()))) if any_correct else 0.0,
        "overall_ci95": list(percentile_interval(boot)),
        "images": len(results),
        "prompts": len(any_correct),
        "task_images": {t: sum(len(v) for v in by_task[t].values()) for t in order},
        "task_prompts_correct": {t: float(np.mean([any_correct[f] for f in by_task[t]])) for t in order},
    }


def format_table(summary: dict) -> str:
    """A readable table of a summary."""
    lines = [f"{'task':<15}{'images':>8}{'accuracy':>10}{'prompts ok':>12}"]
    for task, acc in summary["tasks"].items():
        lines.append(f"{task:<15}{summary['task_images'][task]:>8}{acc:>10.3f}"
                     f"{summary['task_prompts_correct'][task]:>12.3f}")
    lo, hi = summary["overall_ci95"]
    lines.append(f"{'overall':<15}{summary['images']:>8}{summary['overall']:>10.3f}{summary['prompts_correct']:>12.3f}"
                 f"   (95% CI {lo:.3f}-{hi:.3f})")
    return "\n".join(lines)
