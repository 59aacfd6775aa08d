r"""Average the weights of several snapshots of one training run into a new model folder (a "model soup" along
one run: it smooths the snapshot-to-snapshot swings of an adversarial training).

    python benchmarks/average_snapshots.py --out runs/upsampler4x_level_init/average_500_1500 \
        runs/upsampler4x_level_init/snapshots/step_000{500,750}  runs/upsampler4x_level_init/snapshots/step_00{1000,1250,1500}

The folders must share one architecture (the first one's config is kept, with ``averaged_from`` added to it).
"""
import argparse
import json
import sys

import torch

import common  # noqa: F401,E402  (the repository on sys.path)

from sparsesis.checkpoint import load_model_dir, save_model_dir  # noqa: E402


def main(argv=None) -> None:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="model folders of one run")
    p.add_argument("--out", required=True, help="the averaged model folder")
    a = p.parse_args(argv)
    configs, weights = zip(*(load_model_dir(f) for f in a.folders))
    if any(c["model"] != configs[0]["model"] for c in configs):
        sys.exit("error: the folders hold different architectures; average snapshots of one run only")
    mean = {k: torch.stack([w[k] for w in weights]).mean(0) for k in weights[0]}
    config = {**configs[0], "averaged_from": list(a.folders)}
    save_model_dir(a.out, mean, config)
    print(json.dumps({"out": a.out, "averaged": len(a.folders)}))


if __name__ == "__main__":
    main()
