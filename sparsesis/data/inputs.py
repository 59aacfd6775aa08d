"""Evaluation input kinds: how a held-out full layout becomes the layout a method is given.

Every kind is a pure function of (full layout, seed), so all methods see exactly the same inputs.

* ``random_mask``  class-wise random masks (the training distribution, ``MaskConfig`` defaults)
* ``scribble``     human-like brush strokes (never seen in training)
* ``dense``        the full layout
* ``share:P``      class-wise masks keeping exactly the share P of every class (sparsity curves)
* ``strokes:N``    N strokes per region (scribble curves)
* ``downsampled``  labels down by 4 and back up, nearest (SCDM's noisy-label protocol)
* ``edges_unknown`` a band around region boundaries set to UNKNOWN (2 px at 256, scaled)
* ``random_unknown`` a random 10% of pixels set to UNKNOWN
"""
from __future__ import annotations

import cv2
import numpy as np

from .masking import ScribbleConfig, class_wise_random, keep_share, scribbles

KINDS = ("random_mask", "scribble", "dense", "downsampled", "edges_unknown", "random_unknown")


def make_input(kind: str, full: np.ndarray, unknown_id: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng([seed, 0x5EED])
    if kind == "random_mask":
        return class_wise_random(full, unknown_id, rng)
    if kind == "scribble":
        return scribbles(full, unknown_id, rng)
    if kind == "dense":
        return full.copy()
    if kind.startswith("share:"):
        return keep_share(full, unknown_id, float(kind.split(":", 1)[1]), rng)
    if kind.startswith("strokes:"):
        n = int(kind.split(":", 1)[1])
        return scribbles(full, unknown_id, rng, ScribbleConfig(strokes_per_region=(n, n)))
    if kind == "downsampled":
        h, w = full.shape
        small = cv2.resize(full.astype(np.int32), (max(1, w // 4), max(1, h // 4)), interpolation=cv2.INTER_NEAREST)
        return cv2.resize(small, (w, h), interpolation=cv2.INTER_NEAREST).astype(full.dtype)
    if kind == "edges_unknown":
        band = max(1, round(2 * full.shape[0] / 256))
        edge = np.zeros(full.shape, bool)
        edge[:, 1:] |= full[:, 1:] != full[:, :-1]
        edge[1:, :] |= full[1:, :] != full[:-1, :]
        edge = cv2.dilate(edge.astype(np.uint8), np.ones((2 * band - 1, 2 * band - 1), np.uint8)) > 0
        out = full.copy()
        out[edge] = unknown_id
        return out
    if kind == "random_unknown":
        out = full.copy()
        out[rng.random(full.shape) < 0.1] = unknown_id
        return out
    raise ValueError(f"unknown input kind {kind!r}; choose from {KINDS} or share:P / strokes:N")


def held_out_inputs(pairs, kind: str, mask_seeds: int, limit: int | None = None):
    """The evaluation's inputs from a ``PairSet`` of held-out pairs: -> (layouts (M, S, S), real index per
    layout (M,)); layout ``1000 * s + i`` of mask seed ``s``. ``dense`` needs no seeds: it uses one."""
    n = len(pairs) if limit is None else min(limit, len(pairs))
    seeds = 1 if kind == "dense" else mask_seeds
    layouts, idx = [], []
    for s in range(seeds):
        for i in range(n):
            _, full = pairs.centre(i)
            layouts.append(make_input(kind, full, pairs.classset.unknown_id, seed=1000 * s + i))
            idx.append(i)
    return np.stack(layouts), np.array(idx)
