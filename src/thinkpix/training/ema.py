"""Exponential moving average of trainable weights (kept in fp32, outside autograd)."""

from __future__ import annotations

import torch
from torch import nn


class EMA:
    def __init__(self, named_params: dict[str, nn.Parameter], decay: float):
        self.decay = decay
        self.params = named_params
        self.shadow = {k: p.detach().clone().float() for k, p in named_params.items()}

    @torch.no_grad()
    def update(self, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))  # warm-up: early EMA follows the weights
        for k, p in self.params.items():
            self.shadow[k].lerp_(p.detach().float(), 1 - d)

    @torch.no_grad()
    def copy_to(self, params: dict[str, nn.Parameter]) -> None:
        for k, p in params.items():
            p.copy_(self.shadow[k].to(p.dtype))
