"""Weights are what they claim: a safetensors header edited from F32 to I32 and resealed, and a resealed
folder whose config disagrees with its weights, are refused in one line before diffusers loads anything
(thinkpix model folders and diffusers pipeline folders alike)."""

import json
import shutil
import struct
from pathlib import Path

import pytest

from thinkpix.cli import main
from thinkpix.files import write_manifest
from tiny_pipelines import save_pipeline

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("weights") / "run"
    assert main(["train", TINY, f"out_dir={out}", "steps=1", "ckpt_every=1", "batch_size=2", "threads=1"]) == 0
    return out / "final"


def retype_first_tensor(file: Path, to: str = "I32") -> str:
    """Edit the header of a safetensors file: its first F32 tensor becomes `to` (same width, so every
    offset stays valid and the file still parses). -> the tensor's name."""
    data = bytearray(file.read_bytes())
    (n,) = struct.unpack("<Q", data[:8])
    header = json.loads(data[8:8 + n])
    name = next(k for k, v in header.items() if k != "__metadata__" and v["dtype"] == "F32")
    header[name]["dtype"] = to
    text = json.dumps(header, separators=(",", ":")).encode()
    text += b" " * (n - len(text))  # the same header length
    assert len(text) == n
    file.write_bytes(bytes(data[:8]) + text + bytes(data[8 + n:]))
    return name


def one_line(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


def test_a_tampered_dtype_is_refused_naming_the_tensor(model, tmp_path, capsys):
    bad = shutil.copytree(model, tmp_path / "bad")
    name = retype_first_tensor(bad / "transformer" / "diffusion_pytorch_model.safetensors")
    write_manifest(bad)  # resealed: the checksums agree, the header lies
    assert main(["generate", "x", "--model", str(bad), "--steps", "1", "-n", "1", "--out",
                 str(tmp_path / "g.png")]) == 2
    one_line(capsys, "I32", name)
    assert not (tmp_path / "g.png").exists()


def test_a_config_that_disagrees_with_its_weights_is_refused(model, tmp_path, capsys):
    bad = shutil.copytree(model, tmp_path / "bad")
    config = bad / "transformer" / "config.json"
    record = json.loads(config.read_text())
    record["num_attention_heads"] *= 2  # wider attention than the weights hold
    config.write_text(json.dumps(record))
    write_manifest(bad)
    assert main(["generate", "x", "--model", str(bad), "--steps", "1", "-n", "1", "--out",
                 str(tmp_path / "g.png")]) == 2
    one_line(capsys, "disagree with config.json", "shape")


def test_a_pipeline_folder_with_a_tampered_dtype_is_refused(tmp_path, capsys):
    pipe = save_pipeline("sd3", tmp_path / "sd3")
    name = retype_first_tensor(pipe / "transformer" / "diffusion_pytorch_model.safetensors")
    capsys.readouterr()  # the save's progress bars
    assert main(["generate", "a red bench", "--pretrained", str(pipe), "--steps", "1", "-n", "1", "--out",
                 str(tmp_path / "g.png")]) == 2
    one_line(capsys, "I32", name)
