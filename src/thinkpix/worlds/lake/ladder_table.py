"""The recursion ladder's table: gains with T, paired bootstrap intervals, and the pre-registered verdicts.

Reads RUNS/<arm>/seed<k>/scores.json (per-map 0/1 correctness per split and T, written by `ladder.train`).
The deciding number is the gain T=8 - T=1 on in-range maps with 4-6 moves, with the 95% percentile
interval of the mean of the paired per-map differences (the same maps at both depths).
Criteria (docs/lab/recursion_ladder.md): the control `loop` must gain >= 0.15 in every seed; an RSR reading
is useful if its interval is above zero in all seeds and its gain >= half the control's in each; inert if
|gain| < 0.03 in every seed while the control works; weak otherwise.
"""

from __future__ import annotations

import json
import re
from pathlib import Path

import numpy as np

from thinkpix.evaluation.bootstrap import bootstrap_mean_interval

CONTROL = "loop"
DECIDING = ("in-range", 4, 6)  # split, shortest path lengths from .. to
CONTROL_MIN_GAIN, INERT_BAND = 0.15, 0.03
RESAMPLES = 2000


def load_runs(runs: Path) -> dict[str, dict[int, dict]]:
    """{arm: {seed: scores}} for every finished run under `runs`."""
    found: dict[str, dict[int, dict]] = {}
    for path in sorted(Path(runs).glob("*/seed*/scores.json")):
        arm, seed = path.parent.parent.name, int(path.parent.name.removeprefix("seed"))
        found.setdefault(arm, {})[seed] = json.loads(path.read_text())
    return found


def _rows(split: dict, lengths: tuple[int, int] | None = None) -> np.ndarray:
    keep = np.ones(len(split["lengths"]), dtype=bool)
    if lengths is not None:
        L = np.asarray(split["lengths"])
        keep = (L >= lengths[0]) & (L <= lengths[1])
    return keep


def gain(split: dict, t_from: int, t_to: int, lengths: tuple[int, int] | None = None, seed: int = 0) -> dict:
    """Accuracy at both depths, their paired difference and its 95% bootstrap interval."""
    return paired(split, t_from, split, t_to, lengths, seed)


def paired(split_a: dict, t_a: int, split_b: dict, t_b: int, lengths: tuple[int, int] | None = None,
           seed: int = 0) -> dict:
    """Accuracy of run a at depth t_a and run b at t_b on the same maps, the mean paired difference b - a and
    its 95% bootstrap interval (two depths of one run, or two runs scored on identical maps and noise)."""
    keep = _rows(split_a, lengths)
    if split_a["lengths"] != split_b["lengths"]:
        raise ValueError("paired comparison of runs scored on different maps")
    a = np.asarray(split_a["T"][str(t_a)])[keep]
    b = np.asarray(split_b["T"][str(t_b)])[keep]
    lo, hi = bootstrap_mean_interval(b - a, resamples=RESAMPLES, seed=seed)
    return {"from": round(float(a.mean()), 4), "to": round(float(b.mean()), 4),
            "gain": round(float((b - a).mean()), 4), "lo": round(lo, 4), "hi": round(hi, 4), "maps": int(keep.sum())}


def curve(split: dict, lengths: tuple[int, int] | None = None) -> dict[str, float]:
    keep = _rows(split, lengths)
    return {T: round(float(np.asarray(v)[keep].mean()), 4) for T, v in split["T"].items()}


def by_length(split: dict, T: int) -> dict[str, float]:
    L, ok = np.asarray(split["lengths"]), np.asarray(split["T"][str(T)])
    return {str(n): round(float(ok[L == n].mean()), 4) for n in sorted(set(L.tolist()))}


def arm_rows(scores: dict) -> dict:
    """Everything the docs report for one run."""
    name, lo, hi = DECIDING
    inr = scores[name]
    return {
        "deciding": gain(inr, 1, 8, (lo, hi)),
        "in_range": gain(inr, 1, 8),
        "larger": gain(scores["larger"], 1, 8),
        "longer": gain(scores["longer"], 1, 8),
        "larger_16_vs_8": gain(scores["larger"], 8, 16),
        "longer_16_vs_8": gain(scores["longer"], 8, 16),
        "curve_deciding": curve(inr, (lo, hi)),
        "curve_longer": curve(scores["longer"]),
        "by_length_T1": by_length(inr, 1),
        "by_length_T8": by_length(inr, 8),
    }


def verdict(arm: dict[int, dict], control: dict[int, dict]) -> str:
    """The pre-registered reading of one arm's per-seed deciding gains against the control's."""
    seeds = sorted(arm)
    if not seeds or any(s not in control for s in seeds):
        return "no control"
    if any(control[s]["deciding"]["gain"] < CONTROL_MIN_GAIN for s in seeds):
        return "ladder broken (control gains < 0.15)"
    d = [arm[s]["deciding"] for s in seeds]
    c = [control[s]["deciding"]["gain"] for s in seeds]
    if len(seeds) < 3:
        return f"pending ({len(seeds)} of 3 seeds)"
    if all(x["lo"] > 0 and x["gain"] >= 0.5 * cg for x, cg in zip(d, c)):
        return "useful"
    if all(abs(x["gain"]) < INERT_BAND for x in d):
        return "inert"
    return "weak"


def best_reading(runs: Path) -> dict:
    """The from-scratch RSR arm (M = 2) with the largest mean validation gain T=8 - T=1 over its seeds
    (`validation.json`, written by `ladder validate`; never the test splits)."""
    gains: dict[str, list[float]] = {}
    for path in sorted(Path(runs).glob("rsr-*/seed*/validation.json")):
        arm = path.parent.parent.name
        if re.search(r"-m\d+$", arm):
            continue  # routing rungs are variations of the best, not candidates
        split = json.loads(path.read_text())["in-range"]
        gains.setdefault(arm, []).append(gain(split, 1, 8)["gain"])
    means = {a: round(float(np.mean(g)), 4) for a, g in gains.items()}
    return {"validation_gain": means, "best": max(means, key=means.get) if means else None}


def _seed_mean(seeds: dict[int, dict], curve_name: str, T: str) -> list[float]:
    """[mean, min, max] over seeds of one curve's accuracy at depth T."""
    v = [r[curve_name][T] for r in seeds.values()]
    return [round(float(np.mean(v)), 4), min(v), max(v)]


def tabulate(runs: Path) -> dict:
    """{"arms": {arm: {seed: rows}}, "summary": {arm: {"gains": [...], "verdict": ...}}, "runs": [relative paths]}."""
    found = load_runs(runs)
    arms = {arm: {seed: arm_rows(s) for seed, s in seeds.items()} for arm, seeds in found.items()}
    control = arms.get(CONTROL, {})
    summary = {}
    for arm, seeds in arms.items():
        g = {str(s): [r["deciding"]["gain"], r["deciding"]["lo"], r["deciding"]["hi"]] for s, r in sorted(seeds.items())}
        looped = arm.startswith(("rsr-", "adapter-"))
        summary[arm] = {"T8_minus_T1_4to6_moves": g,
                        "verdict": "control" if arm == CONTROL else verdict(seeds, control) if looped else "reference",
                        "accuracy_4to6_moves": {T: _seed_mean(seeds, "curve_deciding", T) for T in ("1", "8", "16")},
                        "accuracy_longer": {T: _seed_mean(seeds, "curve_longer", T) for T in ("1", "8", "16")}}
    return {"criterion": {"split": DECIDING[0], "lengths": list(DECIDING[1:]), "from_T": 1, "to_T": 8,
                          "control_min_gain": CONTROL_MIN_GAIN, "inert_band": INERT_BAND, "resamples": RESAMPLES},
            "runs": sorted(f"{a}/seed{s}/scores.json" for a, ss in found.items() for s in ss),
            "selection": best_reading(runs),
            "summary": summary, "arms": {a: {str(s): r for s, r in v.items()} for a, v in arms.items()}}


def markdown(result: dict, arms: list[str] | None = None) -> str:
    """The docs' table: per arm, T=8 - T=1 [95% interval] per seed on in-range 4-6-move maps, and the verdict."""
    names = arms or sorted(result["summary"])
    seeds = sorted({s for a in names for s in result["summary"][a]["T8_minus_T1_4to6_moves"]})
    lines = ["| arm | " + " | ".join(f"seed {s}" for s in seeds) + " | verdict |",
             "|---|" + "---|" * len(seeds) + "---|"]
    for a in names:
        g = result["summary"][a]["T8_minus_T1_4to6_moves"]
        cells = [f"{g[s][0]:+.3f} ({g[s][1]:+.3f} to {g[s][2]:+.3f})" if s in g else "-" for s in seeds]
        lines.append(f"| `{a}` | " + " | ".join(cells) + f" | {result['summary'][a]['verdict']} |")
    return "\n".join(lines)


def markdown_accuracy(result: dict, arms: list[str] | None = None) -> str:
    """Exact-map accuracy at T = 1, 8, 16 (mean over seeds, [min, max]) on the deciding maps and on `longer`."""
    names = arms or sorted(result["summary"])
    head = ["4-6 moves T=1", "4-6 moves T=8", "4-6 moves T=16", "longer T=8", "longer T=16"]
    lines = ["| arm | seeds | " + " | ".join(head) + " |", "|---|---|" + "---|" * len(head)]
    for a in names:
        s = result["summary"][a]
        cells = [s["accuracy_4to6_moves"][T] for T in ("1", "8", "16")] + [s["accuracy_longer"][T] for T in ("8", "16")]
        n = len(s["T8_minus_T1_4to6_moves"])
        lines.append(f"| `{a}` | {n} | " + " | ".join(f"{m:.3f} [{lo:.2f}, {hi:.2f}]" for m, lo, hi in cells) + " |")
    return "\n".join(lines)


def between_markers(text: str, name: str, table: str) -> str:
    """`text` with `table` between `<!-- name -->` and `<!-- /name -->` (a bare opening marker gets its closing one)."""
    start, end = f"<!-- {name} -->", f"<!-- /{name} -->"
    head, _, rest = text.partition(start)
    tail = rest.partition(end)[2] if end in rest else rest
    return f"{head}{start}\n{table}\n{end}{tail}"


def fill_doc(text: str, result: dict) -> str:
    """Put the two tables between their markers (`<!-- ladder-gains -->` ... `<!-- /ladder-gains -->`, the same
    for `ladder-accuracy`) in a docs page."""
    for name, table in (("ladder-gains", markdown(result)), ("ladder-accuracy", markdown_accuracy(result))):
        text = between_markers(text, name, table)
    return text


def publish(result: dict, out: Path, doc: Path | None, fill) -> None:
    """Write the results JSON to `out` and, given a docs page, rewrite its tables with `fill(text, result)`."""
    from thinkpix.files import write_json

    write_json(out, result)
    if doc is not None:
        doc.write_text(fill(doc.read_text(encoding="utf-8"), result), encoding="utf-8")
