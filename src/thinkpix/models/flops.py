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


def matmul_rate(m: int, k: int, n: int, dtype=torch.float32, seconds: float = 2.0,
                clock: Callable[[], float] = time.perf_counter) -> float:
    """Measured FLOP/s of an (m x k) @ (k x n) matmul with torch's current threads, timed by `clock`
    (wall time by default; `time.process_time` for CPU time on a shared machine)."""
    a, b = torch.randn(m, k, dtype=dtype), torch.randn(k, n, dtype=dtype)
    for _ in range(3):
        a @ b
    count, start = 0, clock()
    while clock() - start < seconds:
        a @ b
        count += 1
    return 2 * m * k * n * count / (clock() - start)


def matmul_peak(size: int = 1024, seconds: float = 2.0, dtype=torch.float32) -> float:
    """Measured FLOP/s of a square matmul on this machine with torch's current threads."""
    return matmul_rate(size, size, size, dtype, seconds)
