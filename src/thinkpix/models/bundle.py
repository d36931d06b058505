"""What every image-generation bundle shares (text-to-image `TextToImage`, class-to-image
`ClassToImage`): a diffusers transformer, the frozen autoencoder in latent space, the mapping
between images and model space, and the folder format

  transformer/   diffusers format (config.json + safetensors)
  autoencoder/   diffusers format (latent space only)
  thinkpix.json  kind, space, canvas, model size, provenance (+ what the subclass adds)
  checksums.json sha256 of every other file (`thinkpix.files`), written last, verified on load
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ThinkpixError
from ..files import MANIFEST, read_json_object, verify_manifest, write_manifest, writing
from ..precision import full_precision
from . import autoencoder as ae_lib
from .weights_check import check_weights

PIXEL_PATCH = 4  # pixel space: 4x4 patches on the 32x32 canvas -> 64 tokens
META_FILE = "thinkpix.json"
OWN_RSR = "rsr"  # a model trained with RSR in it keeps its RSR (an adapter folder) here
KINDS = {"mmdit": "text-to-image", "dit": "class-conditional", "lake": "lake-world"}  # model kinds saved as folders


def load_autoencoder(path: str | Path, verify: bool = True) -> AutoencoderKL:
    """A diffusers AutoencoderKL folder, checked against its checksums.json unless `verify` is off
    (a model folder's autoencoder/, which the model folder's own checksums cover)."""
    path = Path(path)
    if verify:
        verify_manifest(path, "autoencoder folder")
    if not (path / "config.json").exists():
        raise ThinkpixError(f"{path}: no autoencoder here (expected a diffusers AutoencoderKL folder)")
    check_weights(path, AutoencoderKL)  # dtypes and shapes against the config, before diffusers reads a byte
    return AutoencoderKL.from_pretrained(path, local_files_only=True, use_safetensors=True).float().eval() \
        .requires_grad_(False)


def space_geometry(space: str, canvas: int, autoencoder: str | Path = "") -> tuple[AutoencoderKL | None, int, int, int]:
    """-> (autoencoder or None, channels, sample size, patch size) of the transformer's input:
    latent space: the autoencoder's latents with 1x1 patches; pixel space: RGB with 4x4 patches."""
    if space == "latent":
        ae = load_autoencoder(autoencoder)
        down = 2 ** (len(ae.config.block_out_channels) - 1)
        return ae, ae.config.latent_channels, canvas // down, 1
    return None, 3, canvas, PIXEL_PATCH


def read_meta(path: str | Path) -> dict:
    """A model folder's thinkpix.json (`kind` defaults to 'mmdit', for folders saved before kinds),
    after checking every file of the folder against its checksums.json and the record's fields."""
    meta_file = Path(path) / META_FILE
    if not meta_file.exists():
        raise ThinkpixError(f"{path}: not a thinkpix model folder (no {META_FILE})")
    verify_manifest(path, "model folder")
    meta = read_json_object(meta_file, "model record")
    meta.setdefault("kind", "mmdit")
    check_meta(meta_file, meta)
    return meta


def check_meta(meta_file: Path, meta: dict) -> None:
    """Types and values of a model record's fields (a crafted or hand-edited file is refused)."""
    expected = {"kind": tuple(KINDS), "space": ("pixel", "latent")}
    for key, choices in expected.items():
        if meta.get(key) not in choices:
            raise ThinkpixError(f"{meta_file}: {key!r} must be one of {list(choices)}, got {meta.get(key)!r}")
    if not isinstance(meta.get("canvas"), int) or isinstance(meta.get("canvas"), bool) or meta["canvas"] < 1:
        raise ThinkpixError(f"{meta_file}: 'canvas' must be a positive integer, got {meta.get('canvas')!r}")
    if meta["kind"] == "mmdit" and not isinstance(meta.get("text_encoder"), str):
        raise ThinkpixError(f"{meta_file}: 'text_encoder' must be a string, got {meta.get('text_encoder')!r}")
    if meta["kind"] == "dit":
        classes = meta.get("classes")
        if not (isinstance(classes, list) and classes and all(isinstance(c, str) and c.strip() for c in classes)
                and len(set(classes)) == len(classes)):
            raise ThinkpixError(f"{meta_file}: 'classes' must be a list of distinct non-empty names")


def model_kind(path: str | Path) -> str:
    return read_meta(path)["kind"]


def check_kind(path: str | Path, meta: dict, kind: str) -> None:
    if meta["kind"] != kind:
        found = meta["kind"]
        raise ThinkpixError(f"{path}: a {KINDS.get(found, found)} model (kind {found!r}), "
                            f"not a {KINDS[kind]} one (kind {kind!r})")


class ImageBundle(nn.Module):
    """Transformer + optional frozen autoencoder + metadata. Subclasses add the conditioning."""

    def __init__(self, transformer: nn.Module, autoencoder: AutoencoderKL | None, meta: dict):
        super().__init__()
        self.transformer = transformer
        self.autoencoder = autoencoder.eval().requires_grad_(False) if autoencoder is not None else None
        self.meta = meta

    def train(self, mode: bool = True):
        """The autoencoder is frozen and stays in eval mode."""
        super().train(mode)
        if self.autoencoder is not None:
            self.autoencoder.eval()
        return self

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.transformer.config
        return (c.in_channels, c.sample_size, c.sample_size)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Everything that trains (from scratch: the transformer and any learned encoder)."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    # ---- images <-> model space ------------------------------------------------------------
    @torch.no_grad()
    def images_to_x0(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, C, h, w) model-space clean sample."""
        x = ae_lib.images_to_unit(images)  # (B, 3, H, W) in [-1, 1]
        if self.autoencoder is None:
            return x
        with full_precision(x.device):  # the loss target stays fp32 under bf16 autocast
            return ae_lib.encode(self.autoencoder, x)

    @torch.no_grad()
    def x0_to_images(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, H, W, 3) uint8."""
        if self.autoencoder is not None:
            with full_precision(x0.device):  # the frozen autoencoder runs in fp32 (see thinkpix.precision)
                x0 = ae_lib.decode(self.autoencoder, x0.float())
        return ae_lib.unit_to_images(x0)

    # ---- save / load ------------------------------------------------------------------------
    def save(self, path: str | Path, dtype: torch.dtype = torch.float32, extra_meta: dict | None = None) -> Path:
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        parts = {"transformer": self.transformer, "autoencoder": self.autoencoder}
        with writing(path):  # a full disk: one line naming the folder; without checksums.json it never loads
            (path / MANIFEST).unlink(missing_ok=True)  # a folder rewritten in place is sealed again only when whole
            for name, module in parts.items():
                if module is None:
                    continue
                if dtype != torch.float32:  # (diffusers warns on every dtype cast, even a no-op one)
                    module.to(dtype)
                module.save_pretrained(path / name, safe_serialization=True)
                if dtype != torch.float32:
                    module.to(torch.float32)
            self.save_extra(path, dtype)
            (path / META_FILE).write_text(json.dumps(dict(self.meta, **(extra_meta or {})), indent=1))
            write_manifest(path)  # last: a folder whose save was cut short has no valid checksums
        return path

    def save_extra(self, path: Path, dtype: torch.dtype) -> None:
        """Subclass hook: files besides transformer/ and autoencoder/."""

    def load_own_rsr(self, path: str | Path) -> "ImageBundle":
        """A model trained with RSR in it (`model.rsr`, the lake's `lake.rsr`) keeps its RSR as an adapter
        folder PATH/<meta["rsr"]> (covered by the model's checksums); attach it. -> self."""
        if self.meta.get("rsr"):
            from ..integrations.adapters import load_rsr

            load_rsr(self.transformer, Path(path) / self.meta["rsr"])
        return self

    @classmethod
    def load(cls, path: str | Path) -> "ImageBundle":
        """A model folder of the subclass's `KIND`: meta, fp32 transformer (`TRANSFORMER_CLASS`), autoencoder
        or None, the subclass's own parts (`from_parts`), then its own RSR if it was trained with one."""
        path = Path(path)
        meta = read_meta(path)
        check_kind(path, meta, cls.KIND)
        transformer = cls.load_transformer(path, meta)
        ae = load_autoencoder(path / "autoencoder", verify=False) if meta["space"] == "latent" else None
        return cls.from_parts(path, meta, transformer, ae).load_own_rsr(path).eval()

    @classmethod
    def load_transformer(cls, path: Path, meta: dict) -> nn.Module:
        """Subclass hook: the fp32 transformer of PATH/transformer (diffusers' loader of `TRANSFORMER_CLASS`)."""
        check_weights(path / "transformer", cls.TRANSFORMER_CLASS)  # dtypes and shapes against its config
        return cls.TRANSFORMER_CLASS.from_pretrained(path / "transformer", local_files_only=True,
                                                     use_safetensors=True).float()

    @classmethod
    def from_parts(cls, path: Path, meta: dict, transformer: nn.Module, ae: AutoencoderKL | None) -> "ImageBundle":
        """Subclass hook: the model from its loaded parts (reading its own extra files from `path`)."""
        raise NotImplementedError

    @staticmethod
    def save_state(module: nn.Module, file: Path, dtype: torch.dtype) -> None:
        """A small module's weights as one safetensors file, in `dtype` (e.g. the cell tokens)."""
        save_file({k: v.to(dtype).contiguous() for k, v in module.state_dict().items()}, file)

    @staticmethod
    def load_state(module: nn.Module, file: Path) -> nn.Module:
        """The inverse of `save_state`, weights back in fp32."""
        module.load_state_dict({k: v.float() for k, v in load_file(file).items()})
        return module
