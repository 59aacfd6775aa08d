"""Sparse layouts from full ones.

* ``class_wise_random`` -- the paper's class-wise random patterns (Huang et al., Sec. 3.1): every class
  present gets its *own* smooth random field; the share ``s_c ~ U(hide_range)`` of that class's pixels
  with the highest field values becomes UNKNOWN. Thresholding a smooth field gives coherent blobs
  (not salt-and-pepper) and hits the drawn share exactly. Used in training.
* ``shared_random`` -- one field and one share for all classes (the ablation's "shared mask").
* ``scribbles`` -- a *different* generator standing for human input: a few thick brush strokes per
  connected region, drawn inside the region. Used for evaluation only, never in training.

All functions take and return ``(H, W)`` integer id maps; ``unknown_id`` marks hidden pixels.
"""
from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np


@dataclass(frozen=True)
class MaskConfig:
    hide_range: tuple[float, float] = (0.45, 0.97)  # share of each class's pixels hidden, drawn per class
    drop_prob: float = 0.03  # chance that a present class is hidden entirely, on purpose
    min_keep: int = 4  # pixels every present class keeps (at 64x64; scaled with the area)
    blob_scale: tuple[float, float] = (0.08, 0.4)  # size of the field's blobs, as a share of the side

    def __post_init__(self):
        lo, hi = self.hide_range
        if not 0.0 <= lo <= hi <= 1.0:
            raise ValueError(f"hide_range must satisfy 0 <= lo <= hi <= 1, got {self.hide_range}")
        if not 0.0 <= self.drop_prob <= 1.0:
            raise ValueError(f"drop_prob must be in [0, 1], got {self.drop_prob}")
        if not 0 < self.blob_scale[0] <= self.blob_scale[1]:
            raise ValueError(f"blob_scale must be positive and ordered, got {self.blob_scale}")


def smooth_field(shape: tuple[int, int], rng: np.random.Generator, blob_scale=(0.08, 0.4)) -> np.ndarray:
    """A smooth random field ``(H, W)`` float32: Gaussian noise on a coarse grid, upsampled bicubically."""
    h, w = shape
    scale = rng.uniform(*blob_scale)
    gh, gw = max(2, round(1 / scale * h / max(h, w))), max(2, round(1 / scale * w / max(h, w)))
    coarse = rng.standard_normal((gh, gw)).astype(np.float32)
    return cv2.resize(coarse, (w, h), interpolation=cv2.INTER_CUBIC)


def _hide_top(field_vals: np.ndarray, n_hide: int) -> np.ndarray:
    """Boolean mask over the given values: True for the ``n_hide`` largest."""
    hide = np.zeros(field_vals.shape[0], dtype=bool)
    if n_hide <= 0:
        return hide
    if n_hide >= field_vals.shape[0]:
        hide[:] = True
        return hide
    idx = np.argpartition(-field_vals, n_hide - 1)[:n_hide]
    hide[idx] = True
    return hide


def _check(labels: np.ndarray, unknown_id: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.ndim != 2:
        raise ValueError(f"labels must be an (H, W) id map, got shape {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise TypeError(f"labels must be integer ids, got {labels.dtype}")
    return labels


def class_wise_random(labels: np.ndarray, unknown_id: int, rng: np.random.Generator,
                      config: MaskConfig = MaskConfig(), return_shares: bool = False):
    """Hide a per-class share of each class's pixels with a per-class random pattern.

    Returns the sparse ``(H, W)`` map (same dtype); with ``return_shares`` also
    ``{class_id: drawn share}`` (1.0 for a dropped class).
    """
    labels = _check(labels, unknown_id)
    out = labels.copy()
    min_keep = max(1, round(config.min_keep * labels.size / 4096))
    shares = {}
    for c in np.unique(labels):
        if c == unknown_id:
            continue
        where = labels == c
        n = int(where.sum())
        if rng.random() < config.drop_prob:
            out[where] = unknown_id
            shares[int(c)] = 1.0
            continue
        share = rng.uniform(*config.hide_range)
        shares[int(c)] = share
        n_hide = min(int(round(share * n)), max(0, n - min_keep))
        field = smooth_field(labels.shape, rng, config.blob_scale)
        hide = _hide_top(field[where], n_hide)
        ys, xs = np.nonzero(where)
        out[ys[hide], xs[hide]] = unknown_id
    return (out, shares) if return_shares else out


def shared_random(labels: np.ndarray, unknown_id: int, rng: np.random.Generator,
                  config: MaskConfig = MaskConfig()) -> np.ndarray:
    """Ablation: one random pattern and one share hide pixels of all classes alike."""
    labels = _check(labels, unknown_id)
    out = labels.copy()
    known = labels != unknown_id
    share = rng.uniform(*config.hide_range)
    field = smooth_field(labels.shape, rng, config.blob_scale)
    hide = _hide_top(field[known], int(round(share * known.sum())))
    ys, xs = np.nonzero(known)
    out[ys[hide], xs[hide]] = unknown_id
    return out


def keep_share(labels: np.ndarray, unknown_id: int, share_labelled: float, rng: np.random.Generator,
               blob_scale=(0.08, 0.4)) -> np.ndarray:
    """Class-wise patterns that keep exactly ``share_labelled`` of every class (sparsity curves)."""
    hide = 1.0 - float(share_labelled)
    cfg = MaskConfig(hide_range=(hide, hide), drop_prob=0.0, min_keep=1, blob_scale=blob_scale)
    return class_wise_random(labels, unknown_id, rng, cfg)


# ---------------------------------------------------------------------------------------------
# human-like scribbles (evaluation only)
# ---------------------------------------------------------------------------------------------
@dataclass(frozen=True)
class ScribbleConfig:
    strokes_per_region: tuple[int, int] = (1, 3)  # inclusive range, drawn per region
    thickness: tuple[int, int] = (2, 4)  # brush diameter in pixels at 64x64, scaled with the side
    segment_len: tuple[float, float] = (0.06, 0.18)  # one stroke segment, as a share of the side
    segments: tuple[int, int] = (2, 5)  # segments per stroke
    min_region: int = 6  # regions smaller than this (pixels at 64x64, scaled) are skipped
    region_prob: float = 0.85  # a person paints most regions, not every small one


def scribbles(labels: np.ndarray, unknown_id: int, rng: np.random.Generator,
              config: ScribbleConfig = ScribbleConfig()) -> np.ndarray:
    """A few brush strokes per connected region; only pixels of the region's true class are labelled."""
    labels = _check(labels, unknown_id)
    h, w = labels.shape
    side = max(h, w)
    k = side / 64.0
    out = np.full_like(labels, unknown_id)
    for c in np.unique(labels):
        if c == unknown_id:
            continue
        region_mask = (labels == c).astype(np.uint8)
        n_comp, comp = cv2.connectedComponents(region_mask, connectivity=8)
        painted = np.zeros((h, w), np.uint8)
        for r in range(1, n_comp):
            ys, xs = np.nonzero(comp == r)
            if ys.size < config.min_region * k * k or rng.random() > config.region_prob:
                continue
            inside = comp == r
            for _ in range(rng.integers(config.strokes_per_region[0], config.strokes_per_region[1] + 1)):
                j = rng.integers(ys.size)
                pts = [(float(xs[j]), float(ys[j]))]
                angle = rng.uniform(0, 2 * np.pi)
                for _ in range(rng.integers(config.segments[0], config.segments[1] + 1)):
                    for _try in range(6):  # bend the stroke until it stays inside the region
                        a = angle + rng.normal(0, 0.6)
                        L = rng.uniform(*config.segment_len) * side
                        x = pts[-1][0] + L * np.cos(a)
                        y = pts[-1][1] + L * np.sin(a)
                        if 0 <= x < w and 0 <= y < h and inside[int(y), int(x)]:
                            pts.append((x, y))
                            angle = a
                            break
                        angle = rng.uniform(0, 2 * np.pi)
                thick = max(1, int(round(rng.integers(config.thickness[0], config.thickness[1] + 1) * k)))
                poly = np.round(np.array(pts)).astype(np.int32).reshape(-1, 1, 2)
                cv2.polylines(painted, [poly], False, 1, thickness=thick, lineType=cv2.LINE_8)
                if len(pts) == 1:
                    cv2.circle(painted, (int(pts[0][0]), int(pts[0][1])), max(1, thick // 2), 1, -1)
        out[(painted > 0) & (region_mask > 0)] = c
    return out


def labelled_share(layout: np.ndarray, unknown_id: int) -> float:
    """Share of pixels that carry a class label."""
    return float((np.asarray(layout) != unknown_id).mean())


def hidden_share_per_class(full: np.ndarray, sparse: np.ndarray, unknown_id: int) -> dict[int, float]:
    """``{class_id: share of that class's pixels that are UNKNOWN in sparse}``."""
    out = {}
    for c in np.unique(full):
        if c == unknown_id:
            continue
        where = full == c
        out[int(c)] = float((sparse[where] == unknown_id).mean())
    return out
