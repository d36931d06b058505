"""The text-to-image bundle: an SD3-style MMDiT (diffusers `SD3Transformer2DModel`), a text
encoder and, in latent space, the autoencoder. Saved as a folder (see `bundle.py`), plus

  text_encoder.safetensors   only for the learned word encoder
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, SD3Transformer2DModel
from torch import nn

from .bundle import PIXEL_PATCH, ImageBundle, load_autoencoder, space_geometry  # noqa: F401 (re-exported)
from .registry import size_config
from .text import build_text_encoder

KIND = "mmdit"


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


class TextToImage(ImageBundle):
    KIND = KIND  # the kind in thinkpix.json that `load` accepts
    TRANSFORMER_CLASS = SD3Transformer2DModel

    def __init__(
        self,
        transformer: SD3Transformer2DModel,
        text_encoder: nn.Module,
        autoencoder: AutoencoderKL | None,
        meta: dict,
    ):
        super().__init__(transformer, autoencoder, meta)
        self.text_encoder = text_encoder

    # ---- construction -------------------------------------------------------------------
    @classmethod
    def create(cls, size: str, space: str, text_encoder: str, canvas: int = 32, autoencoder: str = ""):
        text = build_text_encoder(text_encoder)
        ae, channels, sample, patch = space_geometry(space, canvas, autoencoder)
        transformer = build_transformer(size, channels, sample, patch, text.dim)
        meta = {"kind": KIND, "size": size, "space": space, "text_encoder": text_encoder, "canvas": canvas}
        return cls(transformer, text, ae, meta)

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
    def save_extra(self, path: Path, dtype: torch.dtype) -> None:
        if self.meta["text_encoder"] == "words":
            self.save_state(self.text_encoder, path / "text_encoder.safetensors", dtype)

    @classmethod
    def from_parts(cls, path: Path, meta: dict, transformer: nn.Module, ae: AutoencoderKL | None) -> "TextToImage":
        text = build_text_encoder(meta["text_encoder"])
        if meta["text_encoder"] == "words":
            cls.load_state(text, path / "text_encoder.safetensors")
        return cls(transformer, text, ae, meta)
