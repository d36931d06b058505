"""Tiny models for the web page's tests, built in seconds: an RSR adapter on the bundled base (3 fine-tuning
steps, then seeded noise on its expert B and gate output weights so its routing and its images visibly
depend on T), and an untrained-looking tiny lake model with RSR trained in (4 steps)."""

from pathlib import Path


def rsr_adapter(out: Path, seed: int = 0) -> Path:
    import json
    import shutil

    import torch
    from safetensors import safe_open
    from safetensors.torch import save_file

    from thinkpix.cli import main
    from thinkpix.files import sha256_file, write_manifest

    run = out / "run"
    assert main(["finetune", "steps=3", "batch_size=4", "ckpt_every=3", "log_every=1", "threads=1",
                 "--rsr", "layers=2,3,experts=3,latent_steps=2,rank=4", "--output_dir", str(run)]) == 0
    adapter = out / "rsr-demo"
    shutil.copytree(run / "adapter", adapter)
    weights = adapter / "rsr_adapter.safetensors"
    with safe_open(str(weights), "pt") as f:
        meta, tensors = f.metadata(), {k: f.get_tensor(k) for k in f.keys()}
    g = torch.Generator().manual_seed(seed)
    for k, v in tensors.items():  # experts' B (zero-started) and the gates' last layer (zero-started)
        if k.endswith(".B") or k.endswith("out.weight"):
            tensors[k] = v + torch.randn(v.shape, generator=g) * (0.05 if k.endswith(".B") else 0.5)
    save_file(tensors, str(weights), metadata=meta)
    config = adapter / "rsr_config.json"
    record = json.loads(config.read_text())
    record["sha256"] = sha256_file(weights)
    config.write_text(json.dumps(record))
    write_manifest(adapter)
    return adapter


def lake_model(out: Path) -> Path:
    from thinkpix.worlds.lake.config import lake_config
    from thinkpix.worlds.lake.training import build_lake_objective
    from thinkpix.training.loop import Trainer

    cfg = lake_config(None, ["model.size=tiny", "steps=4", "batch_size=4", "log_every=2", "ckpt_every=4",
                             "sample_every=1000", "optim.warmup_steps=2", "threads=1", f"out_dir={out / 'lake'}",
                             "lake.rsr=layers=0,1,experts=2,latent_steps=3,rank=2,random_depth=true"])
    trainer = Trainer(cfg, build_lake_objective(cfg))
    trainer.fit()
    return trainer.export(out / "lake" / "final")
