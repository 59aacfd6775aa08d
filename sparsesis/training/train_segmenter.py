"""Train the layout-fidelity segmenter on the real training photos, or score a trained one on the real evaluation
photos (the ceiling a generator's images can reach).

    python -m sparsesis.training.train_segmenter --run-dir runs/seg64
    python -m sparsesis.training.train_segmenter --evaluate --model checkpoints/seg64 --out results/segmenter.json
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ..models.checkpoint import CheckpointError, save_model_dir
from ..models.schema import segmenter_config
from ..models.segmenter import Segmenter, SegmenterConfig, SegNet
from .loop import TrainingLoop


def train_segmenter(run: str | Path, data=None, size: int = 64, steps: int = 1500, minutes: float | None = None,
                    batch_size: int = 16, lr: float = 1e-3, seed: int = 0, progress: bool = True) -> dict:
    """Train on the real training photos (random crops, flips) and export ``<run>/export``."""
    from ..data.sets import load_split, photo_to_tensor

    pairs = load_split("train", size, data, progress=progress)
    cs = pairs.classset
    torch.manual_seed(seed)
    net = SegNet(SegmenterConfig(num_classes=cs.num_classes))
    opt = torch.optim.AdamW(net.parameters(), lr=lr, weight_decay=1e-4)
    sched = torch.optim.lr_scheduler.CosineAnnealingLR(opt, steps)
    t0, loss_avg = time.time(), None
    net.train()
    with TrainingLoop(steps, 0, "train segmenter", minutes, progress) as loop:
        while loop.running():
            rng = np.random.default_rng([seed, loop.step])
            idx = rng.integers(0, len(pairs), batch_size)
            views = [pairs.augmented(int(i), rng) for i in idx]
            x = photo_to_tensor(np.stack([v[0] for v in views]))
            y = torch.from_numpy(np.stack([v[1] for v in views]))
            loss = F.cross_entropy(net(x), y, ignore_index=cs.unknown_id)  # void pixels teach nothing
            opt.zero_grad()
            loss.backward()
            opt.step()
            sched.step()
            loss_avg = loss.item() if loss_avg is None else 0.98 * loss_avg + 0.02 * loss.item()
            loop.advance(loss=f"{loss_avg:.3f}")
    step = loop.step
    record = {"step": step, "images_seen": step * batch_size, "train_seconds": round(time.time() - t0, 1),
              "loss": loss_avg, "size": size}
    save_model_dir(Path(run) / "export", net.state_dict(), segmenter_config(net, cs, record))
    return record


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.training.train_segmenter", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--run-dir", default="runs/seg64")
    p.add_argument("--data", default=None)
    p.add_argument("--size", type=int, default=64)
    p.add_argument("--steps", type=int, default=1500)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--evaluate", action="store_true", help="score the exported segmenter on real held-out photos")
    p.add_argument("--model", default=None, help="with --evaluate: a segmenter model folder (default <run-dir>/export)")
    p.add_argument("--out", default=None, help="also write the scores (and the training record) to this JSON file")
    a = p.parse_args(argv)
    if not a.evaluate:
        print(json.dumps(train_segmenter(a.run_dir, a.data, a.size, a.steps, a.minutes), indent=2))
    from ..data.sets import load_split

    folder = Path(a.model) if a.model else Path(a.run_dir) / "export"
    try:
        seg = Segmenter.from_pretrained(folder)
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    photos, ids = load_split("eval", a.size, a.data, progress=False).centre_arrays()
    result = {"real_held_out": seg.score(photos, ids), "record": seg.config.get("record"),
              "model": str(folder),
              "command": "python -m sparsesis.training.train_segmenter " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
