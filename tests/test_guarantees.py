"""The guarantees of docs/guarantees.md: reproducible weights, verified checkpoints and weights,
crash-safe resume (kill -9 in a child process), one run per folder, resumable sampling."""

import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch
from PIL import Image
from safetensors.torch import load_file

import thinkpix
from thinkpix.cli import main
from thinkpix.training.checkpoint import rotate

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")
RUN = ["steps=6", "ckpt_every=2", "log_every=1", "batch_size=4", "threads=1"]


def manifest(folder) -> dict:
    return json.loads((Path(folder) / "checksums.json").read_text())["files"]


def train(out, *extra) -> int:
    return main(["train", TINY, f"out_dir={out}", *RUN, *extra])


def checkpoint_weights(run) -> dict:
    """sha256 of the latest checkpoint's tensor files (state.json names the folder, so not it)."""
    latest = Path(run) / "checkpoints" / (Path(run) / "checkpoints" / "latest").read_text().strip()
    return {k: v for k, v in manifest(latest).items() if k.endswith(".safetensors")}


@pytest.fixture(scope="module")
def reference(tmp_path_factory):
    """An uninterrupted tiny training run, and a second one with the same config and seed."""
    out = tmp_path_factory.mktemp("ref")
    assert train(out / "a") == 0 and train(out / "b") == 0
    return out


def test_same_seed_gives_identical_weights_from_scratch(reference, tmp_path):
    a, b = reference / "a", reference / "b"
    assert manifest(a / "final") == manifest(b / "final")
    assert checkpoint_weights(a) == checkpoint_weights(b)
    assert train(tmp_path / "c", "seed=1") == 0  # the check can fail: another seed, other weights
    assert manifest(tmp_path / "c" / "final") != manifest(a / "final")


@pytest.mark.parametrize("method", ["rsr", "lora"])
def test_same_seed_gives_identical_adapters(reference, tmp_path, method):
    def finetune(out, seed=0):
        return main(["finetune", "--pretrained", str(reference / "a" / "final"), "--method", method,
                     "--rsr", "layers=0,1,experts=2,latent_steps=2,rank=2", "--output_dir", str(out), "steps=3",
                     "batch_size=4", "ckpt_every=3", "threads=1", f"seed={seed}"])

    def tensors(out):
        (weights,) = (out / "adapter").glob("*.safetensors")  # (file bytes: safetensors orders metadata freely)
        return load_file(weights)

    assert finetune(tmp_path / "x") == 0 and finetune(tmp_path / "y") == 0 and finetune(tmp_path / "z", 1) == 0
    x, y, z = (tensors(tmp_path / d) for d in "xyz")
    assert x.keys() == y.keys() and all(torch.equal(x[k], y[k]) for k in x)
    assert not all(torch.equal(x[k], z[k]) for k in x)


def run_until_paused(point: str, n: int, argv: list[str]) -> subprocess.Popen:
    """Start `thinkpix argv` in a child that pauses at `point` (tests/fault_runner.py)."""
    env = dict(os.environ, PYTHONPATH=os.pathsep.join([str(Path(thinkpix.__file__).parents[1]), str(ROOT / "tests")]))
    child = subprocess.Popen([sys.executable, str(ROOT / "tests" / "fault_runner.py"), point, str(n), *argv],
                             stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True, env=env)
    for line in child.stdout:
        if line.strip() == "PAUSED":
            return child
    child.wait()
    raise AssertionError(f"the child ended (status {child.returncode}) before pausing at {point} {n}")


def kill9(child: subprocess.Popen) -> None:
    os.kill(child.pid, signal.SIGKILL)
    assert child.wait() == -signal.SIGKILL


@pytest.mark.slow
def test_kill9_during_training_and_during_a_checkpoint_write_then_resume_equals_uninterrupted(reference, tmp_path,
                                                                                             capsys):
    run = tmp_path / "run"
    argv = ["train", TINY, f"out_dir={run}", *RUN]
    child = run_until_paused("step", 4, argv)  # inside step 4; the step-2 checkpoint is on disk
    assert train(run) == 2  # while it runs, a second run on the same folder is kept out, naming the holder
    assert f"pid={child.pid}" in capsys.readouterr().err
    kill9(child)
    child = run_until_paused("checkpoint", 1, argv)  # resumes from step 2, killed while writing step 4's
    kill9(child)
    assert (run / "checkpoints" / ".tmp_step_0000004" / "model.safetensors").is_file()
    assert not (run / "checkpoints" / "step_0000004").exists()
    assert train(run) == 0
    out = capsys.readouterr().out
    assert "resumed from step 2" in out and "stale lock" in out
    assert manifest(run / "final") == manifest(reference / "a" / "final")
    assert checkpoint_weights(run) == checkpoint_weights(reference / "a")
    steps = [json.loads(x)["step"] for x in open(run / "metrics.jsonl")]
    assert steps == list(range(1, 7))  # lines logged after the step-2 checkpoint were not kept twice


def test_corrupted_checkpoint_is_refused_and_the_previous_good_one_offered(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference / "a", run)
    ckpts = run / "checkpoints"
    assert sorted(p.name for p in ckpts.glob("step_*")) == ["step_0000004", "step_0000006"]  # keep 2, by step
    weights = ckpts / "step_0000006" / "model.safetensors"
    data = bytearray(weights.read_bytes())
    data[-5] ^= 0x01  # one flipped bit in a tensor
    weights.write_bytes(bytes(data))
    assert train(run, "steps=8") == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and f"--resume_from_checkpoint {ckpts / 'step_0000004'}" in err
    assert len(err.strip().splitlines()) == 1
    assert main(["train", TINY, f"out_dir={run}", *RUN, "steps=8", "--resume_from_checkpoint", str(ckpts / "step_0000004")]) == 0
    assert "resumed from step 4" in capsys.readouterr().out
    # an edited step count and a `latest` naming a missing folder are refused too
    state = ckpts / "step_0000008" / "state.json"
    state.write_text(state.read_text().replace('"step": 8', '"step": 9'))
    assert train(run, "steps=10") == 2 and "checksum mismatch" in capsys.readouterr().err
    (ckpts / "latest").write_text("step_0000099")
    assert train(run, "steps=10") == 2 and "not a checkpoint folder" in capsys.readouterr().err


def test_no_resume_refuses_a_run_folder_unless_overwrite(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference / "a", run)
    before = sorted(p.name for p in (run / "checkpoints").iterdir())
    assert train(run, "--no_resume") == 2
    assert "holds a run" in capsys.readouterr().err
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == before
    assert train(run, "--no_resume", "--overwrite") == 0
    assert manifest(run / "final") == manifest(reference / "a" / "final")


def test_rotation_is_by_step_number(tmp_path):
    for step in (2, 10, 4, 100000):
        (tmp_path / f"step_{step:07d}").mkdir()
    rotate(tmp_path, keep=1, current=10)
    # steps <= 10 keep the newest by number; a later step (an abandoned branch) is not touched
    assert sorted(p.name for p in tmp_path.iterdir()) == ["step_0000010", "step_0100000"]


@pytest.mark.parametrize("damage", ["flip", "truncate", "no_config", "pickle", "edit_json"])
def test_damaged_model_folder_is_refused(reference, tmp_path, capsys, damage):
    model = tmp_path / "model"
    shutil.copytree(reference / "a" / "final", model)
    weights = model / "transformer" / "diffusion_pytorch_model.safetensors"
    if damage == "flip":
        data = bytearray(weights.read_bytes())
        data[len(data) // 2] ^= 0x80
        weights.write_bytes(bytes(data))
    elif damage == "truncate":
        weights.write_bytes(weights.read_bytes()[:1000])
    elif damage == "no_config":
        (model / "transformer" / "config.json").unlink()
    elif damage == "pickle":
        (model / "transformer" / "diffusion_pytorch_model.bin").write_bytes(b"\x80\x04K\x00.")
    else:
        (model / "thinkpix.json").write_text((model / "thinkpix.json").read_text().replace('"tiny"', '"small"'))
    assert main(["generate", "a red circle", "--model", str(model), "--out", str(tmp_path / "g.png")]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    assert not (tmp_path / "g.png").exists()


@pytest.fixture(scope="module")
def adapters(reference, tmp_path_factory):
    from tiny_runs import finetune_both

    return finetune_both(reference / "a" / "final", tmp_path_factory.mktemp("adapters"))


@pytest.mark.parametrize("which", [0, 1])
def test_edited_adapter_json_is_refused(reference, adapters, tmp_path, capsys, which):
    adapter = tmp_path / "adapter"
    shutil.copytree(adapters[which], adapter)
    config = next(adapter.glob("*_config.json"))
    record = json.loads(config.read_text())
    key = "config" if which == 0 else "alpha"
    if which == 0:
        record["config"]["latent_steps"] = record["config"].get("latent_steps", 2) + 5
    else:
        record["alpha"] = 99.0
    config.write_text(json.dumps(record))
    argv = ["generate", "x", "--model", str(reference / "a" / "final"), "--adapter", str(adapter),
            "--out", str(tmp_path / "g.png")]
    assert main(argv) == 2, key
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and config.name in err


@pytest.mark.slow
def test_sample_killed_then_rerun_resumes_with_identical_images(reference, tmp_path, capsys):
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text("".join((ROOT / "data" / "eval" / "geneval.jsonl").read_text().splitlines(True)[:5]))
    argv = ["sample", "--prompts", str(prompts), "--model", str(reference / "a" / "final"), "--steps", "2",
            "--images_per_prompt", "2", "--batch_size", "2", "--threads", "1"]
    assert main([*argv, "--out", str(tmp_path / "whole")]) == 0
    part = tmp_path / "part"
    kill9(run_until_paused("image", 5, [*argv, "--out", str(part)]))  # prompts 0, 1 done, prompt 2 half done
    assert main(["evaluate", str(part)]) == 2 and "incomplete" in capsys.readouterr().err
    kept = {p: p.stat().st_mtime_ns for p in part.rglob("*") if p.is_file() and p.relative_to(part).parts[0] in ("00000", "00001")}
    assert len(kept) == 4 + 2  # two prompt folders: 2 images + metadata each
    assert main([*argv, "--out", str(part)]) == 0
    assert "(3 prompt folders generated, 2 complete ones kept)" in capsys.readouterr().out
    assert {p: p.stat().st_mtime_ns for p in kept} == kept  # no repeated work
    for image in (tmp_path / "whole").rglob("*.png"):
        twin = part / image.relative_to(tmp_path / "whole")
        assert Image.open(image).tobytes() == Image.open(twin).tobytes(), twin
    assert sorted(p.relative_to(part) for p in part.rglob("*")) == sorted(
        p.relative_to(tmp_path / "whole") for p in (tmp_path / "whole").rglob("*"))
    # the same folder with another prompt file (or model) is refused
    other = tmp_path / "other.jsonl"
    other.write_text(prompts.read_text().splitlines(True)[0])
    assert main([*argv, "--out", str(part), "--prompts", str(other)]) == 2
    assert "holds images of another run" in capsys.readouterr().err
    assert main(["evaluate", str(part), "--json"]) == 0


def test_class_names_from_a_model_folder_never_escape_the_output_folder(tmp_path):
    from types import SimpleNamespace

    from thinkpix.sampling import class_folders

    crafted = SimpleNamespace(classes=["../../evil", "/etc/passwd", "..", "red circle"])
    folders = class_folders(crafted, tmp_path)
    assert all(f.parent == tmp_path for f in folders)
    assert [f.name for f in folders] == ["00_evil", "01_etc_passwd", "02__", "03_red_circle"]


RSR_RESUME = ["--rsr", "layers=0,1,experts=2,latent_steps=3,rank=2,random_depth=true,temperature_end=1.0", "steps=6",
              "batch_size=4", "ckpt_every=2", "log_every=1", "threads=1"]


def adapter_tensors(adapter) -> dict:
    (weights,) = Path(adapter).glob("*.safetensors")
    return load_file(weights)


def assert_same_tensors(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    assert all(torch.equal(a[k], b[k]) for k in a), max(float((a[k] - b[k]).abs().max()) for k in a)


@pytest.fixture(scope="module")
def rsr_uninterrupted(reference, tmp_path_factory):
    """An uninterrupted RSR fine-tune that draws Gumbel noise, random depths and an annealed temperature."""
    run = tmp_path_factory.mktemp("rsr_whole") / "run"
    assert main(["finetune", "--pretrained", str(reference / "a" / "final"), "--output_dir", str(run), *RSR_RESUME]) == 0
    return run


def test_rsr_finetune_resumed_from_its_own_checkpoint_equals_uninterrupted(reference, rsr_uninterrupted, tmp_path,
                                                                          capsys):
    run = tmp_path / "run"
    shutil.copytree(rsr_uninterrupted, run)
    start = run / "checkpoints" / "step_0000004"
    assert main(["finetune", "--pretrained", str(reference / "a" / "final"), "--output_dir", str(run), *RSR_RESUME,
                 "--resume_from_checkpoint", str(start)]) == 0
    assert "resumed from step 4" in capsys.readouterr().out
    assert_same_tensors(adapter_tensors(run / "adapter"), adapter_tensors(rsr_uninterrupted / "adapter"))
    # the check can fail: the same run with another seed ends elsewhere
    other = tmp_path / "other"
    assert main(["finetune", "--pretrained", str(reference / "a" / "final"), "--output_dir", str(other), *RSR_RESUME,
                 "seed=5"]) == 0
    a, b = adapter_tensors(other / "adapter"), adapter_tensors(rsr_uninterrupted / "adapter")
    assert not all(torch.equal(a[k], b[k]) for k in a)


@pytest.mark.slow
def test_rsr_finetune_killed_then_resumed_equals_uninterrupted(reference, rsr_uninterrupted, tmp_path, capsys):
    run = tmp_path / "run"
    argv = ["finetune", "--pretrained", str(reference / "a" / "final"), "--output_dir", str(run), *RSR_RESUME]
    kill9(run_until_paused("step", 4, argv))  # inside step 4; the step-2 checkpoint is on disk
    assert main(argv) == 0
    assert "resumed from step 2" in capsys.readouterr().out
    assert_same_tensors(adapter_tensors(run / "adapter"), adapter_tensors(rsr_uninterrupted / "adapter"))


@pytest.mark.parametrize("which", [0, 1])
def test_adapter_survives_a_model_card_edit_but_not_a_weights_edit(reference, adapters, tmp_path, capsys, which):
    adapter = tmp_path / "adapter"
    shutil.copytree(adapters[which], adapter)
    argv = ["generate", "x", "--model", str(reference / "a" / "final"), "--adapter", str(adapter)]
    assert main([*argv, "--out", str(tmp_path / "before.png")]) == 0
    card = adapter / "README.md"
    if card.exists():
        with open(card, "a") as f:
            f.write("\nTrained for the shapes world; see our paper.\n")  # what people do to cards on the Hub
    else:
        card.write_text("# my adapter\n")  # a card added where none was
    Image.new("RGB", (8, 8)).save(adapter / "sample.png")
    (adapter / "notes").mkdir()
    (adapter / "notes" / "eval.md").write_text("scores\n")
    assert main([*argv, "--out", str(tmp_path / "after.png")]) == 0
    assert Image.open(tmp_path / "after.png").tobytes() == Image.open(tmp_path / "before.png").tobytes()
    from thinkpix.files import _main as files_cli

    assert files_cli(["verify", str(adapter)]) == 0  # `python -m thinkpix.files verify` agrees with the loader
    card.unlink()  # a removed card
    assert main([*argv, "--out", str(tmp_path / "nocard.png")]) == 0
    capsys.readouterr()
    (weights,) = adapter.glob("*.safetensors")
    data = bytearray(weights.read_bytes())
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    assert main([*argv, "--out", str(tmp_path / "edited.png")]) == 2
    err = capsys.readouterr().err
    assert "checksum mismatch" in err and weights.name in err and not (tmp_path / "edited.png").exists()
    data[-3] ^= 0x01
    weights.write_bytes(bytes(data))
    (adapter / "extra.pt").write_bytes(b"\x80\x04K\x00.")  # a pickle file is still refused
    assert main([*argv, "--out", str(tmp_path / "pickle.png")]) == 2
    assert "pickle" in capsys.readouterr().err


def test_an_unreadable_metrics_line_does_not_stop_a_resume(reference, tmp_path, capsys):
    run = tmp_path / "run"
    shutil.copytree(reference / "a", run)
    log = run / "metrics.jsonl"
    lines = log.read_text().splitlines(keepends=True)
    log.write_text("".join(lines[:3]) + "not json\n" + "".join(lines[3:]) + '{"step": 7, "loss": 1.')  # cut short
    assert train(run, "steps=8") == 0
    assert "dropped 2 unreadable line(s)" in capsys.readouterr().out
    assert [json.loads(x)["step"] for x in open(log)] == list(range(1, 9))
