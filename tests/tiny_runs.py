"""Tiny runs through the CLI that several test modules build on."""

from thinkpix.cli import main


def finetune_both(base, out):
    """RSR and the matched LoRA, 3 steps each on a tiny `base` via the CLI -> (rsr, lora) adapter folders."""
    common = ["steps=3", "batch_size=4", "ckpt_every=3", "log_every=1", "--pretrained", str(base),
              "--rsr", "layers=0,1,experts=2,latent_steps=2,rank=2"]
    assert main(["finetune", *common, "--output_dir", str(out / "rsr")]) == 0
    assert main(["finetune", *common, "--method", "lora", "--output_dir", str(out / "lora")]) == 0
    return out / "rsr" / "adapter", out / "lora" / "adapter"


def assert_parameter_matched(rsr, lora):
    """The LoRA baseline's rank is the one whose parameter count is closest to RSR's, exactly: its count is
    rank x (the sum of in + out features of its q/k/v targets), within half a rank of RSR's count."""
    import json

    rsr_n = json.loads((rsr / "rsr_config.json").read_text())["num_parameters"]
    record = json.loads((lora / "lora_config.json").read_text())
    per_rank, rest = divmod(record["num_parameters"], record["rank"])
    assert rest == 0  # a whole number of parameters per rank
    assert abs(record["rank"] * per_rank - rsr_n) <= per_rank / 2, (record["rank"], per_rank, rsr_n)
    return rsr_n, record


def perturbed(adapter, out, std=0.3, seed=0):
    """A copy of an adapter folder whose B tensors (RSR experts' B, LoRA's lora_B) get seeded noise: a
    trained-looking adapter whose effect is visible in 8-bit images after a 3-step fine-tune."""
    import json
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from thinkpix.files import sha256_file, write_manifest

    shutil.copytree(adapter, out)
    weights = next(out.glob("*.safetensors"))
    with safe_open(str(weights), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    g = torch.Generator().manual_seed(seed)
    for k, v in tensors.items():
        if k.endswith(".B") or "lora_B" in k:
            tensors[k] = v + torch.randn(v.shape, generator=g) * std
    save_file(tensors, str(weights), metadata=meta)
    config = next(p for p in out.glob("*_config.json"))
    record = json.loads(config.read_text())
    record["sha256"] = sha256_file(weights)
    config.write_text(json.dumps(record))
    write_manifest(out)  # reseal: the adapter is consistent again, only its B tensors differ
    return out
