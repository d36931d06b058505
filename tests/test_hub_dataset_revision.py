"""A fine-tune on a cached hub dataset records the snapshot revision the cache resolves its id to: resuming after
the cache moved to another revision is refused like resuming with another data set."""

import json
import shutil
from pathlib import Path

from test_dataset_name import REPO, hub_cache  # noqa: F401 (the fixture)
from tiny_pipelines import save_pipeline

from thinkpix.cli import main
from thinkpix.training.request import data_identity, differences

RSR = "layers=0,1,experts=2,latent_steps=2,rank=2"
REVISION, NEW_REVISION = "0" * 40, "1" * 40


def move_cache_to_a_new_revision(cache: Path) -> None:
    """The cached repository gains a snapshot with other captions, and refs/main names it (as a newer download
    would leave it)."""
    import datasets

    repo = cache / "datasets--someone--tiny-shapes"
    old, new = repo / "snapshots" / REVISION, repo / "snapshots" / NEW_REVISION
    shutil.copytree(old, new)
    shard = next(new.rglob("*.parquet"))
    ds = datasets.Dataset.from_parquet(str(shard), cache_dir=str(cache.parent / "parquet_cache"))
    ds.map(lambda row: {"text": row["text"].upper()}).to_parquet(str(shard))
    (repo / "refs" / "main").write_text(NEW_REVISION)


def test_the_identity_of_a_cached_hub_dataset_is_its_revision(hub_cache):  # noqa: F811
    before = data_identity(REPO)
    assert before == f"hub dataset {REPO} revision {REVISION}"
    move_cache_to_a_new_revision(hub_cache)
    after = data_identity(REPO)
    assert after == f"hub dataset {REPO} revision {NEW_REVISION}"
    diff = differences({"fields": {"data": before}, "names": {"data": REPO}},
                       {"fields": {"data": after}, "names": {"data": REPO}})
    assert len(diff) == 1 and diff[0].startswith("data: the run's") and NEW_REVISION in diff[0]


def test_resuming_after_the_cache_moved_to_another_revision_is_refused(hub_cache, tmp_path, capsys):  # noqa: F811
    pipe = save_pipeline("sd3", tmp_path / "sd3")
    run = tmp_path / "run"

    def finetune(*extra):
        return main(["finetune", "--pretrained", str(pipe), "--dataset_name", REPO, "--resolution", "32", "--rsr", RSR,
                     "--train_batch_size", "2", "--checkpointing_steps", "2", "--max_sequence_length", "16",
                     "--output_dir", str(run), *extra])

    assert finetune("--max_train_steps", "2") == 0
    recorded = json.loads((run / "run_request.json").read_text())
    assert recorded["fields"]["data"] == f"hub dataset {REPO} revision {REVISION}"
    before = {p: p.read_bytes() for p in run.rglob("*") if p.is_file()}
    move_cache_to_a_new_revision(hub_cache)
    capsys.readouterr()
    assert finetune("--max_train_steps", "3") == 2
    err = capsys.readouterr().err.strip().splitlines()[-1]  # diffusers' loading bars come before it
    assert err.startswith("thinkpix finetune: error: ") and "Traceback" not in err, err
    assert "another request" in err and "data: the run's" in err, err
    assert REVISION in err and NEW_REVISION in err and "--output_dir NEW" in err
    assert {p: p.read_bytes() for p in run.rglob("*") if p.is_file()} == before  # nothing written
