"""Wall-clock latency of one generated image: median of repeated batch-1 runs, guidance included.

Shared by ``benchmarks/bench_sampling.py`` and ``python -m sparsesis.evaluation.evaluate distillation`` so that every
latency figure in ``results/`` is measured the same way.
"""
from __future__ import annotations

import os
import statistics
import time
from pathlib import Path

import numpy as np


def _first_processor(cpuinfo: str | Path) -> tuple[dict, set]:
    """The first processor's block of ``cpuinfo``: (model name, cpu family and model fields, its flags); empty
    where the file is unreadable (not Linux)."""
    fields, flags = {}, set()
    try:
        for line in Path(cpuinfo).read_text().splitlines():
            key, _, value = line.partition(":")
            key = key.strip()
            if key == "flags":
                flags = set(value.split())
            elif key in ("model name", "cpu family", "model") and key not in fields:
                fields[key] = value.strip()
            elif not line.strip() and fields:
                break  # the first processor's block is enough
    except OSError:
        pass
    return fields, flags


def cpu_flags(cpuinfo: str | Path = "/proc/cpuinfo") -> set[str]:
    """The processor's feature flags as the kernel lists them (``avx512_bf16``, ``amx_bf16``, ...)."""
    return _first_processor(cpuinfo)[1]


def cpu_description(cpuinfo: str | Path = "/proc/cpuinfo") -> str:
    """The processor a timing came from, in one line: its model name (and family / model numbers, since
    virtual machines often report a generic name), the cores this process may use, PyTorch's CPU capability and
    whether it reports native bf16 (AVX-512 BF16, AMX), e.g. ``"Intel(R) Xeon(R) Processor (family 6 model 143),
    2 cores, AVX512, AVX-512 BF16, AMX"``. Where ``cpuinfo`` is unreadable (not Linux), the platform's name."""
    import platform

    import torch

    fields, flags = _first_processor(cpuinfo)
    name = fields.get("model name") or platform.processor() or platform.machine()
    if "cpu family" in fields and "model" in fields:
        name += f" (family {fields['cpu family']} model {fields['model']})"
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    bf16 = ["AVX-512 BF16" if "avx512_bf16" in flags else "no AVX-512 BF16",
            "AMX" if "amx_bf16" in flags else "no AMX"] if flags else []
    return ", ".join([name, f"{cores} cores", torch.backends.cpu.get_cpu_capability(), *bf16])


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
