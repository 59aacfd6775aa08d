"""The generator interface that ``Pipeline``, the demo and the evaluation rely on. ``loader.load`` returns one
of these for any generator folder: a diffusion model or student (``Synthesizer``) or a GAN baseline
(``loader.GanSynthesizer``)."""
from __future__ import annotations

from typing import Protocol, runtime_checkable

import numpy as np

from .classes import ClassSet


@runtime_checkable
class Generator(Protocol):
    classset: ClassSet
    default_steps: int  # a GAN: 1
    distilled: dict | None  # a student's distillation record (its guidance is built in); None otherwise
    is_diffusion: bool  # steps, guidance, a reference photo and a regional reroll apply

    @property
    def image_size(self) -> int: ...

    @property
    def guidance_label(self) -> float | None:
        """The guidance scale the images reflect by default (None: a GAN, which has none)."""

    def layout_ids(self, layout) -> np.ndarray:
        """Any layout form -> ids ``(B, S, S)`` at the generator's size."""

    def __call__(self, layout, steps: int | None = None, seed: int = 0, guidance: float | None = None,
                 return_trajectory: bool = False, **kwargs):
        """One layout -> ``(S, S, 3)`` uint8, a batch -> ``(B, S, S, 3)``; image ``i`` uses seed ``seed + i``.
        With ``return_trajectory``: ``(images, trajectory or None)``."""

    def info(self) -> dict:
        """Parameters and training budget: ``parameters``, ``images_seen``, ``train_hours``, ``device``."""
