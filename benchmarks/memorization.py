r"""Memorization: the distance from each generated image, and from each held-out photo, to its nearest training
photo, in EfficientNet-Lite0 features and in pixels (64x64, training photos with their mirror images). A model
that copies its 845 training photos makes images closer to them than unseen photos are.

    python benchmarks/memorization.py --checkpoint checkpoints/ours64-student4 --out results/memorization.json

The generated images are the model's on the 100 held-out layouts (class-wise masks, mask seed 0, seed 0), as in
the evaluation; ``closer_than_held_out_p05`` is the share of generated images nearer to a training photo than
95% of the held-out photos are (5% by chance alone).
"""
import argparse

import numpy as np
from common import command_line, parse_with_data_threads_out, write_result  # (and the repository on sys.path)

from sparsesis.data.sets import load_split  # noqa: E402
from sparsesis.evaluation.evaluate import generate_all  # noqa: E402
from sparsesis.evaluation.generators import ModelGenerator  # noqa: E402
from sparsesis.data.inputs import held_out_inputs  # noqa: E402
from sparsesis.loader import load  # noqa: E402
from sparsesis.evaluation.metrics import cached_features, feature_network, nearest, pixel_rows  # noqa: E402
from sparsesis.data.nearest import summary  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", action="append", required=True, help="generator folder (repeatable)")
    a = parse_with_data_threads_out(p, argv)
    net = feature_network("effnet-lite0")
    models = [load(c, precision="fp32") for c in a.checkpoint]
    size = models[0].image_size
    train_photos, _ = load_split("train", size, a.data, progress=False).centre_arrays()
    eval_pairs = load_split("eval", size, a.data, progress=False)
    held_out, _ = eval_pairs.centre_arrays()
    train_feats, train_pix = cached_features(net, train_photos), pixel_rows(train_photos, with_flips=True)

    def distances(images):
        f, _ = nearest(net(images), train_feats)
        px, _ = nearest(pixel_rows(images), train_pix)
        return f, px

    real_f, real_px = distances(held_out)
    out = {"protocol": __doc__.strip().splitlines()[0], "n_train": len(train_photos), "size": size,
           "held_out_photos": {"features": summary(real_f), "pixels": summary(real_px)}, "generated": {},
           "command": command_line(__file__, argv)}
    layouts, _ = held_out_inputs(eval_pairs, "random_mask", 1)
    for folder, model in zip(a.checkpoint, models):
        images = generate_all(ModelGenerator(model, name=folder), layouts, 0, folder)
        f, px = distances(images)
        out["generated"][folder] = {
            "features": summary(f), "pixels": summary(px),
            "closer_than_held_out_p05": {"features": round(float((f < np.percentile(real_f, 5)).mean()), 3),
                                         "pixels": round(float((px < np.percentile(real_px, 5)).mean()), 3)}}
    write_result(a.out, out)


if __name__ == "__main__":
    main()
