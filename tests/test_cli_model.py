"""CLI smoke tests of train, generate, sample (+ evaluate), finetune on a tiny model."""

import json
from pathlib import Path

import pytest
from PIL import Image

from thinkpix.cli import main

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def tiny_model(tmp_path_factory):
    out = tmp_path_factory.mktemp("tiny")
    rc = main(["train", str(ROOT / "configs" / "tiny_pixel.yaml"), f"out_dir={out}", "steps=4", "ckpt_every=2"])
    assert rc == 0
    assert (out / "final" / "thinkpix.json").exists()
    return out / "final"


def test_train_resumes_and_writes_metrics(tiny_model, capsys):
    run = tiny_model.parent
    rc = main(["train", str(ROOT / "configs" / "tiny_pixel.yaml"), f"out_dir={run}", "steps=6", "ckpt_every=2"])
    assert rc == 0
    assert "resumed from step 4" in capsys.readouterr().out
    steps = [json.loads(line)["step"] for line in open(run / "metrics.jsonl")]
    assert steps[-1] == 6


def test_generate_writes_a_grid(tiny_model, tmp_path, capsys):
    out = tmp_path / "grid.png"
    rc = main(["generate", "a photo of two red circles", "-n", "3", "--seed", "0", "--model", str(tiny_model),
               "--steps", "3", "--out", str(out), "--upscale", "1"])
    assert rc == 0 and str(out) in capsys.readouterr().out
    assert Image.open(out).size == (3 * 32 + 4 * 2, 32 + 2 * 2)


def test_sample_writes_geneval_layout_that_evaluate_reads(tiny_model, tmp_path, capsys):
    out = tmp_path / "samples"
    rc = main(["sample", "--prompts", str(ROOT / "data" / "eval" / "geneval.jsonl"), "--limit", "3",
               "--images-per-prompt", "2", "--model", str(tiny_model), "--steps", "2", "--out", str(out)])
    assert rc == 0
    assert sorted(p.name for p in out.iterdir()) == ["00000", "00001", "00002"]
    assert sorted(p.name for p in (out / "00001" / "samples").iterdir()) == ["0000.png", "0001.png"]
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    summary = json.loads(capsys.readouterr().out)
    assert 0.0 <= summary["overall"] <= 1.0


@pytest.mark.parametrize(
    "argv, message",
    [
        (["generate", "x", "--model", "/no/such/model"], "no bundled model"),
        (["generate", "x", "-n", "0"], "-n must be >= 1"),
        (["sample", "--prompts", "/no/such.jsonl", "--out", "o"], "prompt file not found"),
        (["train", "/no/such.yaml"], "config file not found"),
    ],
)
def test_bad_input_gives_one_line_error(argv, message, capsys):
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert message in err and len(err.splitlines()) == 1


@pytest.fixture(scope="module")
def tiny_adapters(tiny_model, tmp_path_factory):
    out = tmp_path_factory.mktemp("ft")
    common = ["steps=3", "batch_size=4", "ckpt_every=3", "log_every=1", "--base", str(tiny_model),
              "--rsr", "layers=0,1,experts=2,steps=2,rank=2"]
    assert main(["finetune", *common, "--out", str(out / "rsr")]) == 0
    assert main(["finetune", *common, "--method", "lora", "--out", str(out / "lora")]) == 0
    return out / "rsr" / "adapter", out / "lora" / "adapter"


def test_finetune_trains_only_the_adapter(tiny_adapters):
    rsr, lora = tiny_adapters
    assert (rsr / "rsr_adapter.safetensors").exists() and (lora / "lora_adapter.safetensors").exists()
    rsr_n = json.loads((rsr / "rsr_config.json").read_text())["num_parameters"]
    lora_n = json.loads((lora / "lora_config.json").read_text())["num_parameters"]
    assert 0.5 * rsr_n <= lora_n <= 1.5 * rsr_n  # parameter-matched baseline
    metrics = [json.loads(x) for x in open(rsr.parent / "metrics.jsonl")]
    assert "routing_entropy" in metrics[-1] and len(metrics[-1]["expert_usage"]) == 2


def test_generate_with_adapter_any_think_steps_and_trace(tiny_model, tiny_adapters, tmp_path):
    from safetensors import safe_open

    rsr, lora = tiny_adapters
    base = ["generate", "a photo of a red circle", "-n", "2", "--model", str(tiny_model), "--steps", "2"]
    for t in range(4):
        assert main([*base, "--adapter", str(rsr), "--think-steps", str(t), "--out", str(tmp_path / f"t{t}.png")]) == 0
    # zero think steps is the base model exactly
    assert main([*base, "--out", str(tmp_path / "base.png")]) == 0
    assert (Image.open(tmp_path / "t0.png").tobytes() == Image.open(tmp_path / "base.png").tobytes())
    trace = tmp_path / "trace.safetensors"
    assert main([*base, "--adapter", str(rsr), "--think-steps", "3", "--trace", str(trace),
                 "--out", str(tmp_path / "x.png")]) == 0
    with safe_open(str(trace), "pt") as f:
        routing = f.get_tensor("routing")
        layers = json.loads(f.metadata()["layers"])
    # (forwards = sampler steps, layers, latent steps, batch (cond + uncond), tokens, top-k)
    assert routing.shape == (2, 2, 3, 4, 64, 1) and len(layers) == 2
    assert int(routing.min()) >= 0 and int(routing.max()) <= 1
    assert main([*base, "--adapter", str(lora), "--out", str(tmp_path / "lora.png")]) == 0
    assert main([*base, "--adapter", str(lora), "--think-steps", "3", "--out", str(tmp_path / "l.png")]) == 2
