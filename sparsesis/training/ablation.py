"""The masking ablation (the paper's first claim, put to the test): the same diffusion model and budget
trained on (a) dense layouts, (b) one shared random mask for all classes, (c) class-wise random masks,
each evaluated on class-wise-masked held-out layouts, scribbles and dense layouts.

    python -m sparsesis.training.ablation --run-root runs/ablation --steps-each 3000 --out results/ablation.json

Runs resume (re-run the command); a finished variant is not retrained. Beside the JSON it writes
``<out>_samples.npz``: a few held-out inputs of each kind and every variant's image for them (seed 0), which
the notebook shows as a picture grid without the variants' weights.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import save_npz_atomic
from .train import TrainConfig, train

VARIANTS = {"dense": "none", "shared_mask": "shared", "classwise": "classwise"}


def run_ablation(run_root, data=None, preset="64", image_size=None, steps_each=3000, batch_size=16, seed=0,
                 kinds=("random_mask", "scribble", "dense"), mask_seeds=1, limit=None, segmenter=None,
                 sample_steps=25, progress=True, threads=None, samples_out=None, n_samples=4) -> dict:
    from ..data.sets import load_split
    from ..evaluation.evaluate import evaluate
    from ..data.inputs import held_out_inputs
    from ..evaluation.generators import ModelGenerator
    from ..evaluation.metrics import feature_network
    from ..synthesizer import Synthesizer

    root = Path(run_root)
    records = {}
    for variant, masking in VARIANTS.items():
        cfg = TrainConfig(run=str(root / variant), data=data, preset=preset, image_size=image_size,
                          batch_size=batch_size, steps=steps_each, masking=masking, seed=seed,
                          sample_every=10 ** 9, threads=threads)
        records[variant] = train(cfg)
    net = feature_network("effnet-lite0")
    variants, samples, info, ceiling = {}, {}, {}, None
    for variant in VARIANTS:
        synth = Synthesizer.from_pretrained(root / variant / "export")
        pairs = load_split("eval", synth.image_size, data, progress=False)
        gen = ModelGenerator(synth, steps=sample_steps, name=variant)
        res = evaluate({variant: gen}, pairs, list(kinds), mask_seeds=mask_seeds, feature_net=net, limit=limit,
                       seed=seed, progress=progress, segmenter=segmenter)
        variants[variant] = res["methods"][variant]
        metric, info[variant] = res["metric"], res["info"][variant]
        ceiling = res.get("segmenter_real_miou")
        for kind in kinds:  # the same first held-out inputs for every variant: the picture grid
            layouts, _ = held_out_inputs(pairs, kind, 1, n_samples)
            samples[f"{kind}/layouts"] = layouts
            samples[f"{kind}/{variant}"] = gen.generate(layouts, seed)
    if samples_out is not None:
        save_npz_atomic(samples_out, samples, compressed=True)
    rec = records["classwise"]
    budget = (f"each variant: {steps_each} steps of batch {batch_size} ({rec['images_seen']} images), preset {preset}"
              f" at {image_size or 'the preset size'}px, seed {seed}; sampling DDIM {sample_steps} steps")
    out = {"metric": metric, "variants": variants, "budget": budget, "info": info,
           "train_hours": {v: round(r["train_seconds"] / 3600, 3) for v, r in records.items()}}
    if ceiling is not None:
        out["segmenter_real_miou"] = ceiling  # the segmenter on the real held-out photos at this size
    return out


def samples_path(out) -> Path:
    """Where the picture grid's arrays go beside the JSON: results/ablation.json -> results/ablation_samples.npz."""
    out = Path(out)
    return out.with_name(out.stem + "_samples.npz")


def load_samples(path) -> dict:
    """-> {kind: {"layouts": (N, S, S) ids, <variant>: (N, S, S, 3) uint8, ...}}"""
    import numpy as np

    out: dict = {}
    with np.load(path) as f:
        for key in f.files:
            kind, what = key.split("/", 1)
            out.setdefault(kind, {})[what] = f[key]
    return out


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.training.ablation", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-root", default="runs/ablation")
    p.add_argument("--data", default=None)
    p.add_argument("--preset", default="64")
    p.add_argument("--image-size", type=int, default=None)
    p.add_argument("--steps-each", type=int, default=3000)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--mask-seeds", type=int, default=1)
    p.add_argument("--limit", type=int, default=None)
    p.add_argument("--sample-steps", type=int, default=25)
    p.add_argument("--segmenter", default=None)
    p.add_argument("--threads", type=int, default=None)
    p.add_argument("--out", required=True)
    a = p.parse_args(argv)
    seg = None
    if a.segmenter:
        from ..models.segmenter import Segmenter

        seg = Segmenter.from_pretrained(a.segmenter)
    out = run_ablation(a.run_root, a.data, a.preset, a.image_size, a.steps_each, a.batch_size, a.seed,
                       mask_seeds=a.mask_seeds, limit=a.limit, segmenter=seg, sample_steps=a.sample_steps,
                       threads=a.threads, samples_out=samples_path(a.out))
    out["command"] = "python -m sparsesis.training.ablation " + " ".join(argv if argv is not None else sys.argv[1:])
    Path(a.out).parent.mkdir(parents=True, exist_ok=True)
    Path(a.out).write_text(json.dumps(out, indent=2) + "\n")
    print(json.dumps(out, indent=2))


if __name__ == "__main__":
    main()
