"""Loss parity of runs trained in different precisions from the same config and seed (same batches, same
noise): the training-loss curves side by side with their paired difference, and the held-out
validation loss of each run's exported (EMA) model, computed here in fp32 for every run, per sample,
with a paired bootstrap interval of the difference.

    python -m benchmarks.precision_parity --arm fp32=RUNS/p/fp32 --arm bf16=RUNS/p/bf16 \
        --out experiments/results/precision_parity_loss.json

The first arm is the reference. A run folder holds `metrics.jsonl` and the exported model in `final/`.
"""

from __future__ import annotations

import argparse
import json
from pathlib import Path

import numpy as np
import torch

BOOTSTRAP = 2000


def read_metrics(run: Path) -> dict:
    """-> {"loss": {step: mean training loss of the window ending there}, "val_loss": {step: v},
    "seconds": training wall seconds (sum over windows of steps x batch / images_per_s), "steps": last step}."""
    loss, val, seconds, last, prev = {}, {}, 0.0, 0, 0
    batch = json.loads((run / "config.json").read_text())["batch_size"] if (run / "config.json").is_file() else None
    for line in (run / "metrics.jsonl").read_text().splitlines():
        try:
            rec = json.loads(line)
        except json.JSONDecodeError:
            continue
        step = int(rec.get("step", 0))
        if "loss" in rec:
            loss[step] = float(rec["loss"])
            if batch and rec.get("images_per_s"):
                seconds += (step - prev) * batch / rec["images_per_s"]
            prev = step
        if "val_loss" in rec:
            val[step] = float(rec["val_loss"])
        last = max(last, step)
    return {"loss": loss, "val_loss": val, "seconds": seconds if batch else None, "steps": last}


def paired_interval(diffs: np.ndarray, seed: int = 0) -> list[float]:
    """Percentile bootstrap 95% interval of the mean of paired differences (n,)."""
    from thinkpix.evaluation.bootstrap import bootstrap_mean_interval

    return list(bootstrap_mean_interval(diffs, BOOTSTRAP, seed))


@torch.no_grad()
def per_sample_val_loss(model_dir: Path, n: int) -> np.ndarray:
    """(n,) rectified-flow loss of each held-out validation sample, the model in fp32 and eval mode."""
    from thinkpix import flow
    from thinkpix.models.t2i import TextToImage
    from thinkpix.training.heldout import model_inputs, validation_set_for

    model = TextToImage.load(model_dir)
    model.eval()
    vset = validation_set_for(model, n)
    out = []
    for start in range(0, len(vset), 32):
        x0, noise, t, velocity = model_inputs(model, vset, slice(start, start + 32))
        pred = velocity(flow.interpolate(x0, noise, t), t)  # (b, C, h, w)
        out.append((pred.float() - (noise - x0).float()).pow(2).flatten(1).mean(1).double().numpy())  # (b,)
    return np.concatenate(out)


def loss_table(report: dict) -> str:
    """The Markdown table of docs/lab/precision_parity.md (tested verbatim): per run, the last window's
    training loss, the fp32 validation loss of its EMA model, the paired differences to the reference,
    and the wall time per 1,000 steps."""
    ref = report["reference"]
    rows = ["| run | steps | last training loss | training loss - " + ref + " (all windows) | same, second half "
            "| val loss (fp32) | val loss - " + ref + " (paired 95% CI) | s / 1,000 steps (wall) |",
            "|" + "---|" * 8]

    def ci(c):
        return f"{c['mean']:+.4f} ({c['ci95'][0]:+.4f} to {c['ci95'][1]:+.4f})"

    def relative(v):
        return f"{ci(v)} ({v['relative']:+.1%})" if v else "-"

    for name, e in report["runs"].items():
        t = e.get(f"train_loss_minus_{ref}")
        v = e.get(f"final_val_loss_minus_{ref}")
        rows.append(f"| {name} | {e['steps']} | {e['loss_curve'][-1][1]:.4f} | {ci(t) if t else '-'} "
                    f"| {ci({'mean': t['second_half_mean'], 'ci95': t['second_half_ci95']}) if t else '-'} "
                    f"| {e['final_val_loss_fp32']:.4f} | {relative(v)} "
                    f"| {e['seconds_per_1000_steps']:.0f} |")
    return "\n".join(rows)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--arm", action="append", required=True, metavar="NAME=DIR",
                        help="a run folder; the first is the reference")
    parser.add_argument("--validation-samples", type=int, default=512)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", required=True)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    from thinkpix.files import portable, write_json

    runs = {}
    for spec in args.arm:
        name, sep, folder = spec.partition("=")
        if not sep or not folder:
            raise SystemExit(f"--arm: NAME=DIR, got {spec!r}")
        runs[name] = Path(folder)
    ref = next(iter(runs))
    report = {"command": "python -m benchmarks.precision_parity " + " ".join(f"--arm {n}={d}" for n, d in runs.items())
              + f" --validation-samples {args.validation_samples}", "reference": ref,
              "validation_samples": args.validation_samples, "runs": {}}
    metrics = {n: read_metrics(d) for n, d in runs.items()}
    val = {n: per_sample_val_loss(d / "final", args.validation_samples) for n, d in runs.items()}
    for name, folder in runs.items():
        m = metrics[name]
        entry = {"folder": str(folder), "steps": m["steps"], "train_seconds": m["seconds"],
                 "seconds_per_1000_steps": m["seconds"] / m["steps"] * 1000 if m["seconds"] and m["steps"] else None,
                 "loss_curve": [[s, v] for s, v in sorted(m["loss"].items())],
                 "val_loss_curve": [[s, v] for s, v in sorted(m["val_loss"].items())],
                 "final_val_loss_fp32": float(val[name].mean())}
        if name != ref:
            common = sorted(set(m["loss"]) & set(metrics[ref]["loss"]))
            d = np.array([m["loss"][s] - metrics[ref]["loss"][s] for s in common])  # (windows,)
            last = d[len(d) // 2:]  # the second half of training (past warm-up and the steep start)
            entry[f"train_loss_minus_{ref}"] = {"windows": len(d), "mean": float(d.mean()), "ci95": paired_interval(d),
                                                "second_half_mean": float(last.mean()),
                                                "second_half_ci95": paired_interval(last)}
            dv = val[name] - val[ref]  # (n,) same samples, same noise and timesteps
            entry[f"final_val_loss_minus_{ref}"] = {"mean": float(dv.mean()), "ci95": paired_interval(dv),
                                                    "relative": float(dv.mean() / val[ref].mean())}
        report["runs"][name] = entry
        print(f"{name}: {m['steps']} steps, final val loss (fp32) {entry['final_val_loss_fp32']:.4f}"
              + (f", {entry['seconds_per_1000_steps']:.0f} s / 1000 steps" if entry["seconds_per_1000_steps"] else ""))
        for key in (k for k in entry if k.endswith(f"_minus_{ref}")):
            c = entry[key]
            print(f"  {key}: {c['mean']:+.5f} (95% CI {c['ci95'][0]:+.5f} to {c['ci95'][1]:+.5f})")
    write_json(args.out, portable(report))


if __name__ == "__main__":
    main()
