"""FLOP counting: the model counts its own FLOPs by running once under torch's FlopCounterMode
(matmuls, convolutions and attention, forward and backward), and a measured matmul peak."""

from __future__ import annotations

import time
from collections.abc import Callable

import torch
from torch.utils.flop_counter import FlopCounterMode


def count_flops(fn: Callable[[], object]) -> int:
    """Total FLOPs of the torch ops that `fn()` runs (include `.backward()` in fn for training)."""
    with FlopCounterMode(display=False) as counter:
        fn()
    return int(counter.get_total_flops())


def matmul_peak(size: int = 1024, seconds: float = 2.0, dtype=torch.float32) -> float:
    """Measured FLOP/s of a square fp32 matmul on this machine with torch's current threads."""
    a, b = torch.randn(size, size, dtype=dtype), torch.randn(size, size, dtype=dtype)
    for _ in range(3):
        a @ b
    n, start = 0, time.perf_counter()
    while time.perf_counter() - start < seconds:
        a @ b
        n += 1
    return 2 * size**3 * n / (time.perf_counter() - start)
