"""Digests of the adapters that tiny seeded fine-tunes produce on each kind of base: a bundled text-to-image
base and a bundled class-conditional DiT (trainer-config runs, RSR and LoRA), a lake model (`lake finetune`),
and the flags run on a bundled base and on a diffusers SD3 pipeline. A refactoring of the fine-tune objective must leave every digest as it
was: run this before and after and compare the two files (`--compare`).

    python -m tests.tools.adapter_digests --work DIR --out before.json
    python -m tests.tools.adapter_digests --work DIR2 --out after.json --compare before.json
"""

from __future__ import annotations

import argparse
import hashlib
import json
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
RSR = "layers=0,1,experts=2,latent_steps=2,rank=2,temperature_end=1"


def tensor_digests(adapter: Path) -> dict[str, str]:
    """{tensor name: sha256 of its dtype, shape and bytes} of every safetensors file of an adapter folder."""
    from safetensors import safe_open

    out = {}
    for weights in sorted(adapter.glob("*.safetensors")):
        with safe_open(str(weights), "pt") as f:
            for key in sorted(f.keys()):
                t = f.get_tensor(key).contiguous()
                h = hashlib.sha256(f"{t.dtype}{tuple(t.shape)}".encode())
                h.update(t.view(-1).view(dtype=__import__("torch").uint8).numpy().tobytes())
                out[f"{weights.name}:{key}"] = h.hexdigest()
    return out


def runs(work: Path) -> dict[str, Path]:
    """Run every tiny fine-tune into `work`; -> {name: adapter folder}."""
    import torch

    sys.path.insert(0, str(ROOT / "tests"))
    from thinkpix.cli import main
    from tiny_pipelines import imagefolder, save_pipeline

    torch.set_num_threads(1)
    t2i, dit = work / "t2i", work / "dit"
    assert main(["train", str(ROOT / "configs" / "tiny_pixel.yaml"), f"out_dir={t2i}", "steps=2", "ckpt_every=2"]) == 0
    assert main(["train", str(ROOT / "configs" / "tiny_dit.yaml"), f"out_dir={dit}", "steps=2", "ckpt_every=2"]) == 0
    config_run = ["steps=3", "batch_size=4", "ckpt_every=3", "log_every=1", "validate_every=3",
                  "validation_samples=4", "--rsr", RSR]
    made = {}
    for name, base, extra in (("t2i_rsr", t2i, []), ("t2i_lora", t2i, ["--method", "lora"]),
                              ("t2i_rsr_pool", t2i, ["data_pool=5"]),
                              ("dit_rsr", dit, []), ("dit_lora", dit, ["--method", "lora"])):
        out = work / "runs" / name
        assert main(["finetune", "--pretrained", str(base / "final"), *config_run, *extra, "--output_dir", str(out)]) == 0
        made[name] = out / "adapter"
    lake = work / "lake"
    tiny = ["model.size=tiny", "steps=3", "batch_size=4", "log_every=1", "ckpt_every=3", "sample_every=1000",
            "optim.warmup_steps=1", "threads=1"]
    assert main(["lake", "train", str(ROOT / "configs" / "lake_base.yaml"), *tiny, f"out_dir={lake}"]) == 0
    for name, extra in (("lake_rsr", []), ("lake_lora", ["--method", "lora"])):
        out = work / "runs" / name
        assert main(["lake", "finetune", "--pretrained", str(lake / "final"), "--rsr", RSR, *extra, *tiny,
                     "--output_dir", str(out)]) == 0
        made[name] = out / "adapter"
    flags = ["--rsr", RSR, "--max_train_steps", "3", "--train_batch_size", "2", "--checkpointing_steps", "3",
             "--log_every", "1"]
    out = work / "runs" / "flags_bundled"
    assert main(["finetune", "--pretrained", str(t2i / "final"), *flags, "--output_dir", str(out)]) == 0
    made["flags_bundled"] = out / "adapter"
    pipe = save_pipeline("sd3", work / "sd3")
    data = imagefolder(work / "images", n=4)
    for name, extra in (("flags_sd3", []), ("flags_sd3_lora", ["--method", "lora"]),
                        ("flags_sd3_acc", ["--gradient_accumulation_steps", "2", "--weighting_scheme", "mode"])):
        out = work / "runs" / name
        assert main(["finetune", "--pretrained", str(pipe), "--data", str(data), "--resolution", "32",
                     "--max_sequence_length", "16", *flags, *extra, "--output_dir", str(out)]) == 0
        made[name] = out / "adapter"
    return made


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--work", type=Path, required=True, help="an empty folder for the tiny bases and runs")
    parser.add_argument("--out", type=Path, required=True)
    parser.add_argument("--compare", type=Path, default=None, help="an earlier --out to compare with")
    args = parser.parse_args()
    digests = {name: tensor_digests(adapter) for name, adapter in runs(args.work).items()}
    args.out.write_text(json.dumps(digests, indent=1, sort_keys=True) + "\n")
    if args.compare:
        before = json.loads(args.compare.read_text())
        differ = sorted(n for n in set(before) | set(digests) if before.get(n) != digests.get(n))
        print("identical" if not differ else f"differ: {differ}")
        return 1 if differ else 0
    print(f"{len(digests)} adapters, {sum(map(len, digests.values()))} tensors")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
