"""Wall-clock latency of one generated image: median of repeated batch-1 runs, guidance included.

Shared by ``benchmarks/bench_sampling.py`` and ``python -m sparsesis.evaluate distillation`` so that every
latency figure in ``results/`` is measured the same way.
"""
from __future__ import annotations

import statistics
import time

import numpy as np


def probe_layout(num_classes: int, unknown_id: int, size: int) -> np.ndarray:
    """A fixed sparse layout (two bands of two classes, the rest unknown) for timing."""
    lay = np.full((size, size), unknown_id, dtype=np.int64)
    lay[: size // 4] = 6 % num_classes
    lay[size // 3: 3 * size // 4] = 1 % num_classes
    return lay


def median_latency(synth, steps: int, repeats: int = 5, guidance: float | None = None, **options) -> float:
    """Median seconds for one image with ``steps`` sampling steps (after one warm-up call); ``options`` are
    more sampler settings (a diffusion model's ``guide``, ``interval``)."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    lay = probe_layout(synth.classset.num_classes, synth.classset.unknown_id, synth.image_size)
    synth(lay, steps=min(steps, 2), guidance=guidance, **options)  # warm-up: first-call allocations
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        synth(lay, steps=steps, seed=r, guidance=guidance, **options)
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def median_seconds(fn, repeats: int = 5) -> float:
    """Median seconds of ``fn(1)`` ... ``fn(repeats)`` (the argument: a seed) after one warm-up call ``fn(0)``."""
    if repeats < 1:
        raise ValueError(f"repeats must be >= 1, got {repeats}")
    fn(0)  # warm-up: first-call allocations
    times = []
    for r in range(repeats):
        t = time.perf_counter()
        fn(r + 1)
        times.append(time.perf_counter() - t)
    return statistics.median(times)
