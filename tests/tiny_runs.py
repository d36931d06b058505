"""Tiny runs through the CLI that several test modules build on."""

from thinkpix.cli import main


def finetune_both(base, out):
    """RSR and the matched LoRA, 3 steps each on a tiny `base` via the CLI -> (rsr, lora) adapter folders."""
    common = ["steps=3", "batch_size=4", "ckpt_every=3", "log_every=1", "--base", str(base),
              "--rsr", "layers=0,1,experts=2,steps=2,rank=2"]
    assert main(["finetune", *common, "--out", str(out / "rsr")]) == 0
    assert main(["finetune", *common, "--method", "lora", "--out", str(out / "lora")]) == 0
    return out / "rsr" / "adapter", out / "lora" / "adapter"
