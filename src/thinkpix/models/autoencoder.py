"""A small diffusers `AutoencoderKL` for the shapes world (32x32 RGB <-> 8x8 latents), trained in
the project. Latents are normalised with the `shift_factor` / `scaling_factor` config fields,
as SD3 does: z = (mean - shift) * scale."""

from __future__ import annotations

import torch
from diffusers import AutoencoderKL

from .registry import size_config

KL_WEIGHT = 1e-5


def build_autoencoder(size: str = "demo", canvas: int = 32) -> AutoencoderKL:
    cfg = size_config("autoencoder", size)
    n = len(cfg["block_out_channels"])
    return AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * n,
        up_block_types=("UpDecoderBlock2D",) * n,
        sample_size=canvas,
        shift_factor=0.0,
        scaling_factor=1.0,
        **cfg,
    )


def images_to_unit(images: torch.Tensor) -> torch.Tensor:
    """(B, H, W, 3) uint8 -> (B, 3, H, W) float in [-1, 1]."""
    return images.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def unit_to_images(x: torch.Tensor) -> torch.Tensor:
    """(B, 3, H, W) float in [-1, 1] -> (B, H, W, 3) uint8."""
    return x.clamp(-1, 1).add(1).mul(127.5).round().to(torch.uint8).permute(0, 2, 3, 1)


def autoencoder_loss(ae: AutoencoderKL, x: torch.Tensor, generator: torch.Generator | None = None):
    """x (B, 3, H, W) in [-1, 1] -> (loss, metrics). L1 + MSE reconstruction + small KL."""
    posterior = ae.encode(x).latent_dist
    z = posterior.sample(generator=generator)  # (B, C, h, w)
    recon = ae.decode(z).sample  # (B, 3, H, W)
    l1 = (recon - x).abs().mean()
    mse = (recon - x).pow(2).mean()
    kl = posterior.kl().mean() / x[0].numel()
    loss = l1 + mse + KL_WEIGHT * kl
    return loss, {"l1": l1.item(), "mse": mse.item(), "kl": kl.item()}


@torch.no_grad()
def encode(ae: AutoencoderKL, x: torch.Tensor) -> torch.Tensor:
    """x (B, 3, H, W) in [-1, 1] -> normalised latents (B, C, h, w), using the posterior mean."""
    mean = ae.encode(x).latent_dist.mean
    return (mean - ae.config.shift_factor) * ae.config.scaling_factor


def decode(ae: AutoencoderKL, z: torch.Tensor) -> torch.Tensor:
    """normalised latents (B, C, h, w) -> images (B, 3, H, W) in [-1, 1]."""
    return ae.decode(z / ae.config.scaling_factor + ae.config.shift_factor).sample


@torch.no_grad()
def fit_latent_normalisation(ae: AutoencoderKL, x: torch.Tensor) -> tuple[float, float]:
    """Set shift/scale so that latents of `x` have mean 0 and std 1; returns (shift, scale)."""
    mean = ae.encode(x).latent_dist.mean
    shift, scale = mean.mean().item(), 1.0 / mean.std().item()
    ae.register_to_config(shift_factor=shift, scaling_factor=scale)
    return shift, scale
