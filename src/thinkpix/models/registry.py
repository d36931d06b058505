"""Named model sizes, from a tiny one for tests to the demo size.

Transformer entries give only the widths/depths; channels, patch size and sample size follow
from the space the model works in (see `thinkpix.models.t2i.build_transformer` and
`thinkpix.models.c2i.build_transformer`).
"""

from __future__ import annotations

SIZES: dict[str, dict[str, dict]] = {
    "mmdit": {
        # SD3Transformer2DModel arguments. Width = num_attention_heads * attention_head_dim.
        "tiny": dict(num_layers=2, num_attention_heads=2, attention_head_dim=8),
        "small": dict(num_layers=4, num_attention_heads=2, attention_head_dim=32),
        # 3.55M parameters; 2 heads of 64 trained 1.3x faster than 4 heads of 32 on one CPU thread.
        "demo": dict(num_layers=6, num_attention_heads=2, attention_head_dim=64),
        # The demo size one block deeper: the compute-matched baseline of recursion trained in (docs/lab/recursion_trained_in.md).
        "demo7": dict(num_layers=7, num_attention_heads=2, attention_head_dim=64),
        # Wider bases at the demo's depth (heads of 64): what bf16 autocast makes affordable (docs/training.md).
        "w256": dict(num_layers=6, num_attention_heads=4, attention_head_dim=64),
        "w384": dict(num_layers=6, num_attention_heads=6, attention_head_dim=64),
    },
    "dit": {
        # DiTTransformer2DModel arguments (class-conditional track). Width = heads * head dim.
        "tiny": dict(num_layers=2, num_attention_heads=2, attention_head_dim=8),
        "small": dict(num_layers=4, num_attention_heads=2, attention_head_dim=32),
        # 3.53M parameters in latent space, about the text-to-image demo's 3.55M.
        "demo": dict(num_layers=10, num_attention_heads=2, attention_head_dim=64),
    },
    "features": {
        # thinkpix.models.features.FeatureNet: conv widths (stride 2 after the first) and feature size.
        "tiny": dict(channels=(8, 16, 16), dim=32),
        "demo": dict(channels=(32, 64, 128), dim=128),
    },
    "autoencoder": {
        # diffusers AutoencoderKL arguments; three blocks = two down-samplings (32x32 -> 8x8).
        "tiny": dict(block_out_channels=(8, 16, 16), layers_per_block=1, latent_channels=4, norm_num_groups=4),
        "demo": dict(block_out_channels=(32, 64, 64), layers_per_block=1, latent_channels=8, norm_num_groups=16),
    },
}


MAX_DEPTH_VARIANT = 24


def size_config(kind: str, size: str) -> dict:
    """The arguments of a named size; for transformers, `<size>-d<N>` is that size with N blocks (the depth
    ladder's bases)."""
    deep = kind in ("mmdit", "dit")
    name, _, depth = size.rpartition("-d")
    if deep and name in SIZES[kind] and depth.isdigit() and 1 <= int(depth) <= MAX_DEPTH_VARIANT:
        return {**SIZES[kind][name], "num_layers": int(depth)}
    try:
        return dict(SIZES[kind][size])
    except KeyError:
        known = ", ".join(SIZES.get(kind, {}))
        hint = f", or <size>-d<N> (N blocks, 1..{MAX_DEPTH_VARIANT})" if deep else ""
        raise KeyError(f"unknown size {size!r} for {kind}; known: {known}{hint}") from None
