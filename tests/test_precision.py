"""Inference precision: "auto" runs bf16 only where the CPU computes it natively (emulated bf16 is several times
slower than fp32), and training warns when asked for emulated bf16."""
import warnings

import pytest
import torch

from sparsesis.classes import LABELMEFACADE
from sparsesis.precision import native_bf16, resolve_precision
from sparsesis.training import mixed_precision
from sparsesis.upsampler import Upsampler, UpsamplerConfig, UpsamplerNet


@pytest.fixture(params=[False, True], ids=["avx2-only", "native-bf16"])
def cpu_bf16(request, monkeypatch):
    """Pretend the CPU lacks, or has, native bf16 (PyTorch's own capability probes), and that native bf16 is
    faster than fp32 here."""
    import sparsesis.precision as P

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: request.param)
    monkeypatch.setattr(torch.cpu, "_is_amx_tile_supported", lambda: False)
    monkeypatch.setattr(P, "cpu_bf16_speedup", lambda threads: 1.5)
    return request.param


def test_auto_keeps_fp32_where_native_bf16_is_slower(monkeypatch):
    """A CPU can report AVX-512 BF16 and still run the convolutions slower in bf16: auto measures."""
    import sparsesis.precision as P

    monkeypatch.setattr(torch.cpu, "_is_avx512_bf16_supported", lambda: True)
    monkeypatch.setattr(P, "cpu_bf16_speedup", lambda threads: 0.6)
    assert resolve_precision("auto") == "fp32"
    monkeypatch.setattr(P, "cpu_bf16_speedup", lambda threads: 1.4)
    assert resolve_precision("auto") == "bf16"


def test_the_bf16_timing_measures_something():
    from sparsesis.precision import cpu_bf16_speedup

    speedup = cpu_bf16_speedup(1)
    assert 0.01 < speedup < 100 and cpu_bf16_speedup(1) == speedup  # timed once per process


def test_auto_picks_bf16_only_where_it_is_native(cpu_bf16):
    assert native_bf16("cpu") is cpu_bf16
    assert resolve_precision("auto") == ("bf16" if cpu_bf16 else "fp32")
    assert resolve_precision("fp32") == "fp32" and resolve_precision("bf16") == "bf16"  # asked for: kept
    up = Upsampler(UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1)), LABELMEFACADE,
                   {}, precision="auto")
    assert up.precision == ("bf16" if cpu_bf16 else "fp32")


def test_unknown_precision_names_the_choices():
    with pytest.raises(ValueError, match="fp32, bf16, auto.*'fp16'"):
        resolve_precision("fp16")


def test_bf16_training_warns_only_where_bf16_is_emulated(cpu_bf16):
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        mixed_precision("bf16")
        mixed_precision("fp32")
    slow = [w for w in caught if "no native bf16" in str(w.message)]
    assert len(slow) == (0 if cpu_bf16 else 1)
