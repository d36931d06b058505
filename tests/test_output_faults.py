"""Outputs under faults: a symbolic link inside an output folder is never written or deleted through,
a full disk (a file-size limit, RLIMIT_FSIZE, in a child process) ends in one line naming the file with
no temporary file left, and memory that a command asks for is checked before it is allocated."""

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from thinkpix.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")
PROMPTS = "".join((ROOT / "data" / "eval" / "geneval.jsonl").read_text().splitlines(True)[:2])


@pytest.fixture(scope="module")
def box(tmp_path_factory):
    box = tmp_path_factory.mktemp("faults")
    assert main(["train", TINY, f"out_dir={box / 'run'}", "steps=1", "ckpt_every=1", "batch_size=2",
                 "threads=1"]) == 0
    (box / "good.jsonl").write_text(PROMPTS)
    return box


def one_line(capsys, *words):
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err, err
    assert all(w in err for w in words), err
    return err


def tree(root: Path) -> dict:
    return {p.relative_to(root).as_posix(): (p.is_symlink(), p.read_bytes() if p.is_file() else None)
            for p in sorted(root.rglob("*"))}


def test_a_symlinked_prompt_folder_is_not_written_through(box, tmp_path, capsys):
    sample = ["sample", "--prompts", str(box / "good.jsonl"), "--model", str(box / "run" / "final"), "--steps", "1",
              "--images_per_prompt", "1", "--out", str(tmp_path / "s")]
    assert main(sample) == 0
    outside = tmp_path / "outside"  # the user's own folder, linked in place of an unfinished prompt folder
    shutil.copytree(tmp_path / "s" / "00000", outside)
    (outside / "metadata.jsonl").unlink()
    shutil.rmtree(tmp_path / "s" / "00000")
    (tmp_path / "s" / "00000").symlink_to(outside)
    before = tree(outside)
    capsys.readouterr()
    assert main(sample) == 2
    one_line(capsys, "symbolic link", "00000")
    assert tree(outside) == before


def test_world_render_overwrite_refuses_a_symlinked_folder_before_deleting_anything(box, tmp_path, capsys):
    render = ["world", "render", "--prompts", str(box / "good.jsonl"), "--out", str(tmp_path / "w"),
              "--images_per_prompt", "1"]
    assert main(render) == 0
    outside = tmp_path / "outside"
    shutil.move(tmp_path / "w" / "00001", outside)
    (tmp_path / "w" / "00001").symlink_to(outside)
    before_out, before_w = tree(outside), tree(tmp_path / "w")
    capsys.readouterr()
    assert main([*render, "--overwrite"]) == 2
    one_line(capsys, "symbolic link")
    assert tree(outside) == before_out and tree(tmp_path / "w") == before_w  # nothing deleted, in or out


@pytest.mark.parametrize("command", ["generate", "world"])
def test_an_output_file_that_is_a_symlink_is_refused_even_with_overwrite(box, tmp_path, capsys, command):
    mine = tmp_path / "mine.txt"
    mine.write_text("the user's file\n")
    link = tmp_path / "out.png"
    link.symlink_to(mine)
    argv = (["generate", "x", "--model", str(box / "run" / "final"), "--steps", "1", "-n", "1"] if command == "generate"
            else ["world", "prompts", "--per_task", "1"])
    assert main([*argv, "--out", str(link), "--overwrite"]) == 2
    one_line(capsys, "symbolic link")
    assert mine.read_text() == "the user's file\n" and link.is_symlink()


# One child process runs every case (importing torch once): a full disk is a file-size limit (RLIMIT_FSIZE,
# the soft limit, lifted between cases) and SIGXFSZ ignored, so a write past it fails with EFBIG.
LIMITED = """
import contextlib, io, json, os, resource, signal, sys
from thinkpix.cli import main
signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
results = {}
for name, (cwd, limit, argv) in json.loads(sys.argv[1]).items():
    os.chdir(cwd)
    err = io.StringIO()
    resource.setrlimit(resource.RLIMIT_FSIZE, (limit, resource.RLIM_INFINITY))
    with contextlib.redirect_stderr(err):
        code = main(argv)
    resource.setrlimit(resource.RLIMIT_FSIZE, (resource.RLIM_INFINITY, resource.RLIM_INFINITY))
    results[name] = [code, err.getvalue()]
print(json.dumps(results))
"""


def disk_full_cases(box) -> dict:
    """what -> (argv, file-size limit in bytes, the file the error must name)."""
    model = str(box / "run" / "final")
    return {
        "train": (["train", TINY, "out_dir=out", "steps=1", "ckpt_every=1", "batch_size=2", "threads=1"], 20_000,
                  "checkpoints/step_0000001"),
        "finetune": (["finetune", "--pretrained", model, "--rsr", "layers=0,experts=2,latent_steps=1,rank=1",
                      "--output_dir", "out", "steps=1", "batch_size=2", "ckpt_every=1", "threads=1"], 4_000,
                     "checkpoints/step_0000001"),
        "generate": (["generate", "x", "--model", model, "--steps", "1", "-n", "4", "--upscale", "16", "--out",
                      "out/grid.png"], 1_000, "grid.png"),
        "sample": (["sample", "--prompts", str(box / "good.jsonl"), "--model", model, "--steps", "1",
                    "--images_per_prompt", "1", "--out", "out"], 100, "sample_run.json"),
    }


@pytest.fixture(scope="module")
def disk_full(box, tmp_path_factory):
    """what -> (its folder, exit status, stderr) of every case, run under its limit in one child process."""
    cases, folders = {}, {}
    for what, (argv, limit, _) in disk_full_cases(box).items():
        folders[what] = tmp_path_factory.mktemp(f"full_{what}")
        (folders[what] / "out").mkdir()
        cases[what] = (str(folders[what]), limit, argv)
    env = dict(os.environ, PYTHONPATH=str(ROOT / "src"))
    done = subprocess.run([sys.executable, "-c", LIMITED, json.dumps(cases)], env=env, capture_output=True,
                          text=True, timeout=900)
    assert done.returncode == 0, done.stderr[-3000:]
    results = json.loads(done.stdout.strip().splitlines()[-1])
    return {what: (folders[what], *results[what]) for what in cases}


@pytest.mark.parametrize("what", ["train", "finetune", "generate", "sample"])
def test_disk_full_is_one_line_naming_the_file_and_leaves_no_temporary_file(box, disk_full, what):
    folder, code, stderr = disk_full[what]
    names = disk_full_cases(box)[what][2]
    assert code == 2, stderr
    last = stderr.strip().splitlines()
    assert "Traceback" not in stderr and last[-1].startswith(f"thinkpix {what}: error:"), stderr
    assert names in last[-1] and "could not be written" in last[-1], last[-1]
    assert [p for p in (folder / "out").rglob("*") if "tmp" in p.name] == []  # no temporary file or folder left


def test_memory_asked_for_is_checked_before_allocating(box, tmp_path, capsys, monkeypatch):
    import thinkpix.validation as validation
    from thinkpix.models.bundle import ImageBundle

    monkeypatch.setattr(validation, "available_memory", lambda: 8 * 2**30)  # as on a small machine
    monkeypatch.setattr(ImageBundle, "load", classmethod(lambda cls, path: pytest.fail("loaded the model")))
    out = tmp_path / "big.png"
    assert main(["generate", "x", "--model", str(box / "run" / "final"), "-n", "4096", "--upscale", "64", "--out",
                 str(out)]) == 2
    err = one_line(capsys, "-n 4096 --upscale 64", "GiB")
    needed = float(err.split("needs ")[1].split(" GiB")[0])
    assert needed > 8 and not out.exists()
