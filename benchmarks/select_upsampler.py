r"""Choose an upsampler snapshot, and the degradation level for generated images, on training photos only.

    python benchmarks/select_upsampler.py --folder checkpoints/upsampler4x \
        --folder runs/upsampler4x_level/snapshots/step_004000 ... --levels 0 0.25 0.5 0.75 1 \
        --out results/upsampler_selection.json

The held-out photos stay for ``python -m sparsesis.evaluation.evaluate upsampler``: a snapshot picked on them would make
its figures optimistic. Two disjoint draws of 100 training photos (seed 0): the first is upscaled (area-
downsampled to 64 and upscaled: ``real``; the 4-step student's images for their class-wise-masked layouts,
upscaled at each level: ``generated``), the second is the reference. The score is the evaluation's patch FD
(four 64x64 crops an image, FD-EffNetL0). ``--noise-scales`` scores a noise-input network at several noise
scales (``Upsampler.noise_scale``), ``--detail-scales`` at several detail scales (``Upsampler.detail_scale``), one
row each (through ``Upsampler.with_settings``); ``psnr_back`` is how close each output's 4x area-downsample stays to its input (the evaluation's check that the upsampler adds detail and does not repaint). Rows are merged
into ``--out`` by folder, noise scale, back-projection rounds and detail scale
(``commands`` lists every run), so snapshots can be added as a training goes on.
"""
import argparse
import json
from pathlib import Path

import numpy as np

from common import add_threads, command_line, set_threads  # noqa: E402  (and the repository on sys.path)

from sparsesis.models.checkpoint import save_json_atomic  # noqa: E402
from sparsesis.data.sets import PairSet, load_split  # noqa: E402
from sparsesis.evaluation.evaluate_upsampler import patch_positions, patches, psnr_back, upsampler_inputs  # noqa: E402
from sparsesis.loader import load  # noqa: E402
from sparsesis.evaluation.metrics import fd_from_features, feature_network  # noqa: E402
from sparsesis.precision import INFERENCE_PRECISIONS, PRECISION_HELP  # noqa: E402
from sparsesis.models.upsampler import Upsampler, bicubic_up  # noqa: E402


def subset(pairs: PairSet, idx) -> PairSet:
    return PairSet([pairs.photos[i] for i in idx], [pairs.labels[i] for i in idx], [pairs.stems[i] for i in idx],
                   pairs.classset, pairs.size)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--folder", action="append", required=True, help="an upsampler model folder (repeatable)")
    p.add_argument("--levels", type=float, nargs="+", default=[0.0, 0.25, 0.5, 0.75, 1.0],
                   help="degradation levels tried on generated images (upsamplers with a level input)")
    p.add_argument("--generator", default="checkpoints/ours64-student4")
    p.add_argument("--n", type=int, default=100, help="photos upscaled, and photos in the reference")
    p.add_argument("--data", default=None)
    add_threads(p, None)
    p.add_argument("--precision", default="auto", choices=INFERENCE_PRECISIONS, help=PRECISION_HELP)
    p.add_argument("--back-projection", type=int, default=None,
                   help="rounds of back-projection for every folder (default: each folder's own)")
    p.add_argument("--noise-scales", type=float, nargs="+", default=None,
                   help="noise scales tried for every noise-input folder, one row each (default: each folder's own)")
    p.add_argument("--detail-scales", type=float, nargs="+", default=None,
                   help="detail scales tried for every folder, one row each (default: each folder's own)")
    p.add_argument("--out", default="results/upsampler_selection.json")
    a = p.parse_args(argv)
    set_threads(a.threads)

    pairs = load_split("train", 256, a.data)
    order = np.random.default_rng(0).permutation(len(pairs))
    inputs = upsampler_inputs(subset(pairs, order[:a.n]), load(a.generator, precision=a.precision), a.n)
    reference, _ = subset(pairs, order[a.n:2 * a.n]).centre_arrays()
    net = feature_network("effnet-lite0")
    pos = patch_positions(reference.shape[1])
    ref_feats = net(patches(reference, pos))
    score = lambda images: round(fd_from_features(net(patches(images, pos)), ref_feats), 2)  # noqa: E731

    out_path = Path(a.out)
    old = json.loads(out_path.read_text()) if out_path.is_file() else {}
    # rows scored before detail scales existed were at the network's own output, 1
    key = lambda r: (r["folder"], r.get("noise_scale"), r["back_projection"], r.get("detail_scale", 1.0))  # noqa: E731
    rows = {key(r): r for r in old.get("rows", [])}
    out = {"protocol": f"patch FD-EffNetL0 (four 64x64 crops an image): {a.n} training photos upscaled against "
                       f"{a.n} other training photos; real = downsampled to 64 (level 0), generated = the student's images "
                       "for their class-wise-masked layouts, at each level",
           "bicubic": {"real": score(bicubic_up(inputs["real_small"])),
                       "generated": score(bicubic_up(inputs["generated_small"]))},
           "commands": old.get("commands", []) + [command_line(__file__, argv)]}
    for folder in a.folder:
        up = Upsampler.from_pretrained(folder, precision=a.precision, back_projection=a.back_projection)
        lay = inputs["layouts"]
        levels = a.levels if up.level is not None else [None]  # without a level input: one row, "-"
        real_level = 0.0 if up.level is not None else None  # photos reduced to 64 px are clean
        bp = up.back_projection
        scales = [None]  # a network without noise planes: one row, without a noise scale
        if up.net.cfg.noise_input:
            scales = [up.noise_scale] if a.noise_scales is None else a.noise_scales
        for ns, ds in ((ns, ds) for ns in scales for ds in (a.detail_scales or [up.detail_scale])):
            at = up.with_settings(noise_scale=ns, detail_scale=ds)
            real = at.with_settings(level=real_level)(inputs["real_small"], lay)
            generated = {"-" if lv is None else str(lv): at.with_settings(level=lv)(inputs["generated_small"], lay)
                         for lv in levels}
            row = {"real": score(real), "generated": {lv: score(im) for lv, im in generated.items()},
                   # how far the output's 4x area-downsample is from the input (dB): it adds detail, not a repaint
                   "psnr_back": {"real": psnr_back(real, inputs["real_small"]),
                                 "generated": {lv: psnr_back(im, inputs["generated_small"])
                                               for lv, im in generated.items()}}}
            row = {"folder": folder, "step": up.config.get("record", {}).get("step"), "precision": up.precision,
                   "back_projection": bp, **({} if ns is None else {"noise_scale": ns}), "detail_scale": ds, **row}
            rows[key(row)] = row
            print(json.dumps(row), flush=True)
            # after every row: a stopped selection keeps what it scored
            save_json_atomic(out_path, {**out, "rows": sorted(rows.values(),
                                                              key=lambda r: (r["folder"], r.get("noise_scale") or 0,
                                                                             r.get("detail_scale", 1.0)))})


if __name__ == "__main__":
    main()
