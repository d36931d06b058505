"""Lake diffusion runs trained in different precisions (and seeds), compared paired per map.

    python -m benchmarks.lake_precision_parity --arm fp32=RUNS/fp32/diffusion-stack-2/seed0 \
        --arm bf16=RUNS/bf16/diffusion-stack-2/seed0 --arm fp32_seed1=RUNS/fp32/diffusion-stack-2/seed1 \
        --out experiments/results/precision_parity_lake.json

Each arm is a finished cell-diffusion run folder (`scores.json`, `train.json`; `thinkpix.worlds.lake.ladder
train --task diffusion`). Every run is scored on the same test maps with the same noise (noise seed = map
index), so every difference is paired per map: the first arm is the reference, and each other arm gets
its in-range accuracy minus the reference's with a 95% bootstrap interval (maps resampled), over all
in-range maps and over the deciding maps (4-6 moves, `ladder_table.DECIDING`), read at T = 8 for a looped
arm and once for a plain stack (`cell_diffusion_table.depth`). The training seconds of each run come from
its `train.json`. With a second fp32 seed among the arms, `fp32 seed-to-seed` is that arm's difference to
the reference: how far two fp32 seeds differ, to read the precision difference against.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path


def compare(arms: dict[str, Path]) -> dict:
    from thinkpix.worlds.lake.cell_diffusion_table import AT, depth
    from thinkpix.worlds.lake.ladder_table import DECIDING, curve, paired

    split, lo, hi = DECIDING
    scores = {n: json.loads((p / "scores.json").read_text()) for n, p in arms.items()}
    trains = {n: json.loads((p / "train.json").read_text()) for n, p in arms.items()}
    ref = next(iter(arms))
    T = {n: int(depth(s, AT)) for n, s in scores.items()}
    out = {"reference": ref, "split": split, "deciding_lengths": [lo, hi], "arms": {}}
    for name, s in scores.items():
        row = {"folder": str(arms[name]), "precision": trains[name].get("precision", "fp32"),
               "seed": trains[name]["seed"], "steps": trains[name]["budget"]["steps"], "read_at_T": T[name],
               "train_seconds": trains[name]["seconds"]}
        row["in_range"] = curve(s[split])[str(T[name])]
        row["deciding"] = curve(s[split], (lo, hi))[str(T[name])]
        if name != ref:
            row["vs_reference_in_range"] = paired(scores[ref][split], T[ref], s[split], T[name])
            row["vs_reference_deciding"] = paired(scores[ref][split], T[ref], s[split], T[name], (lo, hi))
        out["arms"][name] = row
    return out


def table(result: dict) -> str:
    """Markdown: one row per arm, accuracy and paired difference to the reference."""
    ref = result["reference"]
    rows = [f"| arm | precision | seed | steps | in-range | - {ref} (95% CI) | deciding (4-6 moves) | - {ref} (95% CI) "
            "| training s |", "|" + "---|" * 9]

    def ci(d):
        return f"{d['gain']:+.3f} ({d['lo']:+.3f} to {d['hi']:+.3f})"

    for name, r in result["arms"].items():
        diffs = ("-", "-") if name == ref else (ci(r["vs_reference_in_range"]), ci(r["vs_reference_deciding"]))
        rows.append(f"| {name} | {r['precision']} | {r['seed']} | {r['steps']} | {r['in_range']:.3f} | {diffs[0]} "
                    f"| {r['deciding']:.3f} | {diffs[1]} | {r['train_seconds']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=RUN_FOLDER",
                        help="a finished cell-diffusion run; the first is the reference")
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    from thinkpix.files import portable, write_json

    arms = {}
    for spec in args.arm:
        name, sep, folder = spec.partition("=")
        if not sep or not name or name in arms:
            raise SystemExit(f"--arm: NAME=RUN_FOLDER with distinct names, got {spec!r}")
        if not (Path(folder) / "scores.json").is_file():
            raise SystemExit(f"--arm {name}: {folder} is not a finished run (no scores.json)")
        arms[name] = Path(folder)
    result = compare(arms)
    result["command"] = "python -m benchmarks.lake_precision_parity " + " ".join(f"--arm {a}" for a in args.arm)
    write_json(args.out, portable(result))
    print(table(result))


if __name__ == "__main__":
    main()
