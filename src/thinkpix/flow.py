"""Rectified flow (SD3's objective) and its samplers.

Convention (SD3): x_t = (1 - t) * x0 + t * noise, t in [0, 1] (t = 1 is pure noise), and the
network predicts the velocity v = noise - x0. Training timesteps are logit-normal:
t = sigmoid(n), n ~ N(mean, std). Sampling integrates dx/dt = v from t = 1 down to t = 0.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

VelocityFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]  # (x_t (B,...), t (B,)) -> v


def sample_timesteps(n: int, generator: torch.Generator | None = None, mean: float = 0.0, std: float = 1.0):
    """(n,) logit-normal timesteps in (0, 1)."""
    return torch.sigmoid(torch.randn(n, generator=generator) * std + mean)


def interpolate(x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """x_t = (1 - t) x0 + t noise, t (B,) broadcast over the other dimensions."""
    t = t.view(-1, *([1] * (x0.dim() - 1)))
    return (1 - t) * x0 + t * noise


def flow_loss(velocity: VelocityFn, x0: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
              weight: torch.Tensor | None = None) -> torch.Tensor:
    """Mean squared error between predicted and true velocity (noise - x0). `weight` (B, 1, H, W) or
    x0's shape, optional: a weighted mean, sum(w * err^2) / sum(w) per element, so all-ones weights give
    exactly the plain mean."""
    err = (velocity(interpolate(x0, noise, t), t).float() - (noise - x0).float()).pow(2)  # (B, C, H, W)
    if weight is None:
        return err.mean()
    weight = weight.float().expand_as(err)
    return (weight * err).sum() / weight.sum()


def seeded_noise(shape: tuple[int, ...], seeds: list[int]) -> torch.Tensor:
    """One noise tensor per seed: (len(seeds), *shape). Sample i depends only on seeds[i],
    so an image is the same whatever the batch it is drawn in."""
    return torch.stack([torch.randn(shape, generator=torch.Generator().manual_seed(int(s))) for s in seeds])


def guided(velocity_cond: VelocityFn, velocity_uncond: VelocityFn | None, scale: float) -> VelocityFn:
    """Classifier-free guidance: v = v_u + scale (v_c - v_u). scale 1 (or no uncond) = no guidance."""
    if velocity_uncond is None or scale == 1.0:
        return velocity_cond

    def v(x, t):
        vc, vu = velocity_cond(x, t), velocity_uncond(x, t)
        return vu + scale * (vc - vu)

    return v


def timestep_grid(steps: int, shift: float = 1.0) -> torch.Tensor:
    """(steps + 1,) from 1 to 0; `shift` > 1 spends more steps at high noise (SD3's shift)."""
    t = torch.linspace(1.0, 0.0, steps + 1)
    return shift * t / (1 + (shift - 1) * t)


@torch.no_grad()
def sample(
    velocity: VelocityFn,
    noise: torch.Tensor,
    steps: int = 20,
    method: str = "euler",
    shift: float = 1.0,
    callback: Callable[[int, torch.Tensor, torch.Tensor], None] | None = None,
) -> torch.Tensor:
    """Integrate from t = 1 (noise) to t = 0. Euler: one call per step; Heun: two (the last
    step falls back to Euler, as in EDM). `callback(i, t, x)` sees every intermediate state."""
    if method not in ("euler", "heun"):
        raise ValueError(f"unknown sampler {method!r}; known: euler, heun")
    grid = timestep_grid(steps, shift).to(noise.device)
    x = noise
    batch = noise.shape[0]
    for i in range(steps):
        t, t_next = grid[i], grid[i + 1]
        v = velocity(x, t.expand(batch))  # (B, C, h, w)
        x_next = x + (t_next - t) * v
        if method == "heun" and t_next > 0:
            v_next = velocity(x_next, t_next.expand(batch))
            x_next = x + (t_next - t) * 0.5 * (v + v_next)
        x = x_next
        if callback is not None:
            callback(i, t_next, x)
    return x
