"""The settled set: a small seeded pick of images the bundled bases drew, for a person to judge.

    # the pools (docs/evaluation.md): 240 fresh GenEval-style prompts (seed 9), one image each, and
    # 6 images per class of shapes-dit (seed 9)
    python -m benchmarks.settled_set pick --t2i POOL_T2I --dit POOL_DIT --seed 0 --out data/settled
    python -m benchmarks.settled_set sheets data/settled --out SHEETS    # 8x contact sheets to look at

`pick` takes every image on which the evaluator now and the one before its fix disagree (the
disputed kinds), then fills up with a seeded random pick of the others, copies the PNGs into
OUT/images/ and writes OUT/candidates.jsonl (one line per image: image, source, the prompt's
metadata or the class label, stratum; `verdict` null). The person writes the verdict of each image
(true: the image shows what was asked, false: it does not, null: cannot tell) into
OUT/verdicts.jsonl, looking at the sheets, which show the prompt and the image only.
"""

from __future__ import annotations

import argparse
import json
import shutil
from pathlib import Path

import numpy as np


def _t2i_rows(pool: Path) -> list[dict]:
    rows = []
    for folder in sorted(p for p in pool.iterdir() if p.is_dir() and p.name.isdigit()):
        meta = json.loads((folder / "metadata.jsonl").read_text().splitlines()[0])
        for png in sorted((folder / "samples").glob("*.png")):
            rows.append({"path": png, "image": f"images/t2i/{folder.name}_{png.stem}.png", "source": "t2i",
                         "metadata": meta})
    return rows


def _dit_rows(pool: Path) -> list[dict]:
    from thinkpix.worlds.classes.sets import CLASSES

    rows = []
    for folder in sorted(p for p in pool.iterdir() if p.is_dir()):
        label = int(folder.name.split("_")[0])
        for png in sorted(folder.glob("*.png")):
            rows.append({"path": png, "image": f"images/dit/{folder.name}_{png.stem}.png", "source": "dit",
                         "label": label, "class": CLASSES[label]})
    return rows


def _verdicts(rows: list[dict], rev: str | None) -> list[bool]:
    """Both evaluators' verdicts on pool rows, through a temporary settled file."""
    import tempfile

    from benchmarks import evaluator_versions as versions

    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "rows.jsonl"
        path.write_text("".join(json.dumps({"image": str(r["path"]), **{k: r[k] for k in ("metadata", "label") if k in r}})
                                + "\n" for r in rows))
        return versions.settled_verdicts(path, rev)


def pick(t2i: Path, dit: Path, out: Path, seed: int, n_t2i: int, n_dit: int) -> list[dict]:
    from benchmarks.evaluator_versions import BEFORE

    rng = np.random.default_rng(seed)
    picked = []
    for rows, n in ((_t2i_rows(t2i), n_t2i), (_dit_rows(dit), n_dit)):
        now, before = _verdicts(rows, None), _verdicts(rows, BEFORE)
        disputed = [i for i in range(len(rows)) if now[i] != before[i]]
        agreed = [i for i in range(len(rows)) if now[i] == before[i]]
        fill = [agreed[int(j)] for j in rng.permutation(len(agreed))[: max(n - len(disputed), 0)]]
        for i in sorted(disputed + fill):
            rows[i]["stratum"] = "disputed" if i in disputed else "agreed"
            picked.append(rows[i])
    (out / "images" / "t2i").mkdir(parents=True, exist_ok=True)
    (out / "images" / "dit").mkdir(parents=True, exist_ok=True)
    with (out / "candidates.jsonl").open("w") as f:
        for r in picked:
            shutil.copyfile(r["path"], out / r["image"])
            f.write(json.dumps({k: v for k, v in r.items() if k != "path"} | {"verdict": None}) + "\n")
    return picked


def sheets(settled: Path, out: Path, per_sheet: int = 24, scale: int = 8) -> list[Path]:
    """Contact sheets of the candidates: index, prompt (or class) and the image at `scale`x."""
    from PIL import Image, ImageDraw

    rows = [json.loads(line) for line in (settled / "candidates.jsonl").read_text().splitlines()]
    out.mkdir(parents=True, exist_ok=True)
    paths = []
    cell_w, cell_h, cols = 32 * scale + 8, 32 * scale + 30, 6
    for start in range(0, len(rows), per_sheet):
        chunk = rows[start : start + per_sheet]
        sheet = Image.new("RGB", (cell_w * cols, cell_h * (-(-len(chunk) // cols))), (90, 90, 90))
        draw = ImageDraw.Draw(sheet)
        for k, r in enumerate(chunk):
            x, y = (k % cols) * cell_w, (k // cols) * cell_h
            with Image.open(settled / r["image"]) as im:
                sheet.paste(im.convert("RGB").resize((32 * scale, 32 * scale), Image.NEAREST), (x + 4, y + 26))
            text = r["metadata"]["prompt"].removeprefix("a photo of ") if "metadata" in r else r["class"]
            draw.text((x + 4, y + 2), f"{start + k}: {text}"[:44], fill=(255, 255, 255))
        path = out / f"sheet_{start // per_sheet:02d}.png"
        sheet.save(path)
        paths.append(path)
    return paths


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="cmd", required=True)
    a = sub.add_parser("pick")
    a.add_argument("--t2i", required=True)
    a.add_argument("--dit", required=True)
    a.add_argument("--seed", type=int, default=0)
    a.add_argument("--n-t2i", type=int, default=120)
    a.add_argument("--n-dit", type=int, default=48)
    a.add_argument("--out", default="data/settled")
    b = sub.add_parser("sheets")
    b.add_argument("settled")
    b.add_argument("--out", required=True)
    args = p.parse_args(argv)
    if args.cmd == "pick":
        picked = pick(Path(args.t2i), Path(args.dit), Path(args.out), args.seed, args.n_t2i, args.n_dit)
        print(f"picked {len(picked)} images ({sum(r['stratum'] == 'disputed' for r in picked)} disputed) -> {args.out}")
    else:
        for path in sheets(Path(args.settled), Path(args.out)):
            print(path)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
