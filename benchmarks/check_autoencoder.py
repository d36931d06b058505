"""Is the autoencoder good enough to be the latent space? Ground-truth renders of the committed
GenEval-style set are encoded and decoded, and the reconstructions scored by the exact evaluator.

    python -m benchmarks.check_autoencoder --autoencoder PATH --out benchmarks/results/autoencoder.json
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--autoencoder", required=True, help="diffusers AutoencoderKL folder (or a model folder)")
    parser.add_argument("--prompts", default="data/eval/geneval.jsonl")
    parser.add_argument("--images-per-prompt", type=int, default=1)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/autoencoder.json")
    args = parser.parse_args()
    torch.set_num_threads(1)

    from thinkpix.evaluation.truth_images import ground_truth, image_rng
    from thinkpix.evaluation.runner import score_image, summarise
    from thinkpix.models import autoencoder as ae_lib
    from thinkpix.models.t2i import load_autoencoder
    from thinkpix.worlds.shapes.scene import render

    path = Path(args.autoencoder)
    ae = load_autoencoder(path / "autoencoder" if (path / "autoencoder").exists() else path)
    metas = [json.loads(line) for line in Path(args.prompts).read_text().splitlines() if line.strip()]
    truth, recon, rows = [], [], []
    for i, meta in enumerate(metas):
        for k in range(args.images_per_prompt):
            truth.append(render(ground_truth(meta, image_rng(args.seed, i, k))))
            rows.append((i, k, meta))
    images = torch.from_numpy(np.stack(truth))
    with torch.no_grad():
        for start in range(0, len(images), 128):
            x = ae_lib.images_to_unit(images[start : start + 128])
            recon.append(ae_lib.unit_to_images(ae_lib.decode(ae, ae_lib.encode(ae, x))))
    recon = torch.cat(recon).numpy()
    results = []
    for (i, k, meta), image in zip(rows, recon):
        r = score_image(image, meta)
        results.append({"folder": f"{i:05d}", "sample": k, "tag": meta["tag"], "correct": r["correct"]})
    summary = summarise(results)
    summary["pixel_mae_0_255"] = float(np.abs(recon.astype(np.float32) - images.numpy()).mean())
    summary["command"] = f"python -m benchmarks.check_autoencoder --autoencoder {args.autoencoder}"
    from thinkpix.files import portable, write_json
    write_json(args.out, portable(summary))
    print(json.dumps({k: summary[k] for k in ("tasks", "overall", "pixel_mae_0_255")}, indent=1, default=float))


if __name__ == "__main__":
    main()
