"""Latency of one 64x64 image on this CPU: per network pass and per image, for several step counts.

    python benchmarks/bench_sampling.py --checkpoint checkpoints/ours64 [--steps 1 4 50] [--out results/latency.json]

Median of repeated runs, batch 1, guidance included when the checkpoint's default guidance is not 1.
"""
import argparse

from common import add_threads, set_threads, write_result  # (and the repository on sys.path)
from sparsesis import Synthesizer
from sparsesis.evaluation.latency import cpu_description, median_latency
from sparsesis.precision import INFERENCE_PRECISIONS, PRECISION_HELP


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--checkpoint", default="checkpoints/ours64")
    p.add_argument("--steps", type=int, nargs="+", default=[1, 4, 8, 50])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--precision", default="auto", choices=INFERENCE_PRECISIONS, help=PRECISION_HELP)
    add_threads(p, 2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    set_threads(a.threads)
    synth = Synthesizer.from_pretrained(a.checkpoint, precision=a.precision)
    rows = {}
    for steps in a.steps:
        med = median_latency(synth, steps, a.repeats)
        rows[str(steps)] = {"latency_s": round(med, 4), "per_step_ms": round(1000 * med / steps, 2)}
        print(f"{steps:>4} steps: {med * 1000:8.1f} ms/image  ({1000 * med / steps:.1f} ms/step, "
              f"guidance {synth.guidance_label})")
    result = {"checkpoint": a.checkpoint, "precision": synth.precision, "threads": a.threads,
              "guidance": synth.guidance_label, "cpu": cpu_description(), "steps": rows}
    write_result(a.out, result)


if __name__ == "__main__":
    main()
