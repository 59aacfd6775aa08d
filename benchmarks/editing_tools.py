r"""The editing tools, measured on held-out layouts with the shipped 4-step student (bf16, 64x64).

    python benchmarks/editing_tools.py --model checkpoints/ours64-student4 --segmenter checkpoints/seg64 \
        --layouts 40 --out results/editing.json --reference-out results/reference.json

* Regional reroll (RePaint in the sampler): for each class-wise-masked held-out layout, a random rectangle
  (a quarter to a third of the side ... half of it) is generated again under a new seed. Reported per number
  of jumps back per step (``resample``): the largest change outside the region (must be 0), the mean change
  inside, and the seam: the gradient energy (Sobel magnitude) on the region's border ring, divided by the
  energy on the same ring in the unedited image (1 = no visible seam; a pasted-in patch without
  harmonisation scores far above 1).
* Keep the rest: sparse layouts (``share:0.05``, ``share:0.1``) get one added 10x10 stroke of a class they
  contain; the mean change away from the stroke (outside its neighbourhood) with plain regeneration at the
  same seed against "keep the rest" (0 by construction), and the change near it.
* Reference (SDEdit): each layout under another held-out photo as the reference, over strengths: mIoU of the
  segmenter on the result against the full layout, and the colour-histogram distance to the reference
  (half the L1 distance between normalised 8x8x8 RGB histograms: 0 same colours, 1 disjoint).
"""
import argparse
import json
import sys

import cv2
import numpy as np

from common import add_threads, command_line, set_threads  # (and the repository on sys.path)
from sparsesis import Synthesizer
from sparsesis.models.checkpoint import save_json_atomic
from sparsesis.data.sets import load_split
from sparsesis.editing import changed_region
from sparsesis.evaluation.metrics import sobel_energy
from sparsesis.data.inputs import make_input


def border_ring(region: np.ndarray) -> np.ndarray:
    """The pixels on either side of the region's edge (a 2-pixel ring)."""
    r = region.astype(np.uint8)
    k = np.ones((3, 3), np.uint8)
    return (cv2.dilate(r, k) > 0) & ~(cv2.erode(r, k) > 0)


def colour_distance(a: np.ndarray, b: np.ndarray, bins: int = 8) -> float:
    ha = cv2.calcHist([a], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
    hb = cv2.calcHist([b], [0, 1, 2], None, [bins] * 3, [0, 256] * 3).ravel()
    return float(0.5 * np.abs(ha / ha.sum() - hb / hb.sum()).sum())


def reroll_rows(synth, layouts, resamples):
    rows = {r: [] for r in resamples}
    for i, lay in enumerate(layouts):
        rng = np.random.default_rng(i)
        base = synth(lay, seed=i)
        h, w = rng.integers(16, 33, size=2)
        y, x = rng.integers(0, 64 - h), rng.integers(0, 64 - w)
        region = np.zeros((64, 64), bool)
        region[y:y + h, x:x + w] = True
        ring = border_ring(region)
        e_base = sobel_energy(base)[ring].mean()
        for r in resamples:
            out = synth.reroll(lay, base, region, seed=10_000 + i, resample=r)
            diff = np.abs(out.astype(int) - base)
            rows[r].append({"outside_max": int(diff[~region].max()), "inside_mean": float(diff[region].mean()),
                            "seam_ratio": float(sobel_energy(out)[ring].mean() / max(e_base, 1e-6))})
    # a pasted patch without harmonisation: the same region from an independent image
    pasted = []
    for i, lay in enumerate(layouts):
        rng = np.random.default_rng(i)
        base, other = synth(lay, seed=i), synth(lay, seed=10_000 + i)
        h, w = rng.integers(16, 33, size=2)
        y, x = rng.integers(0, 64 - h), rng.integers(0, 64 - w)
        region = np.zeros((64, 64), bool)
        region[y:y + h, x:x + w] = True
        ring = border_ring(region)
        out = np.where(region[..., None], other, base)
        pasted.append(float(sobel_energy(out)[ring].mean() / max(sobel_energy(base)[ring].mean(), 1e-6)))
    summary = {str(r): {k: round(float(np.mean([row[k] for row in rs])), 3) for k in rs[0]} for r, rs in rows.items()}
    for r, rs in rows.items():
        summary[str(r)]["outside_max"] = max(row["outside_max"] for row in rs)
    summary["pasted_without_harmonisation"] = {"seam_ratio": round(float(np.mean(pasted)), 3)}
    return summary


def keep_rest_rows(synth, pairs, shares, n):
    names = synth.classset.names
    out = {}
    for share in shares:
        plain_far, keep_far, keep_near, labelled = [], [], [], []
        for i in range(n):
            _, full = pairs.centre(i)
            lay = make_input(f"share:{share:g}", full, synth.classset.unknown_id, seed=i)
            rng = np.random.default_rng(i)
            cls = names.index("window") if (full == names.index("window")).any() else int(rng.choice(np.unique(full)))
            y, x = rng.integers(8, 46, size=2)
            edited = lay.copy()
            edited[y:y + 10, x:x + 10] = cls
            before = synth(lay, seed=i)
            plain = synth(edited, seed=i)
            kept = synth.edit(edited, before, lay, seed=i)
            near = changed_region(lay, edited, 64 // 8)
            plain_far.append(np.abs(plain.astype(float) - before)[~near].mean())
            keep_far.append(np.abs(kept.astype(float) - before)[~near].mean())
            keep_near.append(np.abs(kept.astype(float) - before)[near].mean())
            labelled.append(float((lay != synth.classset.unknown_id).mean()))
        out[f"share:{share:g}"] = {"labelled_share": round(float(np.mean(labelled)), 3),
                                   "plain_change_away_mean": round(float(np.mean(plain_far)), 2),
                                   "plain_change_away_max": round(float(np.max(plain_far)), 2),
                                   "keep_rest_change_away_mean": round(float(np.mean(keep_far)), 2),
                                   "keep_rest_change_near_mean": round(float(np.mean(keep_near)), 2), "n": n}
    return out


def reference_rows(synth, pairs, seg, strengths, n):
    from sparsesis.models.segmenter import mean_iou

    photos, fulls = pairs.centre_arrays()
    layouts = np.stack([make_input("random_mask", fulls[i], synth.classset.unknown_id, seed=i) for i in range(n)])
    rows = []
    for s in strengths:
        outs = np.stack([synth.sdedit(layouts[i], photos[(i + 1) % len(photos)], s, seed=i) for i in range(n)])
        refs = photos[[(i + 1) % len(photos) for i in range(n)]]
        rows.append({"strength": s, "miou": round(mean_iou(seg.predict(outs), fulls[:n], synth.classset.num_classes), 4),
                     "colour_distance_to_reference": round(float(np.mean([colour_distance(o, r) for o, r in zip(outs, refs)])), 4)})
        print(rows[-1], file=sys.stderr, flush=True)
    real = round(mean_iou(seg.predict(photos[:n]), fulls[:n], synth.classset.num_classes), 4)
    return rows, real


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default="checkpoints/ours64-student4")
    p.add_argument("--segmenter", default="checkpoints/seg64")
    p.add_argument("--data", default=None)
    p.add_argument("--layouts", type=int, default=40)
    p.add_argument("--resample", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--shares", type=float, nargs="+", default=[0.05, 0.1])
    p.add_argument("--strengths", type=float, nargs="+", default=[0.0, 0.2, 0.4, 0.6, 0.8, 1.0])
    add_threads(p, 2)
    p.add_argument("--out", default="results/editing.json")
    p.add_argument("--reference-out", default="results/reference.json")
    a = p.parse_args()
    set_threads(a.threads)
    from sparsesis.models.segmenter import Segmenter

    synth = Synthesizer.from_pretrained(a.model, precision="bf16")
    seg = Segmenter.from_pretrained(a.segmenter)
    pairs = load_split("eval", synth.image_size, a.data, progress=False)
    n = min(a.layouts, len(pairs))
    command = command_line(__file__)
    layouts = np.stack([make_input("random_mask", pairs.centre(i)[1], synth.classset.unknown_id, seed=i)
                        for i in range(n)])
    editing = {"model": a.model, "steps": synth.default_steps, "precision": "bf16", "n_layouts": n,
               "reroll": reroll_rows(synth, layouts, a.resample),
               "keep_the_rest": keep_rest_rows(synth, pairs, a.shares, n), "command": command,
               "protocol": __doc__.strip()}
    print(json.dumps({k: editing[k] for k in ("reroll", "keep_the_rest")}, indent=1))
    save_json_atomic(a.out, editing)
    rows, real = reference_rows(synth, pairs, seg, a.strengths, n)
    save_json_atomic(a.reference_out, {"model": a.model, "n_layouts": n, "input": "random_mask",
                                       "reference": "the next held-out photo ((i + 1) mod N)", "strengths": rows,
                                       "segmenter_miou_on_real_photos": real, "command": command,
                                       "protocol": "SDEdit: start from the reference noised to time = strength; "
                                                   "mIoU to the full layout, colour-histogram distance "
                                                   "(half L1 of 8x8x8 RGB histograms) to the reference"})


if __name__ == "__main__":
    main()
