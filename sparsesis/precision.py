"""The number format inference runs in: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"``.

bf16 autocast can only be fast where the processor computes bfloat16 natively (AVX-512 BF16 or AMX on x86, a
CUDA GPU); elsewhere PyTorch emulates it, several times slower than fp32 (``results/history/precision_avx2.json``). Even a
CPU that reports AVX-512 BF16 may run this project's convolutions slower in bf16 than in fp32 (``results/README.md``,
"bf16 on CPUs"), so on a CPU ``"auto"`` also times one convolution both ways (once per process, ~0.1 s) and picks
bf16 only where it is native *and* faster: the demo stays interactive on any CPU.
"""
from __future__ import annotations

import functools
import time

import torch

INFERENCE_PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_HELP = "as the demo runs (auto: bf16 where the CPU computes it natively and faster, fp32 elsewhere)"


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 in hardware (x86: AVX-512 BF16 or AMX tiles)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # PyTorch's own CPU capability probes
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


@functools.lru_cache(maxsize=None)
def cpu_bf16_speedup(threads: int) -> float:
    """fp32 time over bf16-autocast time of a 3x3 convolution like the UNet's (64 channels at 64x64, batch 1,
    channels_last), best of 5 each on ``threads`` threads: above 1, bf16 is faster on this CPU."""
    conv = torch.nn.Conv2d(64, 64, 3, padding=1).eval().to(memory_format=torch.channels_last)
    x = torch.randn(1, 64, 64, 64).contiguous(memory_format=torch.channels_last)

    def best(bf16: bool) -> float:
        times = []
        with torch.no_grad(), torch.autocast("cpu", dtype=torch.bfloat16, enabled=bf16):
            for i in range(7):
                t0 = time.perf_counter()
                conv(x)
                if i >= 2:  # the first calls build the kernels
                    times.append(time.perf_counter() - t0)
        return min(times)

    return best(False) / best(True)


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` becomes bf16 where ``device`` has it natively (on a CPU: and computes
    it faster than fp32, ``cpu_bf16_speedup``), fp32 elsewhere."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        if not native_bf16(device):
            return "fp32"
        if torch.device(device).type == "cpu" and cpu_bf16_speedup(torch.get_num_threads()) < 1.1:
            return "fp32"
        return "bf16"
    return precision
