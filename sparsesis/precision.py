"""The number format inference runs in: ``"fp32"``, ``"bf16"`` (autocast) or ``"auto"``.

bf16 autocast is only fast where the processor computes bfloat16 natively (AVX-512 BF16 or AMX on x86, a CUDA
GPU). Elsewhere PyTorch emulates it: on an AVX2-only CPU a 256x256 picture takes ~5x longer in bf16 than in
fp32. ``"auto"`` picks bf16 where it is native and fp32 otherwise, so the demo stays interactive on any CPU.
"""
from __future__ import annotations

import torch

INFERENCE_PRECISIONS = ("fp32", "bf16", "auto")
PRECISION_HELP = "as the demo runs (auto: bf16 where the CPU computes it natively, fp32 elsewhere)"  # for --precision


def native_bf16(device: str | torch.device = "cpu") -> bool:
    """Whether ``device`` computes bfloat16 in hardware (x86: AVX-512 BF16 or AMX tiles)."""
    device = torch.device(device)
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type != "cpu":
        return False
    probes = ("_is_avx512_bf16_supported", "_is_amx_tile_supported")  # PyTorch's own CPU capability probes
    return any(bool(getattr(torch.cpu, name, lambda: False)()) for name in probes)


def resolve_precision(precision: str, device: str | torch.device = "cpu") -> str:
    """``"fp32"`` or ``"bf16"``: ``"auto"`` becomes bf16 where ``device`` has it natively, fp32 elsewhere."""
    if precision not in INFERENCE_PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(INFERENCE_PRECISIONS)}, got {precision!r}")
    if precision == "auto":
        return "bf16" if native_bf16(device) else "fp32"
    return precision
