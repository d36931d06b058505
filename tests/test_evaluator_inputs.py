"""What the evaluator reads: images below the world's smallest canvas refused (a 1x1 red pixel is no
circle), 16-bit grey and palette images read as what they show, transparency refused, unknown task
tags refused, and the prompt-length rule of the command line applied to prompt files too."""

import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from thinkpix.cli import main
from thinkpix.evaluation.truth_images import write_folder
from thinkpix.evaluation.runner import evaluate_folder, load_image
from thinkpix.validation import MAX_PROMPT_CHARS

ROOT = Path(__file__).resolve().parents[1]
CIRCLE = {"tag": "single_object", "prompt": "a photo of a circle", "include": [{"class": "circle", "count": 1}]}


@pytest.fixture()
def folder(tmp_path):
    """A ground-truth folder: one correct image of a circle, and the evaluator's verdict on it."""
    out = tmp_path / "gt"
    write_folder([CIRCLE], out, images_per_prompt=1, seed=0)
    _, summary = evaluate_folder(out, write=False)
    assert summary["overall"] == 1.0
    return out, out / "00000" / "samples" / "0000.png"


def test_an_image_below_the_smallest_canvas_is_refused(folder, capsys):
    out, image = folder
    Image.fromarray(np.array([[[255, 0, 0]]], dtype=np.uint8)).save(image)  # one red pixel
    assert main(["evaluate", str(out)]) == 2
    err = capsys.readouterr().err
    assert "1x1" in err and "smallest canvas" in err and len(err.strip().splitlines()) == 1


def test_16_bit_grey_reads_as_its_8_bit_twin_not_white(folder):
    _, image = folder
    grey8 = np.asarray(Image.open(image).convert("L"))  # (H, W) uint8
    Image.fromarray(grey8.astype(np.uint16) * 257).save(image)  # the same picture in 16 bits (0..65535)
    assert Image.open(image).mode.startswith("I")
    read = load_image(image, None)
    assert np.array_equal(read, np.repeat(grey8[..., None], 3, axis=-1))
    assert read.min() < 255  # not all white


def test_a_palette_image_reads_as_its_colours_and_keeps_its_verdict(folder):
    out, image = folder
    rgb = np.asarray(Image.open(image).convert("RGB"))
    Image.fromarray(rgb).convert("P", palette=Image.Palette.ADAPTIVE, colors=256).save(image)
    assert Image.open(image).mode == "P"
    assert np.array_equal(load_image(image, None), rgb)  # few colours: the adaptive palette is exact
    assert evaluate_folder(out, write=False)[1]["overall"] == 1.0


def test_transparent_pixels_are_refused(folder, capsys):
    out, image = folder
    rgba = np.asarray(Image.open(image).convert("RGBA")).copy()
    rgba[0, 0, 3] = 0
    Image.fromarray(rgba).save(image)
    assert main(["evaluate", str(out)]) == 2
    assert "transparent" in capsys.readouterr().err


def test_unknown_task_tag_is_refused(folder, capsys):
    out, _ = folder
    meta = out / "00000" / "metadata.jsonl"
    meta.write_text(json.dumps(dict(CIRCLE, tag="single_objekt")) + "\n")
    assert main(["evaluate", str(out)]) == 2
    err = capsys.readouterr().err
    assert "unknown task tag 'single_objekt'" in err and "metadata.jsonl:1" in err
    assert not (out / "summary.json").exists()


def test_prompt_length_is_the_same_rule_in_files_and_on_the_command_line(tmp_path, capsys):
    long = "a red circle " * (MAX_PROMPT_CHARS // 13 + 1)
    assert main(["generate", long, "--out", str(tmp_path / "g.png")]) == 2
    cli = capsys.readouterr().err
    prompts = tmp_path / "long.jsonl"
    prompts.write_text(json.dumps(dict(CIRCLE, prompt=long)) + "\n")
    assert main(["sample", "--prompts", str(prompts), "--out", str(tmp_path / "s"), "--steps", "1"]) == 2
    err = capsys.readouterr().err
    assert f"at most {MAX_PROMPT_CHARS}" in cli and f"at most {MAX_PROMPT_CHARS}" in err and "long.jsonl:1" in err
    assert not (tmp_path / "s").exists()
