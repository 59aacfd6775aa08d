"""Editing helpers around the generator: where a layout changed, and a photo turned into a layout.

The sampling side of editing (keeping a region, starting from a reference) lives in the samplers
(``sparsesis.models.diffusion.Known``, ``start``) and is reached through the generator interface
(``sparsesis.interface.Generator``: ``inpaint``, ``reroll``, ``edit``, ``sdedit``) and ``Pipeline``.
"""
from __future__ import annotations

import cv2
import numpy as np


def changed_region(previous_ids: np.ndarray, ids: np.ndarray, radius: int) -> np.ndarray:
    """Pixels whose label changed between two layouts ``(H, W)`` / ``(B, H, W)``, grown by ``radius`` pixels
    (a disc): the neighbourhood a new stroke may influence. -> bool, same shape."""
    prev, cur = np.asarray(previous_ids), np.asarray(ids)
    if prev.shape != cur.shape:
        raise ValueError(f"the two layouts differ in shape: {prev.shape} vs {cur.shape}")
    changed = (prev != cur).astype(np.uint8)
    if radius <= 0:
        return changed.astype(bool)
    disc = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * radius + 1, 2 * radius + 1))
    grow = lambda m: cv2.dilate(m, disc) > 0  # noqa: E731
    return np.stack([grow(m) for m in changed]) if changed.ndim == 3 else grow(changed)


def layout_from_photo(photo: np.ndarray, segmenter, size: int, sketch: bool = False, seed: int = 0,
                      strokes: int = 2) -> np.ndarray:
    """A photo -> a layout ``(size, size)`` int64 ids by the project's segmenter (centre square crop, area resize).

    ``sketch=True`` thins it to a few scribble strokes per region (``sparsesis.data.masking.scribbles``), as a person
    would draw it; the rest becomes UNKNOWN."""
    from .data.layouts import centre_square

    photo = np.asarray(photo)
    if photo.ndim != 3 or photo.shape[2] not in (3, 4) or photo.dtype != np.uint8:
        raise ValueError(f"photo must be an (H, W, 3) uint8 RGB image, got {photo.shape} {photo.dtype}")
    square = centre_square(photo[..., :3])
    small = cv2.resize(square, (size, size), interpolation=cv2.INTER_AREA)
    ids = segmenter.predict(small[None])[0].astype(np.int64)
    if sketch:
        from .data.masking import ScribbleConfig, scribbles

        ids = scribbles(ids, segmenter.classset.unknown_id, np.random.default_rng(seed),
                        ScribbleConfig(strokes_per_region=(strokes, strokes)))
    return ids
