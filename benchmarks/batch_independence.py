"""Do sampled images depend on the batch size? The same prompts and seeds are sampled at several
batch sizes; every image is compared pixel by pixel with the batch-size-1 image and scored by
the exact evaluator, and any changed verdict (correct / dense score) is counted.

    python -m benchmarks.batch_independence --out benchmarks/results/batch_independence.json

Success (stated before running, docs/guarantees.md): no evaluator verdict changes between batch
sizes. Failure: any verdict changes. Prompts: a GenEval-style set made with seed 7 (not data/eval).
"""

from __future__ import annotations

import argparse
import json

import numpy as np
import torch


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="shapes-base")
    parser.add_argument("--per-task", type=int, default=12, help="prompts per GenEval task (prompt seed 7)")
    parser.add_argument("--images-per-prompt", type=int, default=4)
    parser.add_argument("--batch-sizes", default="1,8,64")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--out", default="benchmarks/results/batch_independence.json")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)

    from thinkpix.bundled import resolve_model
    from thinkpix.evaluation.runner import score_image
    from thinkpix.files import portable, write_json
    from thinkpix.models.t2i import TextToImage
    from thinkpix.models.sampler import generate_latents
    from thinkpix.worlds.shapes.prompts import geneval_set

    model = TextToImage.load(resolve_model(args.model))
    metas = geneval_set(args.per_task, 7)
    n = args.images_per_prompt
    prompts = [m["prompt"] for m in metas for _ in range(n)]
    rows = [m for m in metas for _ in range(n)]
    sizes = [int(x) for x in args.batch_sizes.split(",")]
    latents = {b: generate_latents(model, prompts, seed=args.seed, batch_size=b) for b in sizes}  # (N, C, h, w)
    images = {b: torch.cat([model.x0_to_images(latents[b][i:i + b]) for i in range(0, len(prompts), b)]).numpy()
              for b in sizes}  # decoded at the same batch size: (N, H, W, 3) uint8
    verdicts = {b: [score_image(im, meta) for im, meta in zip(images[b], rows)] for b in sizes}
    ref = sizes[0]
    out = {"command": f"python -m benchmarks.batch_independence --model {args.model} --per-task {args.per_task} "
                      f"--images-per-prompt {n} --batch-sizes {args.batch_sizes} --threads {args.threads} "
                      f"--seed {args.seed}",
           "images": len(prompts), "sampler": "euler, 20 steps, guidance 3", "reference_batch_size": ref,
           "comparisons": {}}
    for b in sizes[1:]:
        diff = np.abs(images[b].astype(np.int16) - images[ref].astype(np.int16))  # (N, H, W, 3)
        changed = [i for i, (u, v) in enumerate(zip(verdicts[ref], verdicts[b]))
                   if u["correct"] != v["correct"] or u.get("score") != v.get("score")]
        out["comparisons"][str(b)] = {
            "images_differing": int((diff.reshape(len(diff), -1).max(1) > 0).sum()),
            "pixel_values_differing": int((diff > 0).sum()),
            "max_abs_difference_0_255": int(diff.max()),
            "max_abs_latent_difference": float((latents[b] - latents[ref]).abs().max()),
            "verdicts_changed": len(changed),
            "changed_images": [{"prompt": rows[i]["prompt"], "image": i} for i in changed],
        }
    write_json(args.out, portable(out))
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
