"""A trained GAN baseline behind the ``Generator`` interface (``sparsesis.interface``), as ``loader.load`` returns it
for a GAN model folder: one generator pass per image, the seed as its noise.

A GAN has no steps and no guidance: it accepts and ignores ``steps`` (and a diffusion model's guidance options),
refuses a ``guidance`` other than None, and its trajectory is None. Starting from a reference image and keeping a
region need a sampler: ``sdedit``, ``inpaint``, ``reroll`` and ``edit`` raise a one-line ``ValueError``.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from ..data.classes import one_hot
from ..data.layouts import is_single, to_ids

NO_REFERENCE = "a reference image (SDEdit) needs a diffusion model: a GAN has no noise level to start from"
NO_REGION = "keeping a region (reroll, edit, inpaint) needs a diffusion model: a GAN has no sampler to hold it in"


class GanSynthesizer:
    """A GAN baseline's generator: image ``i`` of a batch uses noise seed ``seed + i``."""

    is_diffusion = False  # no steps, guidance, reference photo or regional reroll
    distilled = None
    default_steps = 1
    guidance_label = None
    guidance_kind = None
    cfg_scale_label = None

    def __init__(self, method, classset, config: dict, device: str = "cpu"):
        import torch

        self.method = method.eval().to(device)
        self.classset, self.config, self.device = classset, config, torch.device(device)
        self.name = config.get("method", "gan")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", precision: str = "fp32") -> "GanSynthesizer":
        """``precision`` is accepted for the one interface: a GAN baseline runs in fp32."""
        from .models import load_generator

        method, classset, config = load_generator(path)
        return cls(method, classset, config, device)

    @property
    def image_size(self) -> int:
        return int(self.config["model"]["image_size"])

    @property
    def model(self):
        return self.method.generator

    def layout_ids(self, layout) -> np.ndarray:
        return to_ids(layout, self.classset, self.image_size)

    def __call__(self, layout, steps=None, seed: int = 0, guidance=None, return_trajectory: bool = False, **_):
        import torch

        from ..data.sets import tensor_to_photo

        if guidance is not None:
            raise ValueError("a GAN generator has no guidance scale; pass guidance=None")
        single = is_single(layout)
        ids = torch.from_numpy(self.layout_ids(layout)).to(self.device)
        images = tensor_to_photo(self.method.generate(one_hot(ids, self.classset.num_channels),
                                                      [int(seed) + i for i in range(len(ids))]))
        images = images[0] if single else images
        return (images, None) if return_trajectory else images

    def sdedit(self, layout, init, strength: float, **_):
        raise ValueError(NO_REFERENCE)

    def inpaint(self, layout, known_image, keep_mask, **_):
        raise ValueError(NO_REGION)

    def reroll(self, layout, image, region, seed: int = 0, **_):
        raise ValueError(NO_REGION)

    def edit(self, layout, previous_image, previous_layout, seed: int = 0, radius: int | None = None, **_):
        raise ValueError(NO_REGION)

    def info(self) -> dict:
        from ..models.unet import count_parameters

        rec = self.config.get("record", {})
        info = {"parameters": rec.get("parameters_g") or count_parameters(self.method.generator),
                "images_seen": rec.get("images_seen"),
                "train_hours": round(rec.get("train_seconds", 0) / 3600, 3), "device": rec.get("device")}
        if "run" in rec:  # a snapshot chosen from a longer run (sparsesis.baselines.ship): what the run spent
            run = rec["run"]
            info.update(run_images_seen=run.get("images_seen"), chosen=run.get("chosen"),
                        run_train_hours=round(run.get("train_seconds", 0) / 3600, 3))
        return info
