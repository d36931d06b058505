"""Outputs never clobber: an existing file is not overwritten without --overwrite, a device node or FIFO is
never written, an --export folder holding another run's model or adapter is refused, --overwrite removes
only what a run wrote, and sampling flags that a bundled model would ignore are refused."""

import os
import stat
from pathlib import Path

import pytest

from thinkpix.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")
RUN = ["steps=2", "ckpt_every=2", "batch_size=4", "threads=1"]
RSR = ["--rsr", "layers=0,experts=2,latent_steps=1,rank=1", "steps=1", "batch_size=2", "ckpt_every=1", "threads=1"]


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    out = tmp_path_factory.mktemp("clobber") / "run"
    assert main(["train", TINY, f"out_dir={out}", *RUN]) == 0
    return out / "final"


def one_line_error(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err


@pytest.mark.parametrize("command", ["generate", "world"])
def test_an_existing_file_is_not_overwritten_without_overwrite(model, tmp_path, capsys, command):
    notes = tmp_path / "notes.txt"
    notes.write_text("my notes\n")
    argv = (["generate", "a red circle", "--model", str(model), "--steps", "1", "-n", "1", "--out", str(notes)]
            if command == "generate" else ["world", "prompts", "--per_task", "1", "--out", str(notes)])
    assert main(argv) == 2
    one_line_error(capsys, "exists", "--overwrite")
    assert notes.read_text() == "my notes\n"
    assert main([*argv, "--overwrite"]) == 0
    assert notes.read_bytes() != b"my notes\n"


def special_files(tmp_path) -> list[Path]:
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    found = [fifo]
    try:  # a twin of /dev/null where a test may make one (never the system's own)
        os.mknod(tmp_path / "null", stat.S_IFCHR | 0o666, os.makedev(1, 3))
        found.append(tmp_path / "null")
    except (PermissionError, OSError):
        pass
    return found


def test_device_nodes_and_fifos_are_never_written(model, tmp_path, capsys):
    for target in special_files(tmp_path):
        kind = target.lstat().st_mode
        for argv in (["generate", "x", "--model", str(model), "--steps", "1", "-n", "1", "--out", str(target)],
                     ["world", "prompts", "--per_task", "1", "--out", str(target)]):
            assert main([*argv, "--overwrite"]) == 2
            one_line_error(capsys, "not a regular file")
            assert target.lstat().st_mode == kind  # still the node it was, not a regular file


def test_export_onto_another_runs_model_or_adapter_is_refused(model, tmp_path, capsys):
    other = tmp_path / "other_model"
    assert main(["train", TINY, f"out_dir={tmp_path / 'other'}", *RUN, "seed=1", "--export", str(other)]) == 0
    before = {p: p.read_bytes() for p in other.rglob("*") if p.is_file()}
    capsys.readouterr()
    assert main(["train", TINY, f"out_dir={tmp_path / 'b'}", *RUN, "--export", str(other)]) == 2
    one_line_error(capsys, "--export", "did not write", "--overwrite")
    assert {p: p.read_bytes() for p in other.rglob("*") if p.is_file()} == before
    assert not (tmp_path / "b").exists()  # refused before anything trained
    # the run that wrote it may export there again (a rerun of the same command)
    assert main(["train", TINY, f"out_dir={tmp_path / 'other'}", *RUN, "seed=1", "--export", str(other)]) == 0
    adapter = tmp_path / "adapter"
    assert main(["finetune", "--pretrained", str(model), *RSR, "--output_dir", str(tmp_path / "ft1"), "--export", str(adapter)]) == 0
    weights = (adapter / "rsr_adapter.safetensors").read_bytes()
    capsys.readouterr()
    assert main(["finetune", "--pretrained", str(model), *RSR, "--output_dir", str(tmp_path / "ft2"), "--export", str(adapter)]) == 2
    one_line_error(capsys, "--export", "did not write")
    assert (adapter / "rsr_adapter.safetensors").read_bytes() == weights
    assert main(["finetune", "--pretrained", str(model), *RSR, "--output_dir", str(tmp_path / "ft2"), "--export", str(adapter),
                 "--overwrite"]) == 0  # asked for explicitly


def test_overwrite_removes_only_what_the_run_wrote(tmp_path):
    run = tmp_path / "run"
    assert main(["train", TINY, f"out_dir={run}", *RUN]) == 0
    mine = run / "checkpoints" / "my_notes.txt"
    mine.write_text("keep me\n")
    assert main(["train", TINY, f"out_dir={run}", *RUN, "--overwrite"]) == 0
    assert mine.read_text() == "keep me\n"
    assert sorted(p.name for p in (run / "checkpoints").iterdir()) == ["latest", "my_notes.txt", "step_0000002"]


@pytest.mark.parametrize("flags, words", [
    (["--resolution", "-1"], "--resolution"), (["--resolution", "100000"], "--resolution"),
    (["--resolution", "64"], "--pretrained"), (["--device", "bogus"], "--device"),
    (["--device", "cuda"], "--pretrained"), (["--dtype", "bogus"], "--dtype"), (["--dtype", "bf16"], "--pretrained"),
])
def test_sampling_flags_a_bundled_model_would_ignore_are_refused(model, tmp_path, capsys, flags, words):
    out = tmp_path / "g.png"
    try:
        code = main(["generate", "x", "--model", str(model), "--steps", "1", "-n", "1", "--out", str(out), *flags])
    except SystemExit as exc:  # a value outside a flag's choices is argparse's own one-line error
        code = exc.code
    assert code == 2
    one_line_error(capsys, words)
    assert not out.exists()
