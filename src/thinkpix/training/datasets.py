"""Captioned images for fine-tuning on a diffusers base, read with Hugging Face `datasets`
(the optional extra `thinkpix[diffusers-data]`):

- an `imagefolder`: a folder of images plus `metadata.jsonl` or `metadata.csv` with a `file_name`
  column and a caption column (`--caption_column`, default `text`);
- a `datasets` dataset saved with `save_to_disk` (its `train` split if it is a DatasetDict), with an
  image column (`--image_column`, default `image`) and a caption column;
- a hub id (`owner/name`, as diffusers' `--dataset_name`) of a dataset repository already in the local
  Hugging Face cache: its parquet files, or its snapshot folder read as above. Nothing is downloaded.

Sample j of optimiser micro-step s is fully determined by (seed, s, j): which image (a seeded
permutation per epoch, so every image is seen once per epoch), its random crop and flip, and whether
its caption is dropped (replaced by '' for classifier-free guidance). A resumed run therefore sees
exactly the data an uninterrupted run would.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from ..errors import ThinkpixError
from .data import sample_seed

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp"}


@dataclass
class ImageOptions:
    resolution: int = 512
    center_crop: bool = False  # else a random crop
    random_flip: bool = False  # horizontal, with probability 1/2
    caption_dropout: float = 0.0  # share of captions replaced by '' (guidance)


def cached_hub_dataset(name: str) -> Path:
    """The snapshot folder of the dataset repository `name` (owner/name) in the local Hugging Face cache; a
    one-line error if `name` is neither a folder nor such a cached repository (thinkpix never downloads)."""
    import re

    if not re.fullmatch(r"[A-Za-z0-9][\w.-]*/[\w.-]+", name):
        raise ThinkpixError(f"--data {name}: not a folder (an imagefolder, or a dataset saved with save_to_disk) "
                            "nor a hub id (owner/name)")
    try:
        from huggingface_hub import snapshot_download

        return Path(snapshot_download(name, repo_type="dataset", local_files_only=True))
    except Exception as exc:  # LocalEntryNotFoundError, a malformed cache, a missing package
        raise ThinkpixError(f"--data {name}: not a folder, and no dataset repository of that hub id in the local "
                            f"cache ({type(exc).__name__}); thinkpix never downloads: fetch it first with "
                            f"`huggingface-cli download --repo-type dataset {name}`") from None


def _datasets():
    try:
        import datasets
    except ImportError:
        raise ThinkpixError("reading image data sets needs the `datasets` package: "
                            "pip install 'thinkpix[diffusers-data]'") from None
    datasets.disable_progress_bars()
    return datasets


def load_captioned(path, caption_column: str = "text", image_column: str = "image"):
    """An imagefolder or a saved `datasets` dataset -> a `datasets.Dataset` with both columns checked."""
    datasets = _datasets()
    p = Path(path)
    if not p.is_dir():
        p = cached_hub_dataset(str(path))
    saved = any((p / name).is_file() for name in ("dataset_info.json", "dataset_dict.json", "state.json"))
    parquet = [] if saved or (p / "metadata.jsonl").is_file() else sorted(p.rglob("*.parquet"))
    check_source_captions(p, parquet, caption_column, path)  # before datasets reads (and types) the files
    if parquet:  # a hub repository's parquet shards
        ds = datasets.load_dataset("parquet", data_files={"train": [str(f) for f in parquet]}, split="train")
    elif saved:
        ds = datasets.load_from_disk(str(p))
        if isinstance(ds, datasets.DatasetDict):
            if "train" not in ds:
                raise ThinkpixError(f"--data {path}: a DatasetDict without a 'train' split (splits: {list(ds)})")
            ds = ds["train"]
    else:
        if not any(f.suffix.lower() in IMAGE_SUFFIXES for f in p.rglob("*")):
            raise ThinkpixError(f"--data {path}: no images found (expected an imagefolder: images + metadata.jsonl "
                                "or metadata.csv with file_name and a caption column)")
        if not ((p / "metadata.jsonl").is_file() or (p / "metadata.csv").is_file()):
            raise ThinkpixError(f"--data {path}: no metadata.jsonl or metadata.csv with captions (imagefolder: "
                                "a file_name column and a caption column)")
        try:
            ds = datasets.load_dataset("imagefolder", data_dir=str(p), split="train")
        except Exception as exc:  # datasets raises many types for a malformed metadata file
            raise ThinkpixError(f"--data {path}: not a readable imagefolder ({type(exc).__name__}: "
                                f"{str(exc).splitlines()[0]})") from None
    for column, flag in ((image_column, "--image_column"), (caption_column, "--caption_column")):
        if column not in ds.column_names:
            raise ThinkpixError(f"--data {path}: no column {column!r} ({flag}); columns: {', '.join(ds.column_names)}")
    if len(ds) == 0:
        raise ThinkpixError(f"--data {path}: the data set is empty")
    check_captions(ds, caption_column, path)
    check_image_sizes(ds, image_column, path)
    return ds


def check_captions(ds, caption_column: str, path) -> None:
    """Every caption is text (or a non-empty list of texts): a number or a null would be trained on as the
    strings "5" or "None". Reads the caption column only (no image is decoded)."""
    for row, value in enumerate(ds[caption_column]):
        check_caption(value, caption_column, f"--data {path}: row {row}")


def check_caption(value, caption_column: str, where: str) -> None:
    """One caption (a text, or a non-empty list whose first text is trained on); ThinkpixError naming `where`."""
    from ..validation import MAX_PROMPT_CHARS

    first = value[0] if isinstance(value, (list, tuple)) and value else value
    if not isinstance(first, str):
        raise ThinkpixError(f"{where}: caption ({caption_column!r}) is {first!r}, not text")
    if len(first) > MAX_PROMPT_CHARS:
        raise ThinkpixError(f"{where}: caption is {len(first)} characters long (at most {MAX_PROMPT_CHARS}, as on "
                            "the command line)")


def check_source_captions(folder: Path, parquet: list[Path], caption_column: str, path) -> None:
    """The captions of the files `datasets` is about to read, each file on its own: pyarrow would refuse a number
    among texts in a metadata.jsonl with a schema error, and cast a parquet shard's numbers to text when another
    shard holds texts. Each JSON line and each shard's caption column (only that column) is checked here,
    naming the file and its line or row."""
    import json

    if parquet:
        import pyarrow.parquet as pq
    for shard in parquet:
        try:
            if caption_column not in pq.read_schema(shard).names:
                continue  # a missing column is named later, for the whole data set
            values = pq.read_table(shard, columns=[caption_column]).column(0).to_pylist()
        except Exception as exc:  # pyarrow raises several types for a damaged file
            raise ThinkpixError(f"--data {path}: {shard.relative_to(folder)}: not a readable parquet file "
                                f"({type(exc).__name__})") from None
        for row, value in enumerate(values):
            check_caption(value, caption_column, f"--data {path}: {shard.relative_to(folder)} row {row}")
    if parquet:
        return
    for meta in sorted(folder.rglob("metadata.jsonl")):
        try:
            lines = meta.read_text(encoding="utf-8").splitlines()
        except UnicodeDecodeError:
            raise ThinkpixError(f"--data {path}: {meta.relative_to(folder)}: not valid UTF-8 text") from None
        for number, line in enumerate(lines, 1):
            if not line.strip():
                continue
            where = f"--data {path}: {meta.relative_to(folder)} line {number}"
            try:
                record = json.loads(line)
            except ValueError:
                raise ThinkpixError(f"{where}: not valid JSON") from None
            if not isinstance(record, dict):
                raise ThinkpixError(f"{where}: not a JSON object")
            if caption_column in record:
                check_caption(record[caption_column], caption_column, where)


def check_image_sizes(ds, image_column: str, path) -> None:
    """Every image at most MAX_IMAGE_SIDE on a side, judged from its file header before anything is decoded
    (images stored as files or bytes; the column is read without decoding)."""
    import io

    from datasets import Image as ImageFeature

    from ..validation import MAX_IMAGE_SIDE, image_size

    if not isinstance(ds.features.get(image_column), ImageFeature):
        return
    raw = ds.cast_column(image_column, ImageFeature(decode=False))[image_column]
    for row, item in enumerate(raw):
        item = item or {}
        source = io.BytesIO(item["bytes"]) if item.get("bytes") else item.get("path")
        if source is None:
            continue
        try:
            image_size(source, MAX_IMAGE_SIDE)
        except ThinkpixError as exc:
            raise ThinkpixError(f"--data {path}: row {row}: {str(exc).split(': ', 1)[-1]}") from None


def transform(image, opts: ImageOptions, rng: np.random.Generator) -> torch.Tensor:
    """PIL image -> (3, R, R) float in [-1, 1]: shorter side resized to R (bilinear), centre or random
    crop, optional horizontal flip (the choices come from `rng`)."""
    from PIL import Image

    r = opts.resolution
    image = image.convert("RGB")
    w, h = image.size
    scale = r / min(w, h)
    image = image.resize((max(r, round(w * scale)), max(r, round(h * scale))), Image.BILINEAR)
    w, h = image.size
    if opts.center_crop:
        left, top = (w - r) // 2, (h - r) // 2
    else:
        left, top = int(rng.integers(0, w - r + 1)), int(rng.integers(0, h - r + 1))
    image = image.crop((left, top, left + r, top + r))
    arr = np.asarray(image, dtype=np.float32)  # (R, R, 3)
    if opts.random_flip and rng.random() < 0.5:
        arr = arr[:, ::-1]
    return torch.from_numpy(np.ascontiguousarray(arr)).permute(2, 0, 1) / 127.5 - 1.0  # (3, R, R)


class CaptionedImages:
    """Deterministic samples (row, caption, pixels) of a `datasets.Dataset`.

    With `per_row_crop` (used when latents are cached) every image has one crop and flip, drawn from
    (seed, row), so that it can be encoded once; otherwise they are drawn per sample."""

    def __init__(self, ds, opts: ImageOptions, caption_column: str = "text", image_column: str = "image",
                 seed: int = 0, per_row_crop: bool = False):
        self.ds, self.opts, self.seed, self.per_row_crop = ds, opts, seed, per_row_crop
        self.caption_column, self.image_column = caption_column, image_column
        self._perms: dict[int, np.ndarray] = {}

    def __len__(self) -> int:
        return len(self.ds)

    def index(self, step: int, j: int, batch_size: int) -> int:
        """Data-set row of global sample j of micro-step `step`: epoch-wise seeded permutations."""
        epoch, k = divmod(step * batch_size + j, len(self.ds))
        if epoch not in self._perms:
            self._perms = {epoch: np.random.default_rng([self.seed, epoch]).permutation(len(self.ds))}
        return int(self._perms[epoch][k])

    def caption(self, row: int) -> str:
        value = self.ds[row][self.caption_column]
        if isinstance(value, (list, tuple)):  # several captions per image: the first
            value = value[0] if value else ""
        return str(value)

    def rng(self, step: int, j: int) -> np.random.Generator:
        return np.random.default_rng(sample_seed(self.seed, step, j))

    def pick(self, step: int, j: int, batch_size: int) -> tuple[int, str]:
        """-> (row, caption or '' where dropped for guidance) of global sample j of `step`."""
        row = self.index(step, j, batch_size)
        dropped = np.random.default_rng([sample_seed(self.seed, step, j), 1]).random() < self.opts.caption_dropout
        return row, "" if dropped else self.caption(row)

    def pixels(self, row: int, rng: np.random.Generator | None) -> torch.Tensor:
        """(3, R, R) in [-1, 1]; crop and flip from `rng`, or from (seed, row) with per_row_crop / rng None."""
        if self.per_row_crop or rng is None:
            rng = np.random.default_rng([self.seed, row, 2])
        return transform(self.ds[row][self.image_column], self.opts, rng)
