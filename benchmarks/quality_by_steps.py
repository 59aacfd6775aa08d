r"""Quality of one diffusion checkpoint at several (steps, guidance, precision) settings: FD-EffNetL0 and KID.

    python benchmarks/quality_by_steps.py --checkpoint runs/ours64a/export --out runs/probe.json \
        4:1.5:bf16 8:1.5:bf16 128:1.5:bf16 [STEPS:GUIDANCE:PRECISION[:SAMPLER] ...]

A probe, not a timing benchmark: it answers questions such as "does the many-step sampler beat 4-step DDIM
under some guidance scale?" with the protocol of ``python -m sparsesis.evaluation.evaluate distillation`` (the held-out
layouts under class-wise random masks, mask seed = image index, generation seed 0, one mask seed). GUIDANCE
``-`` takes the checkpoint's default. The JSON is rewritten after every setting, so a cut run keeps its rows.
"""
import argparse
import time


from common import add_threads, set_threads  # (and the repository on sys.path)
from sparsesis.models.checkpoint import save_json_atomic
from sparsesis.data.sets import load_split
from sparsesis.evaluation.evaluate import evaluate
from sparsesis.evaluation.generators import ModelGenerator
from sparsesis.evaluation.metrics import feature_network
from sparsesis.synthesizer import Synthesizer


def parse_setting(spec: str) -> tuple[int, float | None, str, str | None]:
    parts = spec.split(":")
    if len(parts) not in (3, 4):
        raise SystemExit(f"setting {spec!r}: expected STEPS:GUIDANCE:PRECISION[:SAMPLER], e.g. 128:1.5:bf16")
    steps, guidance, precision = parts[:3]
    if precision not in ("fp32", "bf16"):
        raise SystemExit(f"setting {spec!r}: precision must be fp32 or bf16")
    return int(steps), None if guidance == "-" else float(guidance), precision, (parts[3] if len(parts) == 4 else None)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True)
    p.add_argument("--out", required=True)
    p.add_argument("--data", default=None, help="data folder (default: $SPARSESIS_DATA)")
    add_threads(p, 2)
    p.add_argument("settings", nargs="+", help="STEPS:GUIDANCE:PRECISION[:SAMPLER]")
    a = p.parse_args()
    settings = [(spec, *parse_setting(spec)) for spec in a.settings]
    set_threads(a.threads)
    net = feature_network("effnet-lite0")
    pairs = load_split("eval", 64, a.data)
    out = {"checkpoint": a.checkpoint, "metric": "FD-EffNetL0", "input": "random_mask", "seed": 0, "results": {}}
    for spec, steps, guidance, precision, sampler in settings:
        synth = Synthesizer.from_pretrained(a.checkpoint, precision=precision)
        if sampler:
            synth.default_sampler = sampler
        gen = ModelGenerator(synth, steps=steps, guidance=guidance, name=spec)
        t0 = time.time()
        m = evaluate({spec: gen}, pairs, ["random_mask"], feature_net=net, progress=False)["methods"][spec]["random_mask"]
        out["results"][spec] = {"fd": m["fd"], "kid": m["kid"], "seconds": round(time.time() - t0)}
        print(spec, out["results"][spec], flush=True)
        save_json_atomic(a.out, out)


if __name__ == "__main__":
    main()
