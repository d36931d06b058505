"""Training data is checked before a base loads: a caption that is a number or a null (which would be
trained on as "5" or "None") and an image larger than 4096 pixels on a side (judged from its header, never
decoded) are refused naming the data set and row."""

import json
import struct
import zlib

import pytest

from thinkpix.errors import ThinkpixError
from thinkpix.training.datasets import load_captioned
from tiny_pipelines import imagefolder


def png_header(width: int, height: int) -> bytes:
    """A PNG claiming width x height, with no real pixel data (only its header can be read)."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data))

    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"\0" * 64)) + chunk(b"IEND", b""))


@pytest.mark.parametrize("caption", [5, None, 2.5, True])
def test_a_caption_that_is_not_text_is_refused(tmp_path, caption):
    data = imagefolder(tmp_path / "d", n=4)
    rows = [json.loads(x) for x in (data / "metadata.jsonl").read_text().splitlines()]
    rows[2]["text"] = caption
    (data / "metadata.jsonl").write_text("".join(json.dumps(r) + "\n" for r in rows))
    # named by its line before pyarrow reads the file (pyarrow: "JSON parse error: Column(/text) changed ...")
    with pytest.raises(ThinkpixError, match=rf"metadata.jsonl line 3: caption \('text'\) is {caption!r}, not text$"):
        load_captioned(data, "text")


def parquet_shard(path, captions):
    import datasets
    from PIL import Image

    images = [Image.new("RGB", (32, 32), (40 * i, 0, 0)) for i in range(len(captions))]
    path.parent.mkdir(parents=True, exist_ok=True)
    datasets.Dataset.from_dict({"image": images, "text": captions}).cast_column(
        "image", datasets.Image()).to_parquet(str(path))


@pytest.mark.parametrize("captions", [[5, 6], ["a red square", None]])
def test_a_caption_that_is_not_text_in_a_parquet_shard_is_named_by_shard_and_row(tmp_path, captions):
    parquet_shard(tmp_path / "d" / "data" / "train-0.parquet", captions)
    bad = next(i for i, c in enumerate(captions) if not isinstance(c, str))
    with pytest.raises(ThinkpixError, match=rf"train-0.parquet row {bad}: caption \('text'\) is {captions[bad]!r}"):
        load_captioned(tmp_path / "d", "text")


def test_numbers_in_one_shard_beside_texts_in_another_are_refused_not_cast_to_text(tmp_path, monkeypatch):
    import datasets

    monkeypatch.setattr(datasets.config, "HF_DATASETS_CACHE", tmp_path / "datasets_cache")
    parquet_shard(tmp_path / "d" / "a.parquet", ["a red square", "a blue circle"])
    parquet_shard(tmp_path / "d" / "b.parquet", [5, 6])  # datasets alone would read these as the texts "5", "6"
    with pytest.raises(ThinkpixError, match=r"b.parquet row 0: caption \('text'\) is 5, not text"):
        load_captioned(tmp_path / "d", "text")
    (tmp_path / "d" / "b.parquet").unlink()
    assert load_captioned(tmp_path / "d", "text")["text"] == ["a red square", "a blue circle"]


def test_an_image_above_4096_pixels_is_refused_before_decoding(tmp_path):
    data = imagefolder(tmp_path / "d", n=4)
    (data / "img_001.png").write_bytes(png_header(12000, 12000))
    with pytest.raises(ThinkpixError, match="12000x12000"):
        load_captioned(data, "text")
    assert len(load_captioned(imagefolder(tmp_path / "ok", n=4), "text")) == 4  # a good folder still loads
