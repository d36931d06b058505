"""The class-conditional table: base DiT vs adapters, each arm sampled with the same
labels and noise seeds, scored by class accuracy (exact detector, bootstrap 95% interval, paired
difference to the first arm) and by the Fréchet distance of the project's feature network against
held-out renders (95% interval from class-stratified half-sets drawn without replacement, and the
paired difference to the first arm: the same half-set rows for every arm; why not the plain
bootstrap: `thinkpix.evaluation.frechet.subsample_frechet`). Also reported: the same distance between
two independent held-out sets of the same size (what a perfect model would get, i.e. the distance's
finite-sample floor) and the feature network's sha256 (distances are only comparable under the same
network). The whole track, base to table: `benchmarks/run_class_track.sh`.

    python -m benchmarks.class_table --model shapes-dit --features runs/features_demo/final \
        --arm base --arm lora=runs/ft_dit_lora/adapter --arm rsr=runs/ft_dit_rsr/adapter \
        --per-class 210 --work runs/class_table --out benchmarks/results/class_table.json

An arm is NAME (the base), or NAME=ADAPTER_DIR[:THINK_STEPS]. 210 per class = 5,040 images per arm.

With `--before-rev REV` every arm's kept images are also judged by the evaluator of git revision REV
(`benchmarks.evaluator_versions`, e.g. 98d5e51: the one before its fix), so the report holds both
evaluators' accuracy on the same images. `python -m benchmarks.class_table --table REPORT.json` prints
the markdown table the docs paste.

Each arm's images are kept in WORK/NAME.safetensors (uint8, with the settings and the sha256 of the
model and adapter folders in its metadata) and reused when a later run asks for the same arm with the
same settings, so a crash loses at most one arm, and arms can be sampled by separate processes side by
side (`--sample-only --threads 1`, one arm each) before one run builds the table from the files.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
from safetensors import safe_open
from safetensors.torch import save_file
from tqdm import tqdm


def _ci(v: list[float], sign: str = "") -> str:
    """[value, lo, hi] -> '0.961 (0.955-0.966)', or with sign '+' -> '+0.001 (-0.004 to +0.006)'."""
    return f"{v[0]:{sign}.3f} ({v[1]:{sign}.3f} to {v[2]:{sign}.3f})" if sign else f"{v[0]:.3f} ({v[1]:.3f}-{v[2]:.3f})"


def markdown(report: dict) -> str:
    """One row per arm: trainable parameters, class accuracy (and the earlier evaluator's on the same images
    when the report has it), FD, each with its interval and the paired difference to the first arm."""
    arms = report["arms"]
    ref = next(iter(arms))
    before = all("accuracy_before" in a for a in arms.values())
    head = ["arm", "trainable params", "class accuracy (95% CI)", f"minus {ref} (paired 95% CI)"]
    head += ["earlier evaluator (95% CI)", f"minus {ref}, earlier evaluator"] if before else []
    head += ["FD (95% CI)", f"FD minus {ref} (paired 95% CI)"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for name, a in arms.items():
        cells = [name, f"{a.get('adapter_parameters', 0):,}", "**" + _ci([a["accuracy"], *a["accuracy_ci95"]]) + "**",
                 _ci(a[f"accuracy_minus_{ref}"], "+") if name != ref else ""]
        if before:
            cells += [_ci(a["accuracy_before"]), _ci(a[f"accuracy_before_minus_{ref}"], "+") if name != ref else ""]
        cells += [_ci([a["fd"], *a["fd_ci95"]]), _ci(a[f"fd_minus_{ref}"], "+") if name != ref else ""]
        lines.append("| " + " | ".join(cells) + " |")
    floor = f"{report['heldout_vs_heldout_fd']:.3f}"
    lines.append("| two held-out render sets (the FD floor) | | 1.000 | |" + (" | |" if before else "") + f" {floor} | |")
    return "\n".join(lines)


def adapter_parameters(folder: str | None) -> int:
    """Trainable parameters of an adapter folder: the elements of its safetensors files (0 for the base)."""
    if not folder:
        return 0
    total = 0
    for path in sorted(Path(folder).glob("*.safetensors")):
        with safe_open(path, "pt") as f:
            total += sum(int(np.prod(f.get_slice(k).get_shape())) for k in f.keys())
    return total


def main(argv: list[str] | None = None) -> dict:
    argv = sys.argv[1:] if argv is None else argv
    if len(argv) == 2 and argv[0] == "--table":
        print(markdown(json.loads(Path(argv[1]).read_text())))
        return {}
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", required=True, help="class-conditional base: a folder or a bundled name")
    parser.add_argument("--features", required=True,
                        help="feature network folder (thinkpix train configs/features_demo.yaml)")
    parser.add_argument("--arm", action="append", required=True)
    parser.add_argument("--per-class", type=int, default=210)
    parser.add_argument("--seed", type=int, default=0, help="noise seeds; held-out renders use seeds 0 and 1")
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--guidance", type=float, default=3.0)
    parser.add_argument("--bootstrap", type=int, default=1000, help="resamples for accuracy intervals")
    parser.add_argument("--fd-subsets", type=int, default=200, help="half-sets for the Frechet intervals")
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--work", default="outputs/class_table", help="where each arm's images are kept")
    parser.add_argument("--sample-only", action="store_true", help="sample (or find) the arms' images, no table")
    parser.add_argument("--before-rev", metavar="REV",
                        help="also judge every arm's images with the evaluator of this git revision")
    parser.add_argument("--out", default="benchmarks/results/class_table.json")
    args = parser.parse_args(argv)
    torch.set_num_threads(args.threads)

    from thinkpix.integrations.methods import load_adapter
    from thinkpix.bundled import resolve_model
    from thinkpix.evaluation.bootstrap import bootstrap_mean_interval
    from thinkpix.worlds.classes.evaluation import class_accuracy
    from thinkpix.evaluation.frechet import frechet_between, subsample_frechet, subsample_interval
    from thinkpix.files import folder_digest, portable, write_json
    from thinkpix.models.c2i import ClassToImage
    from thinkpix.models.features import extract_features, load_feature_net
    from thinkpix.sampling import generate_class_images
    from thinkpix.worlds.classes.sets import heldout_set

    model_path = resolve_model(args.model)
    base = ClassToImage.load(model_path)
    n = args.per_class * len(base.classes)
    labels = [i % len(base.classes) for i in range(n)]
    settings = {"model": folder_digest(model_path), "n": n, "seed": args.seed, "steps": args.steps,
                "guidance": args.guidance, "method": "euler"}

    def arm_images(arm: str) -> tuple[torch.Tensor, float]:
        """An arm's (N, H, W, 3) uint8 images and the seconds their sampling took (from WORK if kept)."""
        name, _, spec = arm.partition("=")
        path, _, steps = spec.partition(":")
        stamp = json.dumps({**settings, "adapter": folder_digest(path) if spec else None, "think_steps": steps})
        kept = Path(args.work) / f"{name}.safetensors"
        if kept.is_file():
            with safe_open(kept, "pt") as f:
                if f.metadata().get("stamp") == stamp:
                    return f.get_tensor("images"), float(f.metadata()["seconds"])
        model = ClassToImage.load(model_path)
        if spec:
            load_adapter(model.transformer, path, int(steps) if steps else None)
            model.eval()
        start, chunks = time.time(), []
        for i in tqdm(range(0, n, args.batch_size), desc=f"sampling {name}", unit="batch"):
            chunks.append(generate_class_images(model, labels[i : i + args.batch_size], seed=args.seed + i,
                                                steps=args.steps, guidance=args.guidance,
                                                batch_size=args.batch_size))
        images, seconds = torch.cat(chunks), time.time() - start
        kept.parent.mkdir(parents=True, exist_ok=True)
        tmp = kept.with_suffix(".tmp")
        save_file({"images": images.contiguous()}, tmp, metadata={"stamp": stamp, "seconds": f"{seconds:.1f}"})
        tmp.replace(kept)
        print(f"{name}: {n} images sampled in {seconds:.0f} s -> {kept}")
        return images, seconds

    if args.sample_only:
        for arm in args.arm:
            arm_images(arm)
        return {}
    net, record = load_feature_net(args.features)
    canvas = base.meta["canvas"]
    reference_labels, reference_images = heldout_set(n, seed=0, canvas=canvas)
    reference = extract_features(net, reference_images)
    floor = extract_features(net, heldout_set(n, seed=1, canvas=canvas)[1])
    report = {
        "command": "python -m benchmarks.class_table " + " ".join(
            [f"--model {args.model}", f"--features {args.features}"] + [f"--arm {a}" for a in args.arm]
            + [f"--per-class {args.per_class}", f"--seed {args.seed}", f"--steps {args.steps}",
               f"--guidance {args.guidance}"]),
        "images_per_arm": n, "sampler": {"steps": args.steps, "guidance": args.guidance, "method": "euler"},
        "features_sha256": record["sha256"],
        "heldout_vs_heldout_fd": frechet_between(floor, reference),
        "arms": {},
    }
    names, correct, feats, earlier = [], [], [], []
    for arm in args.arm:
        name, _, spec = arm.partition("=")
        images, seconds = arm_images(arm)
        acc = class_accuracy(images.numpy(), labels, seed=args.seed)
        names.append(name)
        correct.append(np.array(acc.pop("correct"), dtype=bool))
        feats.append(extract_features(net, images))
        report["arms"][name] = {
            "accuracy": acc["accuracy"], "accuracy_ci95": list(bootstrap_mean_interval(correct[-1], args.bootstrap)),
            "fd": frechet_between(feats[-1], reference),
            "per_class": acc["per_class"], "adapter": spec or None, "sampling_seconds": round(seconds, 1),
            "adapter_parameters": adapter_parameters(spec.partition(":")[0] or None),
        }
        if args.before_rev:
            from .evaluator_versions import class_judgements

            earlier.append(np.array(class_judgements(Path(args.work) / f"{name}.safetensors", args.before_rev), dtype=bool))
            report["arms"][name]["accuracy_before"] = [float(earlier[-1].mean()),
                                                       *bootstrap_mean_interval(earlier[-1], args.bootstrap)]
            report["before_rev"] = args.before_rev
    subsets = subsample_frechet(feats, reference, np.asarray(labels), np.asarray(reference_labels), args.fd_subsets,
                                seed=args.seed)  # (subsets, arms)
    for k, name in enumerate(names):
        row = report["arms"][name]
        row["fd_ci95"] = list(subsample_interval(row["fd"], subsets[:, k]))
        if k:
            d = correct[k].astype(np.float64) - correct[0]  # paired: same labels and noise in every arm
            row[f"accuracy_minus_{names[0]}"] = [float(d.mean()), *bootstrap_mean_interval(d, args.bootstrap)]
            if earlier:
                d = earlier[k].astype(np.float64) - earlier[0]
                row[f"accuracy_before_minus_{names[0]}"] = [float(d.mean()), *bootstrap_mean_interval(d, args.bootstrap)]
            diff = row["fd"] - report["arms"][names[0]]["fd"]
            row[f"fd_minus_{names[0]}"] = [diff, *subsample_interval(diff, subsets[:, k] - subsets[:, 0])]
        (alo, ahi), (flo, fhi) = row["accuracy_ci95"], row["fd_ci95"]
        print(f"{name:<12} accuracy {row['accuracy']:.3f} [{alo:.3f}, {ahi:.3f}]"
              f"  FD {row['fd']:.3f} [{flo:.3f}, {fhi:.3f}]")
        if k:
            (da, dalo, dahi), (df, dflo, dfhi) = row[f"accuracy_minus_{names[0]}"], row[f"fd_minus_{names[0]}"]
            print(f"{'':<12} minus {names[0]}: accuracy {da:+.3f} [{dalo:+.3f}, {dahi:+.3f}]"
                  f"  FD {df:+.3f} [{dflo:+.3f}, {dfhi:+.3f}]")
    print(f"held-out vs held-out FD (floor): {report['heldout_vs_heldout_fd']:.3f}")
    if args.before_rev:
        report["command"] += f" --before-rev {args.before_rev}"
    out = write_json(args.out, portable(report))
    print(markdown(report))
    print(f"wrote {out}")
    return report


if __name__ == "__main__":
    main()
