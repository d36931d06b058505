"""Lake diffusion's table: T curves, gains with T and paired differences between arms, with the
pre-registered verdicts of docs/lab/lake_diffusion.md.

Arms play roles: `base` (the plain stack that clears the base rule), `winner` (the recursion ladder's best
RSR reading on that base, trained in with random T), `paper` (the paper's reading on that base) and `deep`
(a plain stack matched to the winner's forward FLOPs at T = 8). Every run is scored on the same maps with
the same noise (noise seed = map index), so differences between arms are paired per map.

    python -m thinkpix.worlds.lake.cell_diffusion_table --runs RUNS --base stack-2 \\
        --winner rsr-refined-every-step-b2 --paper rsr-paper-b2 --deep stack-5 --out RESULTS.json [--doc PAGE]
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np

from .ladder_table import DECIDING, between_markers, by_length, curve, gain, load_runs, paired, publish

ROLES = ("base", "winner", "paper", "deep")
AT = 8  # the looped arms are read at their training depth T_max
INERT_BAND, BASE_RULE = 0.03, 0.50


def depth(arm_scores: dict, T: int) -> str:
    """The T key to read: a plain stack ignores T (scored once, at every T >= 1)."""
    return str(T) if str(T) in arm_scores["in-range"]["T"] else "1"


def run_rows(scores: dict) -> dict:
    """Everything the docs report for one run."""
    inr, (_, lo, hi) = scores["in-range"], DECIDING
    looped = "0" in inr["T"]
    return {
        "curve_in_range": curve(inr),
        "curve_deciding": curve(inr, (lo, hi)),
        "curve_larger": curve(scores["larger"]),
        "curve_longer": curve(scores["longer"]),
        "by_length_at_T": by_length(inr, int(depth(scores, AT))),
        "by_length_longer_at_T": by_length(scores["longer"], int(depth(scores, AT))),
        "gain_T8_minus_T1": gain(inr, 1, AT, (lo, hi)) if looped else None,
    }


def versus(a: dict, b: dict, split: str = DECIDING[0], lengths=DECIDING[1:]) -> dict:
    """Run b at T = 8 minus run a at T = 8 on the same maps (paired), 95% interval."""
    return paired(a[split], int(depth(a, AT)), b[split], int(depth(b, AT)), tuple(lengths))


def loop_verdict(gains: list[dict]) -> str:
    if len(gains) < 3:
        return f"pending ({len(gains)} of 3 seeds)"
    if all(g["lo"] > 0 for g in gains):
        return "computes"
    if all(abs(g["gain"]) < INERT_BAND for g in gains):
        return "inert"
    return "weak"


def difference_verdict(diffs: list[dict], better: str, worse: str) -> str:
    if len(diffs) < 3:
        return f"pending ({len(diffs)} of 3 seeds)"
    if all(d["lo"] > 0 for d in diffs):
        return better
    if sum(d["hi"] < 0 for d in diffs) >= 2:
        return worse
    return "no reliable difference"


def tabulate(runs: Path, roles: dict[str, str]) -> dict:
    """{"roles", "runs", "arms": {arm: {seed: rows}}, "per_seed": {seed: {comparison: paired}}, "verdicts"}."""
    found = {arm.removeprefix("diffusion-"): seeds for arm, seeds in load_runs(runs).items()
             if arm.startswith("diffusion-")}
    missing = [a for a in roles.values() if a not in found]
    if missing:
        raise FileNotFoundError(f"no finished diffusion runs for {missing} under {runs}")
    base, winner, paper, deep = (found[roles[r]] for r in ROLES)
    per_seed: dict[str, dict] = {}
    for s in sorted(set(base) & set(winner) & set(paper) & set(deep)):
        per_seed[str(s)] = {
            "base_in_range": curve(base[s]["in-range"])["1"],
            "winner_T8_minus_T1": gain(winner[s]["in-range"], 1, AT, DECIDING[1:]),
            "paper_T8_minus_T1": gain(paper[s]["in-range"], 1, AT, DECIDING[1:]),
            "winner_minus_base": versus(base[s], winner[s]),
            "paper_minus_base": versus(base[s], paper[s]),
            "winner_minus_deep": versus(deep[s], winner[s]),
            "deep_minus_base": versus(base[s], deep[s]),
        }
    col = {k: [v[k] for v in per_seed.values()] for k in next(iter(per_seed.values()), {})}
    verdicts = {
        "base_rule": "cleared" if col and all(x >= BASE_RULE for x in col["base_in_range"]) else "not cleared",
        "winner_loop": loop_verdict(col.get("winner_T8_minus_T1", [])),
        "paper_loop": loop_verdict(col.get("paper_T8_minus_T1", [])),
        "winner_vs_base": difference_verdict(col.get("winner_minus_base", []), "beats the base", "worse than the base"),
        "winner_vs_deep": difference_verdict(col.get("winner_minus_deep", []), "beats compute-matched depth",
                                             "falls short of compute-matched depth"),
        "deep_vs_base": difference_verdict(col.get("deep_minus_base", []), "depth helps", "depth hurts"),
    }
    arms = {roles[r]: {str(s): run_rows(sc) for s, sc in sorted(found[roles[r]].items())} for r in ROLES}
    return {"criterion": {"split": DECIDING[0], "lengths": list(DECIDING[1:]), "at_T": AT, "inert_band": INERT_BAND,
                          "base_rule": BASE_RULE},
            "roles": roles, "runs": sorted(f"diffusion-{roles[r]}/seed{s}/scores.json" for r in ROLES
                                           for s in found[roles[r]]),
            "arms": arms, "per_seed": per_seed, "verdicts": verdicts}


def _spread(values: list[float]) -> str:
    return f"{np.mean(values):.3f} [{min(values):.2f}, {max(values):.2f}]"


def markdown_accuracy(result: dict) -> str:
    """Exact-map accuracy (mean over seeds [min, max]) per arm: in-range, 4-6 moves over T, larger, longer."""
    cols = [("in-range T=8", "curve_in_range", AT), ("4-6 mv T=0", "curve_deciding", 0),
            ("4-6 mv T=1", "curve_deciding", 1), ("4-6 mv T=8", "curve_deciding", AT),
            ("4-6 mv T=16", "curve_deciding", 16), ("larger T=8", "curve_larger", AT),
            ("longer T=8", "curve_longer", AT), ("longer T=16", "curve_longer", 16)]
    lines = ["| role | arm | seeds | " + " | ".join(c[0] for c in cols) + " |", "|---|---|---|" + "---|" * len(cols)]
    for role in ROLES:
        arm = result["roles"][role]
        seeds = result["arms"][arm]
        cells = []
        for _, name, T in cols:
            vals = [r[name].get(str(T), r[name]["1"] if T >= 1 else None) for r in seeds.values()]
            cells.append("-" if None in vals else _spread(vals))
        lines.append(f"| {role} | `{arm}` | {len(seeds)} | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def markdown_comparisons(result: dict) -> str:
    """Per seed: the paired differences that decide, with 95% intervals; the verdicts in the last row."""
    rows = [("winner T=8 - T=1", "winner_T8_minus_T1", "winner_loop"),
            ("paper T=8 - T=1", "paper_T8_minus_T1", "paper_loop"),
            ("winner - base", "winner_minus_base", "winner_vs_base"),
            ("winner - deep", "winner_minus_deep", "winner_vs_deep"),
            ("deep - base", "deep_minus_base", "deep_vs_base"),
            ("paper - base", "paper_minus_base", None)]
    seeds = sorted(result["per_seed"])
    lines = ["| 4-6-move maps | " + " | ".join(f"seed {s}" for s in seeds) + " | verdict |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for label, key, verdict in rows:
        cells = [f"{d['gain']:+.3f} ({d['lo']:+.3f} to {d['hi']:+.3f})" for d in
                 (result["per_seed"][s][key] for s in seeds)]
        lines.append(f"| {label} | " + " | ".join(cells) + f" | {result['verdicts'][verdict] if verdict else ''} |")
    return "\n".join(lines)


def fill_doc(text: str, result: dict) -> str:
    """Put both tables between their markers (`<!-- diffusion-accuracy -->` ... `<!-- /diffusion-accuracy -->`
    and `diffusion-comparisons`) in a docs page."""
    for name, table in (("diffusion-accuracy", markdown_accuracy(result)),
                        ("diffusion-comparisons", markdown_comparisons(result))):
        text = between_markers(text, name, table)
    return text


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m thinkpix.worlds.lake.cell_diffusion_table",
                                     description=__doc__.split("\n")[0])
    parser.add_argument("--runs", type=Path, required=True)
    for role in ROLES:
        parser.add_argument(f"--{role}", required=True, help=f"the arm playing `{role}`")
    parser.add_argument("--out", type=Path, required=True, help="results JSON (paths relative to --runs)")
    parser.add_argument("--doc", type=Path, help="a docs page whose diffusion tables to rewrite")
    args = parser.parse_args(argv)
    try:
        result = tabulate(args.runs, {r: getattr(args, r) for r in ROLES})
    except FileNotFoundError as exc:
        parser.exit(2, f"error: {exc}\n")
    publish(result, args.out, args.doc, fill_doc)
    print(json.dumps(result["verdicts"], indent=1))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
