"""A small segmentation network for layout fidelity (the pix2pix "FCN-score" idea): segment generated
images and compare with the full held-out label maps by per-class and mean IoU.

    python -m sparsesis.training.train_segmenter --run-dir runs/seg64     # trains on the real training photos

The segmenter's mIoU on real held-out photos is the ceiling a generator can reach under this metric.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import load_model_dir
from ..data.classes import ClassSet
from .schema import SEGMENTER_KIND as SEG_KIND

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
        from ..data.sets import photo_to_tensor

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
