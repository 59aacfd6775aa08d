"""One loader for every generator that ships: ``load(path)`` reads the folder's ``kind`` and returns a model
with one interface, whether it is a diffusion teacher, a distilled student or a GAN baseline:

    model = load("checkpoints/ours64-student4")
    image = model(layout, seed=0)            # (H, W, 3) uint8; a batch of layouts -> (B, H, W, 3)
    model.classset, model.image_size, model.default_steps, model.is_diffusion, model.info()

A GAN has no steps and no guidance: it accepts and ignores ``steps``, refuses a ``guidance`` other than None,
and its trajectory is None.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np

from .checkpoint import CONFIG_FILE, CheckpointError
from .classes import one_hot
from .layouts import is_single, to_ids
from .schema import DIFFUSION_KIND, GAN_KIND, GENERATOR_KINDS
from .synthesizer import Synthesizer


def checkpoint_kind(path: str | Path) -> str | None:
    """The ``kind`` a model folder's config states, or None when it has no readable config."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text()).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def load(path: str | Path, device: str = "cpu", precision: str = "fp32"):
    """A ``Synthesizer`` (diffusion model or student) or a ``GanSynthesizer``, by the folder's kind.
    ``precision`` (fp32, bf16 or auto: bf16 where the CPU has it natively) applies to diffusion models."""
    path = Path(path)
    kind = checkpoint_kind(path)
    if kind == GAN_KIND:
        return GanSynthesizer.from_pretrained(path, device)
    if kind == DIFFUSION_KIND:
        return Synthesizer.from_pretrained(path, device=device, precision=precision)
    if kind is None:
        Synthesizer.from_pretrained(path)  # raises the precise error: no folder, no config, corrupt config
    raise CheckpointError(f"{path} holds a {kind!r} model, not a generator (expected one of {GENERATOR_KINDS})")


def find_models(root: str | Path, preferred: tuple[str, ...] = ()) -> dict[str, Path]:
    """``{name: folder}`` for every generator checkpoint directly under ``root``: the ``preferred`` names first
    (in that order), then diffusion models, then GAN baselines, each alphabetically."""
    root, found = Path(root), {}
    if root.is_dir():
        for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
            kind = checkpoint_kind(cfg.parent)
            if kind in GENERATOR_KINDS:
                found[cfg.parent.name] = (GENERATOR_KINDS.index(kind), cfg.parent)
    order = [n for n in preferred if n in found]
    order += sorted((n for n in found if n not in preferred), key=lambda n: (found[n][0], n))
    return {n: found[n][1] for n in order}


class GanSynthesizer:
    """A GAN baseline's generator behind the ``Generator`` interface (``sparsesis.interface``): one pass per
    image; image ``i`` of a batch uses noise seed ``seed + i``."""

    is_diffusion = False  # no steps, guidance, reference photo or regional reroll
    distilled = None
    default_steps = 1
    guidance_label = None

    def __init__(self, method, classset, config: dict, device: str = "cpu"):
        import torch

        self.method = method.eval().to(device)
        self.classset, self.config, self.device = classset, config, torch.device(device)
        self.name = config.get("method", "gan")

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu") -> "GanSynthesizer":
        from .baselines.models import load_generator

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

        from .data import tensor_to_photo

        if guidance is not None:
            raise ValueError("a GAN generator has no guidance scale; pass guidance=None")
        single = is_single(layout)
        ids = torch.from_numpy(self.layout_ids(layout)).to(self.device)
        images = tensor_to_photo(self.method.generate(one_hot(ids, self.classset.num_channels),
                                                      [int(seed) + i for i in range(len(ids))]))
        images = images[0] if single else images
        return (images, None) if return_trajectory else images

    def info(self) -> dict:
        from .unet import count_parameters

        rec = self.config.get("record", {})
        info = {"parameters": rec.get("parameters_g") or count_parameters(self.method.generator),
                "images_seen": rec.get("images_seen"),
                "train_hours": round(rec.get("train_seconds", 0) / 3600, 3), "device": rec.get("device")}
        if "run" in rec:  # a snapshot chosen from a longer run (sparsesis.baselines.ship): what the run spent
            run = rec["run"]
            info.update(run_images_seen=run.get("images_seen"), chosen=run.get("chosen"),
                        run_train_hours=round(run.get("train_seconds", 0) / 3600, 3))
        return info
