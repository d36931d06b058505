"""`finetune --dataset_name` (diffusers' spelling of `--data`): a local folder, or a hub id of a dataset
repository already in the local Hugging Face cache (its parquet files); nothing is downloaded."""

from pathlib import Path

import pytest

from thinkpix.cli import build_parser, main
from thinkpix.errors import ThinkpixError
from thinkpix.training.datasets import load_captioned

REPO = "someone/tiny-shapes"


@pytest.fixture
def hub_cache(tmp_path, monkeypatch):
    """A hub cache holding the dataset repository REPO (one parquet shard of 3 captioned images)."""
    import datasets
    import huggingface_hub.constants as constants
    from PIL import Image

    cache = tmp_path / "hub"
    monkeypatch.setattr(constants, "HF_HUB_CACHE", str(cache))
    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    repo, revision = cache / "datasets--someone--tiny-shapes", "0" * 40
    shard = repo / "snapshots" / revision / "data" / "train-00000-of-00001.parquet"
    shard.parent.mkdir(parents=True)
    (repo / "refs").mkdir()
    (repo / "refs" / "main").write_text(revision)
    images = [Image.new("RGB", (32, 32), colour) for colour in ((255, 0, 0), (0, 255, 0), (0, 0, 255))]
    rows = {"image": images, "text": ["a red square", "a green square", "a blue square"]}
    datasets.Dataset.from_dict(rows).cast_column("image", datasets.Image()).to_parquet(str(shard))
    return cache


def test_a_cached_hub_dataset_loads_by_its_id(hub_cache):
    ds = load_captioned(REPO, "text", "image")
    assert len(ds) == 3 and ds[1]["text"] == "a green square" and ds[2]["image"].size == (32, 32)


def test_a_hub_id_not_in_the_cache_is_one_line_naming_it(hub_cache):
    with pytest.raises(ThinkpixError, match="someone/missing: not a folder, and no dataset repository"):
        load_captioned("someone/missing")
    with pytest.raises(ThinkpixError, match="nor a hub id"):
        load_captioned("no/such/folder")


def test_dataset_name_is_diffusers_spelling_of_data(hub_cache, tmp_path, capsys):
    args = build_parser().parse_args(["finetune", "--pretrained", "shapes-base", "--dataset_name", REPO])
    assert args.data == REPO
    out = tmp_path / "run"
    code = main(["finetune", "--pretrained", "shapes-base", "--rsr", "layers=0", "--dataset_name", "someone/missing",
                 "--output_dir", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and len(err.strip().splitlines()) == 1 and "someone/missing" in err, err
    assert not Path(out).exists()
