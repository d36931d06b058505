"""CLI: `thinkpix world prompts|render`, `thinkpix evaluate`, `thinkpix demo`, and one-line
errors (file and line named, exit code 2, never a traceback)."""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from thinkpix.cli import main
from thinkpix.worlds import TASKS


def run_cli(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.fixture(scope="module")
def rendered(tmp_path_factory):
    """A small GenEval-style set (3 prompts per task) rendered at 2 images per prompt."""
    root = tmp_path_factory.mktemp("cli")
    prompts, out = root / "prompts.jsonl", root / "gt"
    assert main(["world", "prompts", "--per_task", "3", "--seed", "1", "--out", str(prompts)]) == 0
    assert main(["world", "render", "--prompts", str(prompts), "--out", str(out), "--images_per_prompt", "2"]) == 0
    return prompts, out


def _copy(src: Path, dst: Path, folders: int = 2) -> Path:
    """A copy of the first `folders` prompt folders of a rendered set."""
    import shutil

    for i in range(folders):
        shutil.copytree(src / f"{i:05d}", dst / f"{i:05d}")
    return dst


def test_world_prompts_is_deterministic(tmp_path, capsys):
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    for path in (a, b):
        code, out, _ = run_cli(capsys, "world", "prompts", "--set", "dense", "--per_task", "12", "--seed", "4",
                               "--out", path)
        assert code == 0 and "12 dense prompts" in out
    assert a.read_text() == b.read_text() and len(a.read_text().splitlines()) == 12


def test_render_layout_and_evaluate_json_schema(rendered, capsys):
    prompts, out = rendered
    folders = sorted(p.name for p in out.iterdir() if p.is_dir())
    assert folders == [f"{i:05d}" for i in range(18)]
    assert sorted(p.name for p in (out / "00000" / "samples").iterdir()) == ["0000.png", "0001.png"]
    assert len((out / "00000" / "metadata.jsonl").read_text().splitlines()) == 1
    code, stdout, _ = run_cli(capsys, "evaluate", out, "--json")
    assert code == 0
    assert len(stdout.strip().splitlines()) == 1
    summary = json.loads(stdout)
    assert {"tasks", "overall", "prompts_correct"} <= set(summary)
    assert list(summary["tasks"]) == list(TASKS)
    assert all(isinstance(v, float) and 0 <= v <= 1 for v in summary["tasks"].values())
    assert summary["overall"] == 1.0 and summary["prompts_correct"] == 1.0
    rows = [json.loads(line) for line in (out / "results.jsonl").read_text().splitlines()]
    assert len(rows) == 36
    assert {"folder", "sample", "tag", "prompt", "correct", "reason"} <= set(rows[0])


def test_evaluate_table(rendered, capsys):
    code, stdout, _ = run_cli(capsys, "evaluate", rendered[1])
    assert code == 0 and "overall" in stdout and "color_attr" in stdout


def test_render_refuses_to_mix_sets(rendered, capsys):
    prompts, out = rendered
    code, _, err = run_cli(capsys, "world", "render", "--prompts", prompts, "--out", out)
    assert code == 2 and "--overwrite" in err


def _one_line_error(capsys, argv, *needles):
    code, _, err = run_cli(capsys, *argv)
    assert code == 2
    assert len(err.strip().splitlines()) == 1, err
    for needle in needles:
        assert needle in err, (needle, err)
    return err


def test_error_missing_folder(tmp_path, capsys):
    _one_line_error(capsys, ["evaluate", tmp_path / "nope"], str(tmp_path / "nope"), "not found")


def test_error_malformed_jsonl_line(tmp_path, capsys):
    bad = tmp_path / "prompts.jsonl"
    good = {"tag": "single_object", "prompt": "a photo of a circle", "include": [{"class": "circle", "count": 1}]}
    bad.write_text(json.dumps(good) + "\n"
                   "\n"
                   '{"tag": "single_object", "prompt": \n')
    argv = ["world", "render", "--prompts", bad, "--out", tmp_path / "o"]
    _one_line_error(capsys, argv, f"{bad}:3", "malformed JSON")


def test_error_malformed_metadata_in_folder(rendered, tmp_path, capsys):
    root = _copy(rendered[1], tmp_path / "set")
    (root / "00001" / "metadata.jsonl").write_text("{not json}\n")
    _one_line_error(capsys, ["evaluate", root], f"{root / '00001' / 'metadata.jsonl'}:1", "malformed JSON")


def test_error_wrong_image_size(rendered, tmp_path, capsys):
    root = _copy(rendered[1], tmp_path / "set")
    Image.new("RGB", (30, 32)).save(root / "00001" / "samples" / "0001.png")
    _one_line_error(capsys, ["evaluate", root], "0001.png", "30x32", "expected 32x32")
    _one_line_error(capsys, ["evaluate", rendered[1], "--canvas", "64"], "expected 64x64")


@pytest.mark.parametrize("field, value, needle", [("color", "teal", "unknown colour 'teal'"),
                                                   ("class", "hexagon", "unknown shape 'hexagon'")])
def test_error_unknown_colour_or_shape(rendered, tmp_path, capsys, field, value, needle):
    root = _copy(rendered[1], tmp_path / "set")
    path = root / "00001" / "metadata.jsonl"
    meta = json.loads(path.read_text())
    meta["include"][0][field] = value
    path.write_text(json.dumps(meta) + "\n")
    _one_line_error(capsys, ["evaluate", root], f"{path}:1", needle)
    prompts = tmp_path / "prompts.jsonl"
    prompts.write_text(rendered[0].read_text().splitlines()[0] + "\n" + json.dumps(meta) + "\n")
    _one_line_error(capsys, ["world", "render", "--prompts", prompts, "--out", tmp_path / "o"], f"{prompts}:2", needle)


def test_console_script_error_has_no_traceback(tmp_path):
    exe = Path(sys.executable).with_name("thinkpix")
    cmd = [str(exe)] if exe.exists() else [sys.executable, "-m", "thinkpix.cli"]
    proc = subprocess.run([*cmd, "evaluate", str(tmp_path / "missing")], capture_output=True, text=True,
                          env=os.environ | {"OMP_NUM_THREADS": "1"})
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr and len(proc.stderr.strip().splitlines()) == 1


def test_demo_renders_scores_and_writes_sheet(tmp_path, capsys):
    code, out, _ = run_cli(capsys, "demo", "--ground_truth", "--out", tmp_path / "demo", "--per_task", "1",
                           "--images_per_prompt", "2")
    assert code == 0 and "overall" in out
    assert (tmp_path / "demo" / "contact_sheet.png").is_file()
    summary = json.loads((tmp_path / "demo" / "images" / "summary.json").read_text())
    assert summary["overall"] == 1.0 and summary["images"] == 12
