"""What an RSR adapter learned, per RSR layer: the size of each expert's weight update
dW_m,p = A[m, :, p*r:(p+1)*r] @ B[m, p] (p = the q/k/v outputs), how alike the experts' updates are
(cosine over all outputs), and the norm of the gate's output layer (zero at initialisation: how far
routing has moved from uniform).

    python -m benchmarks.inspect_adapter runs/ft_dit_rsr/adapter [more adapters ...]
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
    record = read_checked_record(folder, CONFIG, WEIGHTS, FORMAT, "RSR adapter")
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


def main(argv: list[str] | None = None) -> dict:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("adapters", nargs="+", help="RSR adapter folders")
    args = parser.parse_args(argv)
    out = {}
    for path in args.adapters:
        out[path] = inspect(path)
        for layer, row in out[path]["layers"].items():
            norms = ", ".join(f"{n:.3f}" for n in row["expert_update_norms"])
            cos = ", ".join(f"{c:+.3f}" for c in row["expert_update_cosines"])
            print(f"{path} layer {layer}: |dW_m| {norms}; cosine between experts {cos}; "
                  f"|gate out| {row['gate_out_norm']:.3f}")
    return out


if __name__ == "__main__":
    main()
