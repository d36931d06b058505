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
