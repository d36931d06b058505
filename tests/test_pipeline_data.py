"""Captioned image data for fine-tuning: imagefolder (jsonl and csv), saved `datasets` datasets, crops,
flips, caption dropout, deterministic sample order."""

import numpy as np
import pytest
import torch
from PIL import Image
from tiny_pipelines import imagefolder

from thinkpix.errors import ThinkpixError
from thinkpix.training.datasets import CaptionedImages, ImageOptions, load_captioned, transform


@pytest.mark.parametrize("csv", [False, True])
def test_imagefolder_with_jsonl_or_csv_metadata(tmp_path, csv):
    ds = load_captioned(imagefolder(tmp_path / "d", n=6, csv=csv), "text")
    assert len(ds) == 6 and {"image", "text", "label"} <= set(ds.column_names)
    assert sorted(ds["text"]) == sorted(f"a photo of a {l} number {i}" for i, l in
                                        enumerate(["red circle", "blue square", "bench", "green triangle"] * 2)
                                        if i < 6)


def test_saved_dataset_and_missing_columns(tmp_path):
    import datasets

    ds = datasets.Dataset.from_dict({"image": [Image.new("RGB", (10, 12), (255, 0, 0))] * 3, "caption": ["a", "b", "c"]},
                                    features=datasets.Features({"image": datasets.Image(), "caption": datasets.Value("string")}))
    datasets.DatasetDict({"train": ds}).save_to_disk(str(tmp_path / "saved"))
    loaded = load_captioned(tmp_path / "saved", "caption")
    assert loaded["caption"] == ["a", "b", "c"]
    with pytest.raises(ThinkpixError, match="no column 'text'.*columns: image, caption"):
        load_captioned(tmp_path / "saved", "text")
    (tmp_path / "empty").mkdir()
    with pytest.raises(ThinkpixError, match="no images found"):
        load_captioned(tmp_path / "empty")


def test_transform_crops_flips_and_scales():
    img = np.zeros((20, 40, 3), np.uint8)
    img[:, :20] = 255  # left half white
    pil = Image.fromarray(img)
    centre = transform(pil, ImageOptions(resolution=10, center_crop=True), np.random.default_rng(0))
    assert centre.shape == (3, 10, 10) and centre.min() >= -1 and centre.max() <= 1
    assert centre[:, :, 0].mean() > 0.9 and centre[:, :, -1].mean() < -0.9  # centre crop straddles the edge
    flips = [transform(pil, ImageOptions(10, True, True), np.random.default_rng(s))[0, 0, 0].item() for s in range(20)]
    assert min(flips) < 0 < max(flips)  # flipped sometimes, not always
    crops = {transform(pil, ImageOptions(10, False), np.random.default_rng(s)).sum().item() for s in range(20)}
    assert len(crops) > 3  # random crops move


def test_samples_are_deterministic_epochwise_and_drop_captions(tmp_path):
    ds = load_captioned(imagefolder(tmp_path / "d", n=10), "text")
    data = CaptionedImages(ds, ImageOptions(32, caption_dropout=0.5), seed=1)
    rows = [data.pick(s, j, 5)[0] for s in range(2) for j in range(5)]
    assert sorted(rows) == list(range(10))  # one epoch: every image once
    again = CaptionedImages(ds, ImageOptions(32, caption_dropout=0.5), seed=1)
    assert [again.pick(s, j, 5) for s in range(4) for j in range(5)] == \
        [data.pick(s, j, 5) for s in range(4) for j in range(5)]
    dropped = [data.pick(s, j, 5)[1] == "" for s in range(40) for j in range(5)]
    assert 0.35 < np.mean(dropped) < 0.65
    assert torch.equal(data.pixels(3, data.rng(0, 1)), again.pixels(3, again.rng(0, 1)))
