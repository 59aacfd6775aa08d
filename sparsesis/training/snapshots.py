r"""Average the weights of several snapshots of one training run into a new model folder (a "model soup" along
one run: it smooths the snapshot-to-snapshot swings of an adversarial training).

    python -m sparsesis.training.snapshots --out runs/upsampler4x/average_500_1500 \
        runs/upsampler4x/snapshots/step_000{500,750} runs/upsampler4x/snapshots/step_00{1000,1250,1500}

The folders must share one architecture (the first one's config is kept, with ``averaged_from`` added to it).
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

import torch

from ..models.checkpoint import CheckpointError, load_model_dir, save_model_dir


def average_snapshots(folders: list[str | Path], out: str | Path) -> Path:
    """The mean of the folders' weights, saved as a model folder ``out``; ValueError for mixed architectures."""
    configs, weights = zip(*(load_model_dir(f) for f in folders))
    if any(c["model"] != configs[0]["model"] for c in configs):
        raise ValueError("the folders hold different architectures; average snapshots of one run only")
    mean = {k: torch.stack([w[k] for w in weights]).mean(0) for k in weights[0]}
    save_model_dir(out, mean, {**configs[0], "averaged_from": [str(f) for f in folders]})
    return Path(out)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.training.snapshots", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("folders", nargs="+", help="model folders of one run")
    p.add_argument("--out", required=True, help="the averaged model folder")
    a = p.parse_args(argv)
    try:
        average_snapshots(a.folders, a.out)
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    print(json.dumps({"out": a.out, "averaged": len(a.folders)}))


if __name__ == "__main__":
    main()
