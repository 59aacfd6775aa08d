"""The generator interface that ``Pipeline``, the loader, the demo and the evaluation rely on. ``loader.load``
returns one of these for any generator folder: a diffusion model or student (``sparsesis.synthesizer.Synthesizer``)
or a GAN baseline (``sparsesis.baselines.generator.GanSynthesizer``).

Layouts come in any form ``layout_ids`` takes, one ``(S, S)`` or a batch ``(B, S, S)``; images go out as uint8,
``(S, S, 3)`` for one layout and ``(B, S, S, 3)`` for a batch, image ``i`` drawn with seed ``seed + i``. The
``sampling`` keywords are the sampler's options beyond ``steps`` and ``guidance`` (a diffusion model's ``guide``,
``interval``, ``cfg_scale``, ``sampler``; a GAN ignores them). What a GAN cannot do (start from a reference,
keep a region) raises a one-line ``ValueError``.
"""
from __future__ import annotations

from pathlib import Path
from typing import Protocol, runtime_checkable

import numpy as np

from .data.classes import ClassSet


@runtime_checkable
class Generator(Protocol):
    classset: ClassSet
    default_steps: int  # a GAN: 1
    distilled: dict | None  # a student's distillation record (its guidance is built in); None otherwise
    is_diffusion: bool  # steps, guidance, a reference photo and a regional reroll apply

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", precision: str = "fp32") -> "Generator":
        """The generator in a model folder (``precision``: fp32, bf16 or auto; a GAN runs in fp32)."""

    @property
    def image_size(self) -> int:
        """The side ``S`` of the images it makes (and of the layouts it reads)."""

    @property
    def guidance_label(self) -> float | None:
        """The guidance scale the images reflect by default (None: a GAN, which has none)."""

    @property
    def guidance_kind(self) -> str | None:
        """``"autoguidance"`` or ``"classifier-free"``: how the images are guided by default (None: a GAN)."""

    @property
    def cfg_scale_label(self) -> float | None:
        """The classifier-free scale on top of autoguidance that the images reflect (1: none; None: a GAN)."""

    def layout_ids(self, layout) -> np.ndarray:
        """Any layout form -> ids ``(B, S, S)`` at the generator's size."""

    def __call__(self, layout, steps: int | None = None, seed: int = 0, guidance: float | None = None,
                 return_trajectory: bool = False, **sampling):
        """Images for the layouts. With ``return_trajectory``: ``(images, trajectory or None)``."""

    def sdedit(self, layout, init, strength: float, steps: int | None = None, seed: int = 0,
               guidance: float | None = None, return_trajectory: bool = False, **sampling):
        """Images for the layouts with the look of ``init`` (SDEdit): ``strength`` 0 returns ``init``, 1 is plain
        generation."""

    def inpaint(self, layout, known_image, keep_mask, steps: int | None = None, seed: int = 0,
                guidance: float | None = None, resample: int = 1, **sampling):
        """Images that keep ``known_image`` exactly where ``keep_mask`` is True and are generated anew elsewhere."""

    def reroll(self, layout, image, region, seed: int = 0, **sampling):
        """``image`` with ``region`` (True = anew) generated again under ``seed``, the rest kept exactly."""

    def edit(self, layout, previous_image, previous_layout, seed: int = 0, radius: int | None = None, **sampling):
        """``previous_image`` regenerated only near the layout pixels that changed since ``previous_layout``."""

    def info(self) -> dict:
        """Parameters and training budget: ``parameters``, ``images_seen``, ``train_hours``, ``device``."""
