"""Training batches as a pure function of (seed, step): resumable and independent of the process count.

The global batch of step ``k`` is fixed by ``seed`` and ``k``; with ``world`` processes, rank ``r`` takes
examples ``r, r + world, ...`` of it. Each example's crop, flip, mask and layout drop come from its own
generator seeded by (seed, step, position), so the data stream does not change when a run resumes on a
different number of processes.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import numpy as np
import torch

from .sets import PairSet, photo_to_tensor
from .masking import MaskConfig, class_wise_random

Masker = Callable[[np.ndarray, int, np.random.Generator], np.ndarray]


def classwise_masker(config: MaskConfig = MaskConfig()) -> Masker:
    return lambda labels, unknown, rng: class_wise_random(labels, unknown, rng, config)


@dataclass
class Batch:
    photos: torch.Tensor  # (b, 3, H, W) float in [-1, 1]
    layouts: torch.Tensor  # (b, H, W) long, sparse (what the model sees)
    full_layouts: torch.Tensor  # (b, H, W) long, before masking


def make_batch(pairs: PairSet, step: int, seed: int, batch_size: int, masker: Masker,
               layout_drop: float = 0.0, rank: int = 0, world: int = 1) -> Batch:
    if batch_size % world:
        raise ValueError(f"batch size {batch_size} must be divisible by the number of processes {world}")
    pick = np.random.default_rng([seed, step, 0xBA7C]).integers(0, len(pairs), size=batch_size)
    unknown = pairs.classset.unknown_id
    photos, layouts, fulls = [], [], []
    for pos in range(rank, batch_size, world):
        rng = np.random.default_rng([seed, step, pos])
        photo, full = pairs.augmented(int(pick[pos]), rng)
        sparse = masker(full, unknown, rng)
        if rng.random() < layout_drop:  # classifier-free guidance: the null layout is all UNKNOWN
            sparse = np.full_like(full, unknown)
        photos.append(photo)
        layouts.append(sparse)
        fulls.append(full)
    photos_t = photo_to_tensor(np.stack(photos))
    return Batch(photos_t, torch.from_numpy(np.stack(layouts)), torch.from_numpy(np.stack(fulls)))


class StepBatches(torch.utils.data.Dataset):
    """Map-style view of ``make_batch`` indexed by step, so a DataLoader can prepare batches in workers."""

    def __init__(self, pairs: PairSet, seed: int, batch_size: int, masker: Masker, layout_drop: float,
                 rank: int = 0, world: int = 1, total_steps: int = 10 ** 9):
        self.args = (pairs, seed, batch_size, masker, layout_drop, rank, world)
        self.total_steps = total_steps

    def __len__(self):
        return self.total_steps

    def __getitem__(self, step: int) -> Batch:
        pairs, seed, bs, masker, drop, rank, world = self.args
        return make_batch(pairs, step, seed, bs, masker, drop, rank, world)
