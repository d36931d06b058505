"""The lake fine-tuning table: RSR adapters against LoRA (and LoRA at twice the steps) on the shifted maps,
paired per map, with the pre-registered verdicts of docs/lab/lake_finetune.md.

The shifted target is the `larger` test split with 4-6 moves (270 maps); `in-range` reads forgetting. Every
fine-tune and the base are scored on the same maps with the same noise, so differences are paired.

    python -m thinkpix.worlds.lake.cell_finetune_table --base-runs RUNS --runs RUNS/finetune --base stack-2 \\
        --out RESULTS.json [--doc PAGE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

from .cell_diffusion_table import AT, difference_verdict, loop_verdict, versus
from .ladder_table import between_markers, curve, gain, load_runs, publish

SHIFTED = ("larger", (4, 6))
RSR_ARMS = ("adapter-refined-every-step", "adapter-paper")
LORA_ARMS = ("lora", "lora-2x")


def tabulate(base_runs: Path, runs: Path, base_arm: str) -> dict:
    base = load_runs(base_runs).get(f"diffusion-{base_arm}", {})
    found = {a.removeprefix("finetune-"): s for a, s in load_runs(runs).items() if a.startswith("finetune-")}
    split, lengths = SHIFTED
    per_seed: dict[str, dict] = {}
    for seed in sorted(base):
        row = {}
        for arm, seeds in found.items():
            if seed not in seeds:
                continue
            sc = seeds[seed]
            row[f"{arm}_minus_base"] = versus(base[seed], sc, split, lengths)
            row[f"{arm}_forgetting"] = versus(base[seed], sc, "in-range", (1, 6))
            if "0" in sc[split]["T"]:
                row[f"{arm}_T8_minus_T1"] = gain(sc[split], 1, AT, lengths)
            for lora in LORA_ARMS:
                if arm in RSR_ARMS and lora in found and seed in found[lora]:
                    row[f"{arm}_minus_{lora}"] = versus(found[lora][seed], sc, split, lengths)
        per_seed[str(seed)] = row
    col = {}
    for row in per_seed.values():
        for k, v in row.items():
            col.setdefault(k, []).append(v)
    verdicts = {}
    for arm in RSR_ARMS:
        verdicts[f"{arm} loop"] = loop_verdict(col.get(f"{arm}_T8_minus_T1", []))
        for lora in LORA_ARMS:
            verdicts[f"{arm} vs {lora}"] = difference_verdict(col.get(f"{arm}_minus_{lora}", []),
                                                              f"beats {lora}", f"worse than {lora}")
    for arm in found:
        verdicts[f"{arm} vs base"] = difference_verdict(col.get(f"{arm}_minus_base", []), "helps", "hurts")
    accuracy = {arm: {str(s): {"shifted_curve": curve(sc[split], lengths), "in_range_curve": curve(sc["in-range"])}
                      for s, sc in sorted(seeds.items())} for arm, seeds in {f"base {base_arm}": base, **found}.items()}
    return {"criterion": {"split": split, "lengths": list(lengths), "at_T": AT},
            "runs": sorted(f"finetune-{a}/seed{s}/scores.json" for a, ss in found.items() for s in ss),
            "accuracy": accuracy, "per_seed": per_seed, "verdicts": verdicts}


def markdown(result: dict) -> str:
    """Rows: every paired difference per seed (95% interval); the verdicts after the table."""
    seeds = sorted(result["per_seed"])
    keys = sorted({k for row in result["per_seed"].values() for k in row})
    lines = ["| larger maps, 4-6 moves (forgetting: in-range) | " + " | ".join(f"seed {s}" for s in seeds) + " |",
             "|---|" + "---|" * len(seeds)]
    for key in keys:
        cells = []
        for s in seeds:
            d = result["per_seed"][s].get(key)
            cells.append(f"{d['gain']:+.3f} ({d['lo']:+.3f} to {d['hi']:+.3f})" if d else "-")
        lines.append(f"| {key.replace('_', ' ')} | " + " | ".join(cells) + " |")
    lines += [""] + [f"- {k}: **{v}**" for k, v in sorted(result["verdicts"].items())]
    return "\n".join(lines)


def fill_doc(text: str, result: dict) -> str:
    """Put the table between `<!-- finetune-table -->` and `<!-- /finetune-table -->` in a docs page."""
    return between_markers(text, "finetune-table", markdown(result))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.cell_finetune_table",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--base-runs", type=Path, required=True)
    parser.add_argument("--runs", type=Path, required=True)
    parser.add_argument("--base", default="stack-2")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--doc", type=Path)
    args = parser.parse_args(argv)
    result = tabulate(args.base_runs, args.runs, args.base)
    publish(result, args.out, args.doc, fill_doc)
    print(json.dumps(result["verdicts"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
