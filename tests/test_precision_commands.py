"""`--precision` on the commands that fine-tune and on the lake world's trainer: every setting runs, the
adapter's trainable weights stay fp32, a seeded run is bit-reproducible within one precision (fine-tune and
sampling), and fp32 and bf16 runs differ (autocast acted)."""

import json
from pathlib import Path

import pytest
import torch
from safetensors.torch import load_file

from thinkpix.cli import main

ROOT = Path(__file__).resolve().parents[1]
RSR = "layers=0,1,experts=2,latent_steps=2,rank=2"
LAKE_TINY = ["model.size=tiny", "steps=2", "batch_size=4", "log_every=1", "ckpt_every=2", "sample_every=1000",
             "optim.warmup_steps=1", "threads=1"]


@pytest.fixture(scope="module")
def tiny_base(tmp_path_factory):
    out = tmp_path_factory.mktemp("base")
    assert main(["train", str(ROOT / "configs" / "tiny_pixel.yaml"), f"out_dir={out}", "steps=2", "ckpt_every=2"]) == 0
    return out / "final"


def _finetune(base, out, setting):
    assert main(["finetune", "--pretrained", str(base), "--rsr", RSR, "--output_dir", str(out), "--precision", setting,
                 "steps=3", "batch_size=4", "ckpt_every=3", "log_every=1"]) == 0
    (weights,) = (out / "adapter").glob("*.safetensors")
    return load_file(str(weights))


@pytest.fixture(scope="module")
def adapters(tiny_base, tmp_path_factory):
    """{name: adapter tensors}: fp32, bf16 twice (same seed) and auto (resolved on this machine)."""
    out = tmp_path_factory.mktemp("ft")
    runs = {name: _finetune(tiny_base, out / name, setting)
            for name, setting in (("fp32", "fp32"), ("bf16_a", "bf16"), ("bf16_b", "bf16"), ("auto", "auto"))}
    runs["config_bf16"] = json.loads((out / "bf16_a" / "config.json").read_text())
    return runs


def test_every_precision_fine_tunes_an_adapter_with_fp32_weights(adapters):
    for name in ("fp32", "bf16_a", "auto"):
        assert adapters[name] and all(t.dtype == torch.float32 for t in adapters[name].values()), name
    assert adapters["config_bf16"]["precision"] == "bf16"  # the flag reached the trainer's config


def test_a_seeded_bf16_fine_tune_is_bit_reproducible_and_differs_from_fp32(adapters):
    a, b, fp32 = adapters["bf16_a"], adapters["bf16_b"], adapters["fp32"]
    assert a.keys() == b.keys() == fp32.keys()
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert any(not torch.equal(a[k], fp32[k]) for k in a)


@pytest.mark.parametrize("setting", ["fp32", "bf16"])
def test_sampling_is_bit_reproducible_within_one_precision(tiny_base, tmp_path, setting):
    images = []
    for name in ("a", "b"):
        out = tmp_path / f"{name}.png"
        assert main(["generate", "a red circle and a blue square", "-n", "2", "--model", str(tiny_base), "--steps", "3",
                     "--seed", "5", "--out", str(out), "--precision", setting]) == 0
        images.append(out.read_bytes())
    assert images[0] == images[1]


def test_bf16_and_fp32_sampling_differ(tiny_base, tmp_path):
    from thinkpix.models.sampler import generate_latents
    from thinkpix.models.t2i import TextToImage
    from thinkpix.precision import autocast

    model = TextToImage.load(tiny_base).eval()
    out = {}
    for setting in ("fp32", "bf16"):
        with autocast(setting):
            out[setting] = generate_latents(model, ["a red circle"] * 2, seed=0, steps=3, guidance=3.0)
    assert out["fp32"].dtype == out["bf16"].dtype == torch.float32
    assert not torch.equal(out["fp32"], out["bf16"])
    assert (out["fp32"] - out["bf16"]).abs().max() < 0.5  # close: the same model, a rounding apart


@pytest.mark.parametrize("setting", ["fp32", "bf16", "auto"])
def test_lake_train_takes_every_precision(tmp_path, setting):
    out = tmp_path / "lake"
    assert main(["lake", "train", str(ROOT / "configs" / "lake_base.yaml"), *LAKE_TINY, f"out_dir={out}",
                 f"precision={setting}"]) == 0
    assert json.loads((out / "config.json").read_text())["precision"] == setting
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert [x["step"] for x in lines if "loss" in x] == [1, 2]
    assert all(torch.isfinite(torch.tensor(x["loss"])) for x in lines if "loss" in x)
