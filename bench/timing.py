"""The benchmarks' timer: a call's median and p95 in milliseconds over `repeat` runs after one warm-up."""

from __future__ import annotations

import time
from collections.abc import Callable

import numpy as np


def timed(fn: Callable[[], object], repeat: int) -> dict[str, float]:
    fn()  # warm-up (imports, allocations, a model runtime's first-run setup)
    samples = []
    for _ in range(repeat):
        t0 = time.perf_counter()
        fn()
        samples.append((time.perf_counter() - t0) * 1e3)
    return {"median": float(np.median(samples)), "p95": float(np.percentile(samples, 95))}
