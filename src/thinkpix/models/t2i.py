"""The text-to-image bundle: an SD3-style MMDiT (diffusers `SD3Transformer2DModel`), a text
encoder and, in latent space, the autoencoder. Saved as a folder:

  transformer/   diffusers format (config.json + safetensors)
  autoencoder/   diffusers format (latent space only)
  text_encoder.safetensors   only for the learned word encoder
  thinkpix.json  space, canvas, text encoder name, model size, provenance
"""

from __future__ import annotations

import json
from pathlib import Path

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel
from safetensors.torch import load_file, save_file
from torch import nn

from ..errors import ThinkpixError
from . import autoencoder as ae_lib
from .registry import size_config
from .text import build_text_encoder

PIXEL_PATCH = 4  # pixel space: 4x4 patches on the 32x32 canvas -> 64 tokens


def build_transformer(size: str, in_channels: int, sample_size: int, patch_size: int, text_dim: int):
    cfg = size_config("mmdit", size)
    width = cfg["num_attention_heads"] * cfg["attention_head_dim"]
    return SD3Transformer2DModel(
        sample_size=sample_size,
        patch_size=patch_size,
        in_channels=in_channels,
        out_channels=in_channels,
        joint_attention_dim=text_dim,
        caption_projection_dim=width,
        pooled_projection_dim=text_dim,
        pos_embed_max_size=max(sample_size // patch_size, 4),
        **cfg,
    )


class TextToImage(nn.Module):
    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        text_encoder: nn.Module,
        autoencoder: AutoencoderKL | None,
        meta: dict,
    ):
        super().__init__()
        self.transformer = transformer
        self.text_encoder = text_encoder
        self.autoencoder = autoencoder.eval().requires_grad_(False) if autoencoder is not None else None
        self.meta = meta

    def train(self, mode: bool = True):
        """The autoencoder is frozen and stays in eval mode."""
        super().train(mode)
        if self.autoencoder is not None:
            self.autoencoder.eval()
        return self

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, size: str, space: str, text_encoder: str, canvas: int = 32, autoencoder: str = ""):
        text = build_text_encoder(text_encoder)
        ae = None
        if space == "latent":
            ae = load_autoencoder(autoencoder)
            down = 2 ** (len(ae.config.block_out_channels) - 1)
            channels, sample, patch = ae.config.latent_channels, canvas // down, 1
        else:
            channels, sample, patch = 3, canvas, PIXEL_PATCH
        transformer = build_transformer(size, channels, sample, patch, text.dim)
        meta = {"size": size, "space": space, "text_encoder": text_encoder, "canvas": canvas}
        return cls(transformer, text, ae, meta)

    @property
    def latent_shape(self) -> tuple[int, int, int]:
        c = self.transformer.config
        return (c.in_channels, c.sample_size, c.sample_size)

    def trainable_parameters(self) -> dict[str, nn.Parameter]:
        """Everything trained from scratch: the transformer, and the word encoder if used."""
        return {n: p for n, p in self.named_parameters() if p.requires_grad}

    # ---- images <-> model space ------------------------------------------------------------
    @torch.no_grad()
    def images_to_x0(self, images: torch.Tensor) -> torch.Tensor:
        """(B, H, W, 3) uint8 -> (B, C, h, w) model-space clean sample."""
        x = ae_lib.images_to_unit(images)  # (B, 3, H, W) in [-1, 1]
        return ae_lib.encode(self.autoencoder, x) if self.autoencoder is not None else x

    @torch.no_grad()
    def x0_to_images(self, x0: torch.Tensor) -> torch.Tensor:
        """(B, C, h, w) -> (B, H, W, 3) uint8."""
        x = ae_lib.decode(self.autoencoder, x0) if self.autoencoder is not None else x0
        return ae_lib.unit_to_images(x)

    # ---- the network -----------------------------------------------------------------------
    def encode_text(self, prompts: list[str]) -> tuple[torch.Tensor, torch.Tensor]:
        return self.text_encoder(prompts)  # (B, L, Dt), (B, Dt)

    def velocity(self, x_t, t, tokens, pooled, **joint_attention_kwargs) -> torch.Tensor:
        """x_t (B, C, h, w), t (B,) in [0, 1] -> predicted velocity (B, C, h, w)."""
        return self.transformer(
            hidden_states=x_t,
            encoder_hidden_states=tokens,
            pooled_projections=pooled,
            timestep=t * 1000.0,  # SD3 embeds sigma * 1000
            joint_attention_kwargs=joint_attention_kwargs or None,
            return_dict=False,
        )[0]

    # ---- save / load ------------------------------------------------------------------------
    def save(self, path: str | Path, dtype: torch.dtype = torch.float32, extra_meta: dict | None = None):
        path = Path(path)
        path.mkdir(parents=True, exist_ok=True)
        self.transformer.to(dtype).save_pretrained(path / "transformer", safe_serialization=True)
        self.transformer.to(torch.float32)
        if self.autoencoder is not None:
            self.autoencoder.to(dtype).save_pretrained(path / "autoencoder", safe_serialization=True)
            self.autoencoder.to(torch.float32)
        if self.meta["text_encoder"] == "words":
            save_file({k: v.to(dtype).contiguous() for k, v in self.text_encoder.state_dict().items()},
                      path / "text_encoder.safetensors")
        (path / "thinkpix.json").write_text(json.dumps(dict(self.meta, **(extra_meta or {})), indent=1))

    @classmethod
    def load(cls, path: str | Path) -> "TextToImage":
        path = Path(path)
        meta_file = path / "thinkpix.json"
        if not meta_file.exists():
            raise ThinkpixError(f"{path}: not a thinkpix model folder (no thinkpix.json)")
        meta = json.loads(meta_file.read_text())
        transformer = SD3Transformer2DModel.from_pretrained(path / "transformer", local_files_only=True)
        ae = load_autoencoder(path / "autoencoder") if meta["space"] == "latent" else None
        text = build_text_encoder(meta["text_encoder"])
        if meta["text_encoder"] == "words":
            text.load_state_dict({k: v.float() for k, v in load_file(path / "text_encoder.safetensors").items()})
        model = cls(transformer.float(), text, ae, meta)
        return model.eval()


def load_autoencoder(path: str | Path) -> AutoencoderKL:
    path = Path(path)
    if not (path / "config.json").exists():
        raise ThinkpixError(f"{path}: no autoencoder here (expected a diffusers AutoencoderKL folder)")
    return AutoencoderKL.from_pretrained(path, local_files_only=True).float().eval().requires_grad_(False)
