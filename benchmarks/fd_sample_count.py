r"""How much does a Fréchet distance over 100 generated images move with more samples? FD-EffNetL0 and KID of a
few diffusion samplers on the held-out layouts under 1..K class-wise mask seeds (100 layouts per seed).

    python benchmarks/fd_sample_count.py --mask-seeds 3 --out results/fd_sample_count.json \
        checkpoints/ours64-student4:4 checkpoints/ours64:4:4 checkpoints/ours64:4:2.5

Each SPEC is CHECKPOINT:STEPS[:GUIDANCE] (GUIDANCE left out: the checkpoint's own; a distilled student has
its scale built in). Per sampler: FD of each mask seed's 100 images on its own (the spread says how noisy one
100-image FD is), FD of the first 100, 200, ... images pooled, FD-infinity (Chong & Forsyth 2020: FD is
linear in 1/N, fitted over random subsets and read off at 1/N = 0), and KID over all images with its
standard deviation over subsets. The real side is always the 100 held-out photos. Mask seed k uses the
masks of ``python -m sparsesis.evaluation.evaluate table --mask-seeds K`` and generation seed 0, so the first 100
images are those of ``evaluate distillation`` and all of them those of the table.
"""
import argparse
import time

import numpy as np

from common import add_threads, set_threads  # (and the repository on sys.path)
from sparsesis.models.checkpoint import save_json_atomic
from sparsesis.data.sets import load_split
from sparsesis.evaluation.evaluate import generate_all
from sparsesis.data.inputs import held_out_inputs
from sparsesis.evaluation.generators import ModelGenerator
from sparsesis.evaluation.metrics import cached_features, fd_from_features, fd_infinity, feature_network, kid
from sparsesis.synthesizer import Synthesizer


def parse_spec(spec: str) -> tuple[str, int, float | None]:
    parts = spec.rsplit(":", 2)
    try:
        if len(parts) == 3 and parts[1].isdigit():
            return parts[0], int(parts[1]), float(parts[2])
        folder, steps = spec.rsplit(":", 1)
        return folder, int(steps), None
    except ValueError:
        raise SystemExit(f"spec {spec!r}: expected CHECKPOINT:STEPS[:GUIDANCE], e.g. checkpoints/ours64:4:2.5")


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("specs", nargs="+", help="CHECKPOINT:STEPS[:GUIDANCE]")
    p.add_argument("--mask-seeds", type=int, default=3)
    p.add_argument("--data", default=None, help="data folder (default: $SPARSESIS_DATA)")
    add_threads(p, 2)
    p.add_argument("--out", required=True)
    a = p.parse_args()
    specs = [(s, *parse_spec(s)) for s in a.specs]
    if a.mask_seeds < 2:
        raise SystemExit("--mask-seeds must be at least 2 (one seed is what evaluate distillation already reports)")
    set_threads(a.threads)
    net = feature_network("effnet-lite0")
    pairs = load_split("eval", 64, a.data)
    photos, _ = pairs.centre_arrays()
    real = cached_features(net, photos)
    layouts, _ = held_out_inputs(pairs, "random_mask", a.mask_seeds)
    per = len(photos)
    out = {"metric": net.metric, "kid_metric": f"KID-{net.name}", "input": "random_mask", "n_real": len(real),
           "mask_seeds": a.mask_seeds, "seed": 0, "precision": "bf16", "results": {}}
    for spec, folder, steps, guidance in specs:
        synth = Synthesizer.from_pretrained(folder, precision="bf16")
        t0 = time.time()
        feats = net(generate_all(ModelGenerator(synth, steps=steps, guidance=guidance, name=spec), layouts, 0,
                              spec, True))
        k_mean, k_std = kid(feats, real)
        out["results"][spec] = {
            "n": len(feats), "guidance": guidance if guidance is not None else synth.guidance_label,
            "fd_per_mask_seed": [round(fd_from_features(feats[k * per:(k + 1) * per], real), 2)
                                 for k in range(a.mask_seeds)],
            "fd_pooled": {str(n): round(fd_from_features(feats[:n], real), 2)
                          for n in range(per, len(feats) + 1, per)},
            "fd_infinity": round(fd_infinity(feats, real, np.random.default_rng(0)), 2),
            "kid": round(k_mean, 5), "kid_std": round(k_std, 5), "seconds": round(time.time() - t0)}
        print(spec, out["results"][spec], flush=True)
        save_json_atomic(a.out, out)


if __name__ == "__main__":
    main()
