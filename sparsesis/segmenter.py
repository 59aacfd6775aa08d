"""A small segmentation network for layout fidelity (the pix2pix "FCN-score" idea): segment generated
images and compare with the full held-out label maps by per-class and mean IoU.

    python -m sparsesis.segmenter --run-dir runs/seg64 --minutes 20      # trains on the real training photos
    python -m sparsesis.segmenter --run-dir runs/seg64 --evaluate        # its own mIoU on the real held-out photos

The segmenter's mIoU on real held-out photos is the ceiling a generator can reach under this metric.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import CheckpointError, load_model_dir, save_model_dir
from .classes import ClassSet
from .schema import SEGMENTER_KIND as SEG_KIND, segmenter_config
from .training import TrainingLoop

@dataclass(frozen=True)
class SegmenterConfig:
    num_classes: int = 9
    base_channels: int = 32
    levels: int = 3

    def to_dict(self) -> dict:
        return asdict(self)


def _block(cin, cout):
    return nn.Sequential(nn.Conv2d(cin, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU(),
                         nn.Conv2d(cout, cout, 3, padding=1), nn.BatchNorm2d(cout), nn.ReLU())


class SegNet(nn.Module):
    """A compact U-Net: (B, 3, H, W) in [-1, 1] -> (B, K, H, W) logits."""

    def __init__(self, cfg: SegmenterConfig):
        super().__init__()
        self.cfg = cfg
        ch = [cfg.base_channels * 2 ** i for i in range(cfg.levels + 1)]
        self.downs = nn.ModuleList([_block(3, ch[0])] + [_block(ch[i], ch[i + 1]) for i in range(cfg.levels)])
        self.ups = nn.ModuleList([_block(ch[i + 1] + ch[i], ch[i]) for i in reversed(range(cfg.levels))])
        self.out = nn.Conv2d(ch[0], cfg.num_classes, 1)

    def forward(self, x):
        skips = []
        for i, d in enumerate(self.downs):
            x = d(x if i == 0 else F.max_pool2d(x, 2))
            skips.append(x)
        skips.pop()
        for u in self.ups:
            x = u(torch.cat([F.interpolate(x, scale_factor=2, mode="nearest"), skips.pop()], 1))
        return self.out(x)


def iou_per_class(pred: np.ndarray, true: np.ndarray, num_classes: int) -> np.ndarray:
    """IoU of each class over a whole set (intersections and unions summed over images); NaN where a class
    is in neither prediction nor truth."""
    pred, true = np.asarray(pred).reshape(-1), np.asarray(true).reshape(-1)
    labelled = true < num_classes  # UNKNOWN (a data set's void pixels) is no class: left out
    pred, true = pred[labelled], true[labelled]
    conf = np.bincount(true * num_classes + pred, minlength=num_classes ** 2).reshape(num_classes, num_classes)
    inter = np.diag(conf).astype(np.float64)
    union = conf.sum(0) + conf.sum(1) - np.diag(conf)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(union > 0, inter / union, np.nan)


def mean_iou(pred, true, num_classes: int) -> float:
    return float(np.nanmean(iou_per_class(pred, true, num_classes)))


class Segmenter:
    def __init__(self, net: SegNet, classset: ClassSet, config: dict):
        self.net, self.classset, self.config = net.eval(), classset, config

    @classmethod
    def from_pretrained(cls, path) -> "Segmenter":
        config, weights = load_model_dir(path)
        if config.get("kind") != SEG_KIND:
            raise ValueError(f"{path} is not a segmenter checkpoint (kind {config.get('kind')!r})")
        net = SegNet(SegmenterConfig(**config["model"]))
        net.load_state_dict(weights)
        return cls(net, ClassSet.from_dict(config["classes"]), config)

    @torch.no_grad()
    def predict(self, images: np.ndarray, batch_size: int = 50) -> np.ndarray:
        """(N, H, W, 3) uint8 -> (N, H, W) int64 class ids.

        Images of another size than the one the segmenter was trained at (a 32 px ablation model or a 256 px
        upsampled image scored with the 64 px segmenter) are resized to that size and the class scores resized
        back."""
        from .data import photo_to_tensor

        images = np.asarray(images)
        if images.ndim != 4 or images.shape[-1] != 3:
            raise ValueError(f"expected images of shape (N, H, W, 3), got {images.shape}")
        size, (h, w) = self.trained_size, images.shape[1:3]
        out = []
        for i in range(0, len(images), batch_size):
            x = photo_to_tensor(images[i:i + batch_size])
            if size and (h, w) != (size, size):
                # shrinking: antialiased, as the training photos were area-downsampled (plain bilinear would alias
                # the fine detail of a 256 px image into noise the segmenter never saw)
                x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False, antialias=h > size)
            logits = self.net(x)
            if logits.shape[-2:] != (h, w):
                logits = F.interpolate(logits, size=(h, w), mode="bilinear", align_corners=False)
            out.append(logits.argmax(1).numpy())
        return np.concatenate(out).astype(np.int64)

    @property
    def trained_size(self) -> int | None:
        """The image size the segmenter was trained at (None if the checkpoint does not say)."""
        size = self.config.get("record", {}).get("size")
        return int(size) if size else None

    def score(self, images: np.ndarray, true: np.ndarray) -> dict:
        per = iou_per_class(self.predict(images), true, self.classset.num_classes)
        return {"miou": round(float(np.nanmean(per)), 4),
                "per_class": {n: (None if np.isnan(v) else round(float(v), 4)) for n, v in zip(self.classset.names, per)}}


def train_segmenter(run: str | Path, data=None, size: int = 64, steps: int = 1500, minutes: float | None = None,
                    batch_size: int = 16, lr: float = 1e-3, seed: int = 0, progress: bool = True) -> dict:
    """Train on the real training photos (random crops, flips) and export ``<run>/export``."""
    from .data import load_split, photo_to_tensor

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
    p = argparse.ArgumentParser(prog="python -m sparsesis.segmenter", description=__doc__,
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
    from .data import load_split

    folder = Path(a.model) if a.model else Path(a.run_dir) / "export"
    try:
        seg = Segmenter.from_pretrained(folder)
    except (CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")
    photos, ids = load_split("eval", a.size, a.data, progress=False).centre_arrays()
    result = {"real_held_out": seg.score(photos, ids), "record": seg.config.get("record"),
              "model": str(folder),
              "command": "python -m sparsesis.segmenter " + " ".join(argv if argv is not None else sys.argv[1:])}
    print(json.dumps(result, indent=2))
    if a.out:
        Path(a.out).parent.mkdir(parents=True, exist_ok=True)
        Path(a.out).write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
