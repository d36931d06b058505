"""The class-to-image bundle (the paper's class-conditional DiT track): diffusers'
`DiTTransformer2DModel` (adaLN-Zero blocks, timestep + class embedding) and, in latent space, the
autoencoder. Saved as a folder (see `bundle.py`); thinkpix.json adds `classes`, the class names in
label order.

Classifier-free guidance uses the DiT's own null class: diffusers' `LabelEmbedding` keeps a table
of num_classes + 1 rows when built with a dropout probability > 0 (its default 0.1), and the last
row (label == num_classes) is the "no class" embedding. diffusers would drop labels at random in
training mode, independently in every block; we turn that off (`disable_label_dropout`, keeping
the table) and drop labels once per sample in the objective, passing the null label explicitly.
"""

from __future__ import annotations

from pathlib import Path

import torch
from diffusers import AutoencoderKL, DiTTransformer2DModel
from torch import nn

from ..errors import ThinkpixError
from ..worlds.classes.sets import CLASSES, class_index
from .bundle import ImageBundle, space_geometry
from .registry import size_config

KIND = "dit"


def build_transformer(size: str, in_channels: int, sample_size: int, patch_size: int, num_classes: int):
    """A DiT of a registry size, DiT's initialisation (`initialize_weights`), label dropout off."""
    transformer = DiTTransformer2DModel(
        sample_size=sample_size,
        patch_size=patch_size,
        in_channels=in_channels,
        out_channels=in_channels,  # no learned sigma: rectified flow predicts a velocity only
        num_embeds_ada_norm=num_classes,
        norm_type="ada_norm_zero",
        **size_config("dit", size),
    )
    initialize_weights(transformer)
    return transformer


@torch.no_grad()
def initialize_weights(transformer: DiTTransformer2DModel) -> None:
    """facebookresearch/DiT's `initialize_weights` on diffusers' module names: xavier linears, the
    patch embedding like a linear, N(0, 0.02) label table and timestep MLP, and zero for every
    adaLN-Zero modulation and the output projection, so each block starts as the identity."""
    for module in transformer.modules():
        if isinstance(module, nn.Linear):
            nn.init.xavier_uniform_(module.weight)
            if module.bias is not None:
                nn.init.zeros_(module.bias)
    proj = transformer.pos_embed.proj  # Conv2d (D, C, p, p)
    nn.init.xavier_uniform_(proj.weight.view(proj.weight.shape[0], -1))
    nn.init.zeros_(proj.bias)
    for block in transformer.transformer_blocks:
        emb = block.norm1.emb
        nn.init.normal_(emb.class_embedder.embedding_table.weight, std=0.02)
        nn.init.normal_(emb.timestep_embedder.linear_1.weight, std=0.02)
        nn.init.normal_(emb.timestep_embedder.linear_2.weight, std=0.02)
        nn.init.zeros_(block.norm1.linear.weight)  # adaLN-Zero: shift, scale, gate of msa and mlp
        nn.init.zeros_(block.norm1.linear.bias)
    for linear in (transformer.proj_out_1, transformer.proj_out_2):  # final adaLN and output projection
        nn.init.zeros_(linear.weight)
        nn.init.zeros_(linear.bias)


def disable_label_dropout(transformer: DiTTransformer2DModel) -> None:
    """Keep every block's label table (num_classes + 1 rows, the last = null class), stop diffusers'
    random per-block label drop; the objective drops labels once per sample instead."""
    for i, block in enumerate(transformer.transformer_blocks):
        labels = block.norm1.emb.class_embedder
        if labels.embedding_table.num_embeddings != labels.num_classes + 1:
            raise ThinkpixError(f"block {i}: the DiT has no null-class row for classifier-free guidance "
                                f"({labels.embedding_table.num_embeddings} rows for {labels.num_classes} classes)")
        labels.dropout_prob = 0.0


class ClassToImage(ImageBundle):
    KIND = KIND  # the kind in thinkpix.json that `load` accepts
    TRANSFORMER_CLASS = DiTTransformer2DModel

    def __init__(self, transformer: DiTTransformer2DModel, autoencoder: AutoencoderKL | None, meta: dict):
        super().__init__(transformer, autoencoder, meta)
        if transformer.config.num_embeds_ada_norm != len(meta["classes"]):
            raise ThinkpixError(f"the DiT has {transformer.config.num_embeds_ada_norm} classes, "
                                f"the metadata names {len(meta['classes'])}")
        disable_label_dropout(transformer)

    @classmethod
    def create(cls, size: str, space: str, canvas: int = 32, autoencoder: str = "",
               classes: tuple[str, ...] = CLASSES) -> "ClassToImage":
        ae, channels, sample, patch = space_geometry(space, canvas, autoencoder)
        transformer = build_transformer(size, channels, sample, patch, len(classes))
        meta = {"kind": KIND, "size": size, "space": space, "canvas": canvas, "classes": list(classes)}
        return cls(transformer, ae, meta)

    @property
    def classes(self) -> list[str]:
        return self.meta["classes"]

    @property
    def null_label(self) -> int:
        """The label of the DiT's "no class" embedding (unconditional half of CFG)."""
        return len(self.classes)

    def label_of(self, name: str) -> int:
        """Class name -> label; a `ThinkpixError` listing this model's classes if unknown."""
        return class_index(name, self.classes)

    def velocity(self, x_t: torch.Tensor, t: torch.Tensor, labels: torch.Tensor) -> torch.Tensor:
        """x_t (B, C, h, w), t (B,) in [0, 1], labels (B,) int (null_label = none) -> velocity (B, C, h, w)."""
        return self.transformer(
            hidden_states=x_t,
            timestep=t * 1000.0,  # as in the text-to-image bundle: the embedding sees sigma * 1000
            class_labels=labels,
            return_dict=False,
        )[0]

    @classmethod
    def from_parts(cls, path: Path, meta: dict, transformer: nn.Module, ae: AutoencoderKL | None) -> "ClassToImage":
        return cls(transformer, ae, meta)
