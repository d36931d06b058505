"""The evaluator against known truth: degraded renders (seeded) and the settled generated set, with
the evaluator before its fix scored side by side.

    python -m benchmarks.validate_evaluator --out benchmarks/results/evaluator_validation.json

Degraded renders (`thinkpix.evaluation.degraded`, validation seed 3; the thresholds were set
looking at seeds 1 and 2): per-shape, per-size confusion of single objects (uncut and cut by the border), per-task
verdict agreement with GenEval's rules applied to the drawn objects, with both error directions
(and the counting task at other counting cuts), the split rate of touching same-colour pairs, and
images without objects. Settled set (`data/settled/verdicts.jsonl`): images the bundled bases drew,
each verdict settled by a person looking at it; agreement and both error directions per source and
task, for the evaluator now and before.
"""

from __future__ import annotations

import argparse
import json
import tempfile
import time
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
COUNTING_SWEEP = (0.6, 0.65, 0.75, 0.8, 0.85)


def _summary_bins(table: dict) -> dict:
    uncut = {k: v["shape_accuracy"] for k, v in table.items() if not k.endswith("cut")}
    cut = {k: v["shape_accuracy"] for k, v in table.items() if k.endswith("cut")}
    return {"uncut_min": min(v["rate"] for v in uncut.values()), "uncut_min_bin": min(uncut, key=lambda k: uncut[k]["rate"]),
            "uncut_pooled": sum(v["rate"] * v["n"] for v in uncut.values()) / sum(v["n"] for v in uncut.values()),
            "cut_pooled": sum(v["rate"] * v["n"] for v in cut.values()) / max(sum(v["n"] for v in cut.values()), 1)}


def settled_agreement(path: Path, verdicts: list[bool]) -> dict:
    """Per source and task: agreement with the settled verdicts (ambiguous images left out), false
    accepts (settled wrong, evaluator correct) and false rejects."""
    from thinkpix.evaluation.audit import rate

    rows: dict[str, Counter] = {}
    for line, said in zip(path.read_text().splitlines(), verdicts):
        row = json.loads(line)
        task = row["source"] + ":" + (row["metadata"]["tag"] if "metadata" in row else "class")
        for key in (task, row["source"], "all"):
            c = rows.setdefault(key, Counter())
            if row["verdict"] is None:
                c["ambiguous"] += 1
                continue
            c["n"] += 1
            c["agree"] += said == row["verdict"]
            c["truth_correct"] += row["verdict"]
            c["false_accept"] += said and not row["verdict"]
            c["false_reject"] += row["verdict"] and not said
    return {k: {"agreement": rate(c["agree"], c["n"]), "false_accept": rate(c["false_accept"], c["n"] - c["truth_correct"]),
                "false_reject": rate(c["false_reject"], c["truth_correct"]), "ambiguous_left_out": c["ambiguous"]}
            for k, c in sorted(rows.items())}


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--out", default="benchmarks/results/evaluator_validation.json")
    p.add_argument("--seed", type=int, default=3)
    p.add_argument("--singles", type=int, default=6000)
    p.add_argument("--scenes", type=int, default=1800)
    p.add_argument("--pairs", type=int, default=600)
    p.add_argument("--garbage", type=int, default=200)
    p.add_argument("--settled", default=str(ROOT / "data/settled/verdicts.jsonl"))
    p.add_argument("--before", default=None, help="git revision of the earlier evaluator (default: BEFORE)")
    args = p.parse_args(argv)

    from benchmarks import evaluator_versions as versions
    from thinkpix.evaluation.audit import (agreement_of, garbage_scores, shape_confusion, split_rate,
                                                verdict_agreement)
    from thinkpix.files import portable, write_json

    before = args.before or versions.BEFORE
    report: dict = {"command": "python -m benchmarks.validate_evaluator " + " ".join(
        f"--{k} {getattr(args, k)}" for k in ("seed", "singles", "scenes", "pairs", "garbage")), "before_rev": before}
    t0 = time.time()
    table = shape_confusion(args.singles, args.seed)
    report["shape_confusion"] = {"summary": _summary_bins(table), "bins": table}
    with tempfile.TemporaryDirectory() as tmp:
        report["verdicts"] = verdict_agreement(args.scenes, args.seed, counting_thresholds=COUNTING_SWEEP, folder=tmp)
        truths = [json.loads(line) for line in (Path(tmp) / "truth.jsonl").read_text().splitlines()]
        old = versions.folder_scores(Path(tmp), before)["results"]
        report["verdicts_before"] = agreement_of({r["folder"]: r["correct"] for r in old}, truths,
                                                 {r["folder"]: r["tag"] for r in old})
    report["split_touching_same_colour"] = split_rate(args.pairs, args.seed)
    report["garbage"] = garbage_scores(args.garbage, args.seed)
    settled = Path(args.settled)
    if settled.is_file():
        report["settled"] = {"file": str(settled.relative_to(ROOT)) if settled.is_relative_to(ROOT) else str(settled),
                             "now": settled_agreement(settled, versions.settled_verdicts(settled)),
                             "before": settled_agreement(settled, versions.settled_verdicts(settled, before))}
    report["seconds"] = round(time.time() - t0, 1)
    out = write_json(args.out, portable(report), indent=1)

    s = report["shape_confusion"]["summary"]
    print(f"shape accuracy, uncut: pooled {s['uncut_pooled']:.4f}, lowest bin {s['uncut_min']:.4f} ({s['uncut_min_bin']});"
          f" cut by the border: {s['cut_pooled']:.4f}")
    for name, v in report["verdicts"].items():
        b = report["verdicts_before"].get(name)
        print(f"{name:<16} agreement {v['agreement']['rate']:.4f} (n {v['agreement']['n']})"
              f"  FA {v['false_accept']['rate']:.4f}  FR {v['false_reject']['rate']:.4f}"
              + (f"   before: {b['agreement']['rate']:.4f} FA {b['false_accept']['rate']:.4f} FR {b['false_reject']['rate']:.4f}"
                 if b else ""))
    print(f"touching same-colour pairs counted as two: {report['split_touching_same_colour']['rate']:.4f}")
    print(f"garbage: {report['garbage']['verdicts_correct']} of {report['garbage']['verdicts']} verdicts correct")
    for when in ("now", "before"):
        for k, v in report.get("settled", {}).get(when, {}).items():
            if ":" not in k:
                print(f"settled {when} {k:<6} agreement {v['agreement']['rate']:.3f} (n {v['agreement']['n']})"
                      f"  FA {v['false_accept']['rate']:.3f}  FR {v['false_reject']['rate']:.3f}")
    print(f"wrote {out}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
