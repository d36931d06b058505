"""A run folder records the request that made it; resuming it with another request (another base,
data, resolution, method or RSR config) is refused, listing the differences and the two ways out,
and leaves the folder as it was. The same request resumes, also from a moved base folder."""

import json
import shutil
from pathlib import Path

import pytest
from tiny_pipelines import imagefolder, save_pipeline

from thinkpix.cli import main

ROOT = Path(__file__).resolve().parents[1]
TINY = str(ROOT / "configs" / "tiny_pixel.yaml")
RSR = "layers=0,1,experts=2,latent_steps=2,rank=2"
RUN = ["steps=2", "batch_size=4", "ckpt_every=2", "log_every=1", "threads=1"]


def snapshot(folder: Path) -> dict:
    return {p.relative_to(folder): p.read_bytes() for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def bases(tmp_path_factory):
    """Two tiny bases of the same architecture, different weights (seeds 0 and 1)."""
    out = tmp_path_factory.mktemp("bases")
    for seed in (0, 1):
        assert main(["train", TINY, f"out_dir={out / str(seed)}", "steps=2", "ckpt_every=2", "batch_size=4",
                     "threads=1", f"seed={seed}"]) == 0
    return out / "0" / "final", out / "1" / "final"


@pytest.fixture(scope="module")
def run(bases, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "ft"
    assert main(["finetune", "--pretrained", str(bases[0]), "--rsr", RSR, "--output_dir", str(out), *RUN]) == 0
    return out


def finetune(base, out, *extra, rsr=RSR):
    return main(["finetune", "--pretrained", str(base), "--rsr", rsr, "--output_dir", str(out), *RUN, *extra])


@pytest.mark.parametrize("change", ["base", "rsr", "method", "seed", "lr"])
def test_resume_with_another_request_is_refused_listing_the_difference(bases, run, tmp_path, capsys, change):
    folder = tmp_path / "ft"
    shutil.copytree(run, folder)
    before = snapshot(folder)
    args = {"base": dict(base=bases[1]), "rsr": dict(rsr=RSR.replace("rank=2", "rank=3")),
            "method": dict(extra=("--method", "lora")), "seed": dict(extra=("seed=7",)),
            "lr": dict(extra=("optim.lr=0.5",))}[change]
    assert finetune(args.get("base", bases[0]), folder, *args.get("extra", ()), "steps=4",
                    rsr=args.get("rsr", RSR)) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and "Traceback" not in err
    key = {"base": "finetune.base", "rsr": "finetune.rsr", "method": "finetune.method", "seed": "seed",
           "lr": "optim.lr"}[change]
    assert "holds a run made with another request" in err and f"{key}: the run's" in err, err
    assert "--output_dir NEW" in err and "--overwrite" in err
    if change == "base":
        assert str(bases[0]) in err and str(bases[1]) in err  # both bases named
    assert snapshot(folder) == before  # nothing written, nothing removed
    # the two ways out: another folder, or --overwrite starting this one over
    assert finetune(args.get("base", bases[0]), tmp_path / "new", *args.get("extra", ()), rsr=args.get("rsr", RSR)) == 0
    if change == "base":
        assert finetune(bases[1], folder, "--overwrite") == 0
        assert json.loads((folder / "run_request.json").read_text())["names"]["finetune.base"] == str(bases[1])


def test_same_request_resumes_also_from_a_moved_base_and_with_more_steps(bases, run, tmp_path, capsys):
    moved = tmp_path / "moved_base"
    shutil.copytree(bases[0], moved)  # same weights, another path: the same base
    folder = tmp_path / "ft"
    shutil.copytree(run, folder)
    assert finetune(moved, folder, "steps=4", "log_every=2") == 0  # steps and logging are not the request
    assert "resumed from step 2" in capsys.readouterr().out
    state = json.loads((folder / "checkpoints" / "step_0000004" / "state.json").read_text())
    assert state["request"]["fields"]["finetune.base"].startswith("sealed sha256:")


def test_a_run_that_crashed_before_its_first_checkpoint_is_checked_too(bases, run, tmp_path, capsys):
    folder = tmp_path / "ft"
    shutil.copytree(run, folder)
    shutil.rmtree(folder / "checkpoints")  # only run_request.json and metrics left
    assert finetune(bases[1], folder) == 2
    assert "run_request.json: finetune.base" in capsys.readouterr().err


def test_resume_from_and_overwrite_contradict(bases, run, tmp_path, capsys):
    assert finetune(bases[0], tmp_path / "x", "--overwrite", "--resume_from_checkpoint",
                    str(run / "checkpoints" / "step_0000002")) == 2
    assert "contradict" in capsys.readouterr().err
    assert not (tmp_path / "x").exists()


def test_pipeline_finetune_resumed_with_another_resolution_or_data_is_refused(tmp_path, capsys):
    pipe = save_pipeline("sd3", tmp_path / "sd3")
    data = imagefolder(tmp_path / "images", n=4)
    other = imagefolder(tmp_path / "other", n=4, seed=1)

    def finetune_pipe(*extra):
        return main(["finetune", "--pretrained", str(pipe), "--data", str(data), "--resolution", "32", "--rsr", RSR,
                     "--max_train_steps", "2", "--train_batch_size", "2", "--checkpointing_steps", "2",
                     "--max_sequence_length", "16", "--output_dir", str(tmp_path / "run"), *extra])

    assert finetune_pipe() == 0
    before = snapshot(tmp_path / "run")
    for extra, key in ((("--resolution", "64"), "resolution"), (("--data", str(other)), "data"),
                       (("--random_flip",), "random_flip")):
        assert finetune_pipe(*extra, "--max_train_steps", "3") == 2
        err = capsys.readouterr().err
        assert f"{key}: the run's" in err and "--output_dir NEW" in err, err
        assert snapshot(tmp_path / "run") == before
    assert finetune_pipe("--max_train_steps", "3", "--validation_steps", "3") == 0  # not the request: resumes
    assert "resumed from step 2" in capsys.readouterr().out
