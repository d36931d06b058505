"""What an RSR adapter learned, per RSR layer: the size of each expert's weight update
dW_m,p = A[m, :, p*r:(p+1)*r] @ B[m, p] (p = the q/k/v outputs), how alike the experts' updates are
(cosine over all outputs), and the norm of the gate's output layer (zero at initialisation: how far
routing has moved from uniform).

    python -m benchmarks.inspect_adapter runs/ft_dit_rsr/adapter [more adapters ...]

With `--run RUN [RUN ...]` it summarises instead what a fine-tune logged with `validate_every`
(`RUN/metrics.jsonl`, see docs/lab/routing_levers.md): per validation step the validation loss,
routing entropy / ln M by latent step, expert usage, the cosine between the experts' updates on the
same tokens, the gradient norm reaching the gates, ||B||, recursion use and the adapter's effect,
then the verdict against the thresholds declared in the docs (`THRESHOLDS`).

With `--probe ADAPTER [...] --base MODEL` it loads the adapter on its base and measures it now: the
probe at the adapter's own T and the validation loss at T = 0 (the base) to `--max-steps` (the T
curve on held-out data: flat past T = 1 means the latent steps are not used).
"""

from __future__ import annotations

import argparse
from pathlib import Path

import torch


def inspect(adapter: str | Path) -> dict[str, dict]:
    """-> {layer: {'expert_update_norms', 'expert_update_cosines' (pairs i<j), 'gate_out_norm'}}."""
    from safetensors.torch import load_file

    from thinkpix.files import read_checked_record
    from thinkpix.integrations.adapters import CONFIG, FORMAT, WEIGHTS

    folder = Path(adapter)
    record = read_checked_record(folder, CONFIG, WEIGHTS, FORMAT, "RSR adapter", loose=True)  # card may change
    state = load_file(folder / WEIGHTS)
    report = {}
    for key in sorted(k for k in state if k.startswith("experts.") and k.endswith(".A")):
        layer = key.split(".")[1]
        a, b = state[key].double(), state[f"experts.{layer}.B"].double()  # (M, d_in, P*r), (M, P, r, d_out)
        num_experts, num_outputs, rank, _ = b.shape
        updates = torch.stack([torch.cat([(a[m, :, p * rank : (p + 1) * rank] @ b[m, p]).flatten()
                                          for p in range(num_outputs)]) for m in range(num_experts)])  # (M, P*d_in*d_out)
        cosines = [float(torch.nn.functional.cosine_similarity(updates[i], updates[j], dim=0))
                   for i in range(num_experts) for j in range(i + 1, num_experts)]
        gate = state.get(f"gates.{layer}.out.weight")
        report[layer] = {"expert_update_norms": [float(n) for n in updates.norm(dim=1)],
                         "expert_update_cosines": cosines,
                         "gate_out_norm": float(gate.norm()) if gate is not None else None}
    return {"record_sha256": record.get("sha256"), "layers": report}


# Declared in docs/lab/routing_levers.md before the screen (read at a run's last validation record).
THRESHOLDS = {"entropy_ratio_success": 0.5, "entropy_ratio_failure": 0.95, "min_usage": 0.10,
              "cosine_success": 0.9, "cosine_failure": 0.95, "recursion_use": 0.01}


def verdict(record: dict) -> dict:
    """{'routing': 'left uniform'|'partly'|'uniform'|'collapsed'|'no routing (M=1)', 'recursion': 'used'|'unused'}."""
    th = THRESHOLDS
    usage = record.get("probe_usage_by_step") or [[1.0]]
    shares = [sum(step[m] for step in usage) / len(usage) for m in range(len(usage[0]))]  # mean over steps
    ratio, cos = record.get("probe_entropy_ratio", 0.0), record.get("probe_update_cosine")
    if len(shares) == 1:
        routing = "no routing (M=1)"
    elif ratio > th["entropy_ratio_failure"] or (cos is not None and cos > th["cosine_failure"]):
        routing = "uniform"
    elif min(shares) < th["min_usage"]:
        routing = "collapsed"
    elif ratio < th["entropy_ratio_success"] and cos is not None and cos < th["cosine_success"]:
        routing = "left uniform"
    else:
        routing = "partly"
    return {"routing": routing, "recursion": "used" if record.get("recursion_use", 0.0) >= th["recursion_use"] else "unused"}


def summarise_run(run: str | Path) -> dict:
    """The validation records of RUN/metrics.jsonl (with the training line's gate gradient) and the verdict."""
    import json

    lines = [json.loads(x) for x in (Path(run) / "metrics.jsonl").read_text().splitlines() if x.strip()]
    grads = {r["step"]: r["grad_norm_gates"] for r in lines if "grad_norm_gates" in r}
    rows = []
    for r in lines:
        if "val_loss" not in r:
            continue
        row = {k: r.get(k) for k in ("step", "val_loss", "probe_entropy_by_step", "probe_entropy_ratio",
                                     "probe_usage_by_step", "probe_update_cosine", "probe_b_norm",
                                     "recursion_use", "adapter_effect", "output_recursion_use")}
        before = [s for s in grads if s <= r["step"]]
        row["grad_norm_gates"] = grads[max(before)] if before else None
        rows.append(row)
    last = rows[-1] if rows else {}
    return {"rows": rows, "verdict": verdict(last) if last.get("recursion_use") is not None else None}  # (LoRA, full: no probe)


def probe_adapter(adapter: str, base: str, max_steps: int = 4, samples: int = 64) -> dict:
    """{'val_loss_by_T': [T = 0..max_steps], 'trained_T', **probe summary at the trained T} of an RSR adapter."""
    from thinkpix.integrations.methods import load_adapter
    from thinkpix.bundled import resolve_model
    from thinkpix.integrations.attach import get_rsr
    from thinkpix.models.bundle import model_kind
    from thinkpix.models.c2i import ClassToImage
    from thinkpix.models.t2i import TextToImage
    from thinkpix.training.instruments import probe_rsr
    from thinkpix.training.heldout import validation_loss, validation_set_for

    path = resolve_model(base)
    model = (ClassToImage if model_kind(path) == "dit" else TextToImage).load(path)
    load_adapter(model.transformer, adapter)
    rsr = get_rsr(model.transformer)
    trained = rsr.latent_steps
    vset = validation_set_for(model, samples)
    curve = []
    for T in range(max_steps + 1):
        rsr.set_latent_steps(T)
        curve.append(validation_loss(model, vset))
    rsr.set_latent_steps(trained)
    out = probe_rsr(model, vset).summary()
    out.pop("probe")
    return {"trained_T": trained, "val_loss_by_T": curve, **out}


def _fmt(x, spec=".3f"):
    if x is None:
        return "-"
    if isinstance(x, list):
        return "/".join(_fmt(v, spec) for v in x)
    return format(x, spec)


def print_run(run: str, summary: dict) -> None:
    print(f"== {run}")
    print("step  val_loss  H/lnM  H by step (nats)  usage by step          cos    |grad gate|  |B|    rec.use  effect")
    for r in summary["rows"]:
        usage = " ".join(_fmt(u, ".2f") for u in (r["probe_usage_by_step"] or []))
        print(f"{r['step']:>4}  {_fmt(r['val_loss'], '.5f')}  {_fmt(r['probe_entropy_ratio'], '.2f'):>5}  "
              f"{_fmt(r['probe_entropy_by_step']):<16}  {usage:<22} {_fmt(r['probe_update_cosine'], '+.2f'):>5}  "
              f"{_fmt(r['grad_norm_gates'], '.2e'):>11}  {_fmt(r['probe_b_norm'], '.3f')}  "
              f"{_fmt(r['recursion_use'], '.4f')}   {_fmt(r['adapter_effect'], '.4f')}")
    if summary["verdict"]:
        print(f"verdict: routing {summary['verdict']['routing']}; recursion {summary['verdict']['recursion']}")


def runs_table(summaries: dict) -> str:
    """Markdown, one row per `--run` summary: validation loss at the first and last record, its lowest
    value, and the last record's instruments and verdict."""
    def fmt(x, spec):
        return format(x, spec) if isinstance(x, (int, float)) else "-"

    lines = ["| run | val_loss (first -> last) | lowest (step) | H / ln M | expert cosine | recursion use | "
             "adapter effect | verdict |", "|---|---|---|---|---|---|---|---|"]
    for run, summary in summaries.items():
        rows = summary.get("rows")
        if not rows:
            continue
        last, best = rows[-1], min(rows, key=lambda r: r["val_loss"])
        v = summary["verdict"]
        lines.append(f"| {Path(run).name} | {rows[0]['val_loss']:.5f} -> {last['val_loss']:.5f} | "
                     f"{best['val_loss']:.5f} ({best['step']}) | {fmt(last.get('probe_entropy_ratio'), '.2f')} | "
                     f"{fmt(last.get('probe_update_cosine'), '+.2f')} | {fmt(last.get('recursion_use'), '.4f')} | "
                     f"{fmt(last.get('adapter_effect'), '.4f')} | "
                     + (f"{v['routing']}; recursion {v['recursion']} |" if v else "- |"))
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("adapters", nargs="*", help="RSR adapter folders")
    parser.add_argument("--run", nargs="+", default=[], help="fine-tune run folders (metrics.jsonl with validate_every)")
    parser.add_argument("--probe", nargs="+", default=[], help="RSR adapter folders to load and measure now")
    parser.add_argument("--base", default="shapes-base", help="the base model of --probe adapters")
    parser.add_argument("--max-steps", type=int, default=4, help="--probe: validation loss for T = 0..this")
    parser.add_argument("--out", default=None, help="also write everything printed as JSON here")
    parser.add_argument("--table", default=None, metavar="JSON", help="print the --run table of an --out JSON and exit")
    args = parser.parse_args(argv)
    if args.table:
        import json

        print(runs_table(json.loads(Path(args.table).read_text())))
        return {}
    out = {}
    for adapter in args.probe:
        out[adapter] = probe_adapter(adapter, args.base, args.max_steps)
        r = out[adapter]
        print(f"== {adapter} (trained T = {r['trained_T']})\n  val_loss by T = 0..{args.max_steps}: "
              + " ".join(f"{v:.5f}" for v in r["val_loss_by_T"])
              + f"\n  entropy/lnM {_fmt(r['probe_entropy_ratio'], '.2f')}, cosine {_fmt(r['probe_update_cosine'], '+.2f')}, "
              f"recursion use {r['recursion_use']:.4f}, adapter effect {r['adapter_effect']:.4f}, "
              f"verdict {verdict(r)}")
    for run in args.run:
        out[run] = summarise_run(run)
        print_run(run, out[run])
    if args.run:
        print(runs_table({r: out[r] for r in args.run}))
    for path in args.adapters:
        out[path] = inspect(path)
        for layer, row in out[path]["layers"].items():
            norms = ", ".join(f"{n:.3f}" for n in row["expert_update_norms"])
            cos = ", ".join(f"{c:+.3f}" for c in row["expert_update_cosines"])
            print(f"{path} layer {layer}: |dW_m| {norms}; cosine between experts {cos}; "
                  f"|gate out| {row['gate_out_norm']:.3f}")
    if args.out:
        from thinkpix.files import portable, write_json

        write_json(args.out, portable(out))
    return out


if __name__ == "__main__":
    main()
