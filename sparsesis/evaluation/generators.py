"""The rows of an evaluation: a ``Generator`` (``sparsesis.interface``) held at fixed sampling settings, and the
trivial baseline that is no model at all.

The evaluation (``sparsesis.evaluation.evaluate``) asks each row for ``generate(layouts, seed)``, ``layouts`` (B, H, W) int64
ids -> (B, H, W, 3) uint8 with image ``i`` from seed ``seed + i`` (what a ``Generator`` call does, in chunks), and
for ``info()``, its parameter count and training budget.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..data.sets import PairSet
from ..interface import Generator


@dataclass
class ModelGenerator:
    """A loaded model (``sparsesis.loader.load``: diffusion model, student or GAN) at fixed sampling settings."""

    synth: Generator
    steps: int | None = None
    guidance: float | None = None
    batch_size: int = 16
    name: str = "ours"
    options: dict = field(default_factory=dict)  # the guidance options (a diffusion model's guide, interval)

    def generate(self, layouts: np.ndarray, seed: int) -> np.ndarray:
        out = []
        for i in range(0, len(layouts), self.batch_size):
            out.append(self.synth(layouts[i:i + self.batch_size], steps=self.steps, seed=seed + i,
                                  guidance=self.guidance, **self.options))
        return np.concatenate(out)

    def info(self) -> dict:
        info = dict(self.synth.info())
        if self.synth.is_diffusion:  # say how it was sampled
            info["steps"] = self.steps or self.synth.default_steps
            info["guidance"] = self.guidance if self.guidance is not None else self.synth.guidance_label
        return info


@dataclass
class MeanColourGenerator:
    """The trivial baseline: every labelled pixel gets its class's mean training colour plus Gaussian
    noise with the class's pixel standard deviation; UNKNOWN pixels get the global mean and std."""

    mean: np.ndarray  # (K + 1, 3)
    std: np.ndarray  # (K + 1, 3)
    name: str = "trivial"

    @classmethod
    def fit(cls, pairs: PairSet) -> "MeanColourGenerator":
        photos, ids = pairs.centre_arrays()
        k = pairs.classset.num_classes
        pix, lab = photos.reshape(-1, 3).astype(np.float64), ids.reshape(-1)
        mean, std = np.zeros((k + 1, 3)), np.zeros((k + 1, 3))
        for c in range(k):
            sel = pix[lab == c]
            mean[c], std[c] = (sel.mean(0), sel.std(0)) if len(sel) else (pix.mean(0), pix.std(0))
        mean[k], std[k] = pix.mean(0), pix.std(0)
        return cls(mean, std)

    def generate(self, layouts: np.ndarray, seed: int) -> np.ndarray:
        out = []
        for i, lay in enumerate(layouts):
            rng = np.random.default_rng(seed + i)
            img = self.mean[lay] + rng.standard_normal(lay.shape + (3,)) * self.std[lay]
            out.append(np.clip(img, 0, 255).round().astype(np.uint8))
        return np.stack(out)

    def info(self) -> dict:
        return {"parameters": 0, "images_seen": None, "train_hours": 0.0}
