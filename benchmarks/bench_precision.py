"""Latency of one 256x256 picture in fp32 and in bf16 autocast on this CPU, and what ``precision="auto"`` picks.

    python benchmarks/bench_precision.py [--threads 2] [--repeats 5] [--out results/precision_<capability>.json]

bf16 only pays where the CPU computes it natively (AVX-512 BF16 or AMX); elsewhere PyTorch emulates it and it
is several times slower than fp32. Times the 4-step student at 64 px and the 4x upsampler at batch 1 (median of
``--repeats`` runs after a warm-up). Run it with nothing else on the CPU.
"""
import argparse
import json
import os

import numpy as np
import torch

from common import REPO, add_threads, command_line, set_threads, write_result  # noqa: E402  (and the repository on sys.path)

from sparsesis.evaluation.latency import cpu_description, cpu_flags, median_latency, median_seconds, probe_layout  # noqa: E402
from sparsesis.loader import load  # noqa: E402
from sparsesis.precision import native_bf16, resolve_precision  # noqa: E402
from sparsesis.models.upsampler import Upsampler  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--generator", default="checkpoints/ours64-student4")
    p.add_argument("--upsampler", default="checkpoints/upsampler4x")
    add_threads(p, 2)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--out", default=None, help="default: results/precision_<cpu capability>.json")
    a = p.parse_args(argv)
    set_threads(a.threads)
    capability = torch.backends.cpu.get_cpu_capability()
    rows = {}
    for precision in ("fp32", "bf16"):
        gen = load(a.generator, precision=precision)
        up = Upsampler.from_pretrained(a.upsampler, precision=precision)
        lay = probe_layout(gen.classset.num_classes, gen.classset.unknown_id, gen.image_size)
        image = gen(lay, seed=0)
        big_layout = np.kron(lay, np.ones((up.scale, up.scale), np.int64))
        student = median_latency(gen, gen.default_steps, a.repeats)
        upscale = median_seconds(lambda _: up(image, big_layout), a.repeats)
        rows[precision] = {"student_s": round(student, 4), "upsampler_s": round(upscale, 4),
                           "picture_256_s": round(student + upscale, 4)}
        print(precision, json.dumps(rows[precision]), flush=True)
    out = {"cpu": cpu_description(), "cpu_capability": capability, "native_bf16": native_bf16("cpu"),
           "auto": resolve_precision("auto"), "threads": a.threads, "repeats": a.repeats, "generator": a.generator,
           "upsampler": a.upsampler,
           "latency": rows, "bf16_over_fp32": round(rows["bf16"]["picture_256_s"] / rows["fp32"]["picture_256_s"], 2),
           "command": command_line(__file__, argv)}
    # kernels held below what the CPU has (ATEN_CPU_CAPABILITY=avx2 ONEDNN_MAX_CPU_ISA=AVX2 on an AVX-512 CPU):
    # a stand-in for an older CPU, not one; the file says so
    forced = {k: os.environ[k] for k in ("ATEN_CPU_CAPABILITY", "ONEDNN_MAX_CPU_ISA") if os.environ.get(k)}
    if forced:
        out["forced_kernels"] = forced
    # AVX-512 CPUs with and without AMX differ most in bf16, so they get a file each
    amx = "_amx" if "amx_bf16" in cpu_flags() else ""
    write_result(a.out or REPO / "results" / f"precision_{capability.lower()}{amx}.json", out,
                 models=[a.generator, a.upsampler])


if __name__ == "__main__":
    main()
