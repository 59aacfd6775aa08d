"""Inference precision: "auto" runs bf16 only where the CPU computes it natively (emulated bf16 is several times
slower than fp32), and training warns when asked for emulated bf16."""
import warnings

import pytest
import torch

from sparsesis.data.classes import LABELMEFACADE
from sparsesis.precision import native_bf16, resolve_precision
from sparsesis.training.loop import mixed_precision
from sparsesis.models.upsampler import Upsampler, UpsamplerConfig, UpsamplerNet


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


CPUINFO = """processor\t: 0
vendor_id\t: GenuineIntel
cpu family\t: 6
model\t\t: 143
model name\t: Intel(R) Xeon(R) Platinum 8480+
flags\t\t: fpu sse2 avx2 avx512f {extra}

processor\t: 1
model name\t: another name
"""


@pytest.mark.parametrize("extra, tail", [("avx512_bf16 amx_bf16 amx_tile", "AVX-512 BF16, AMX"),
                                         ("avx512_bf16", "AVX-512 BF16, no AMX"), ("", "no AVX-512 BF16, no AMX")])
def test_the_cpu_a_timing_came_from_is_named_with_its_bf16_support(tmp_path, extra, tail):
    from sparsesis.evaluation.latency import cpu_description, cpu_flags

    info = tmp_path / "cpuinfo"
    info.write_text(CPUINFO.format(extra=extra))
    assert ("amx_bf16" in cpu_flags(info)) == ("amx_bf16" in extra) and "avx512f" in cpu_flags(info)
    text = cpu_description(info)
    assert text.startswith("Intel(R) Xeon(R) Platinum 8480+ (family 6 model 143), ")  # the first processor's block
    assert text.endswith(f"{torch.backends.cpu.get_cpu_capability()}, {tail}")
    assert " cores, " in text


def test_without_cpuinfo_the_platform_still_names_the_cpu(tmp_path):
    from sparsesis.evaluation.latency import cpu_description

    text = cpu_description(tmp_path / "missing")
    assert "cores" in text and "BF16" not in text and not text.startswith(",")
