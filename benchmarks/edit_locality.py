"""How local is an edit? Add one window stroke to a sparse layout, keep the seed, and measure how much the
picture changes near the stroke and elsewhere, against how much it changes with a new seed.

    python benchmarks/edit_locality.py checkpoints/ours64 checkpoints/ours64-student4 --out results/edit_locality.json

The layout and stroke are those of ``tests/test_editing.py`` (sky band, a few building strokes, road; a
10x10 window stroke in the middle); "near" is the stroke plus a 4-pixel margin. Per model and seed: mean
absolute change (0-255) near and elsewhere, and elsewhere divided by the change a new seed (seed + 100)
makes to the same layout there. Steps: the model's default, at most 8 (as the test).
"""
import argparse

import numpy as np

from common import add_threads, set_threads, write_result  # (and the repository on sys.path)
from sparsesis import Synthesizer


def layouts(synth: Synthesizer):
    names = synth.classset.names
    sky, building, road, window = (names.index(n) for n in ("sky", "building", "road", "window"))
    lay = np.full((64, 64), synth.classset.unknown_id)
    lay[:12, 4:60] = sky
    lay[18:44, 10:54:6] = building
    lay[54:, 4:60] = road
    edited = lay.copy()
    edited[24:34, 24:34] = window
    near = np.zeros((64, 64), bool)
    near[20:38, 20:38] = True
    return lay, edited, near


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("models", nargs="+")
    p.add_argument("--seeds", type=int, default=6)
    add_threads(p, 2)
    p.add_argument("--out", default=None)
    a = p.parse_args()
    set_threads(a.threads)
    out = {"protocol": __doc__.strip().splitlines()[0], "precision": "bf16", "models": {}}
    for folder in a.models:
        synth = Synthesizer.from_pretrained(folder, precision="bf16")
        steps = min(synth.default_steps, 8)
        lay, edited, near = layouts(synth)
        rows = []
        for seed in range(a.seeds):
            base = synth(lay, steps=steps, seed=seed).astype(float)
            edit = np.abs(synth(edited, steps=steps, seed=seed).astype(float) - base).mean(-1)
            reseed = np.abs(synth(lay, steps=steps, seed=seed + 100).astype(float) - base).mean(-1)
            rows.append({"seed": seed, "near": round(float(edit[near].mean()), 2),
                         "elsewhere": round(float(edit[~near].mean()), 2),
                         "elsewhere_vs_new_seed": round(float(edit[~near].mean() / reseed[~near].mean()), 3)})
        summary = {k: round(float(np.mean([r[k] for r in rows])), 3) for k in ("near", "elsewhere", "elsewhere_vs_new_seed")}
        summary["elsewhere_max"] = max(r["elsewhere"] for r in rows)
        out["models"][folder] = {"steps": steps, "mean": summary, "per_seed": rows}
        print(folder, steps, summary, flush=True)
    write_result(a.out, out, indent=1)


if __name__ == "__main__":
    main()
