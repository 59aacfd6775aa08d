"""Nearest training example: how close each image comes to anything the model was trained on (a check for
memorization: generated images should be no closer to the training photos than unseen real photos are)."""
from __future__ import annotations

import numpy as np


def nearest(queries: np.ndarray, references: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Euclidean distance from each row of ``queries`` (N, D) to its nearest row of ``references`` (M, D), and
    that row's index: -> (distances (N,), indices (N,))."""
    q, r = np.asarray(queries, np.float64), np.asarray(references, np.float64)
    if q.ndim != 2 or r.ndim != 2 or q.shape[1] != r.shape[1]:
        raise ValueError(f"queries and references must be (N, D) and (M, D), got {q.shape} and {r.shape}")
    r2 = (r ** 2).sum(1)
    dist, idx = np.empty(len(q)), np.empty(len(q), np.int64)
    for i in range(0, len(q), chunk):
        block = q[i:i + chunk]
        d2 = (block ** 2).sum(1)[:, None] - 2 * block @ r.T + r2[None]
        j = d2.argmin(1)
        idx[i:i + chunk], dist[i:i + chunk] = j, np.sqrt(np.maximum(d2[np.arange(len(block)), j], 0.0))
    return dist, idx


def pixel_rows(images: np.ndarray, with_flips: bool = False) -> np.ndarray:
    """uint8 images (N, H, W, 3) as rows in [0, 1] (N, H*W*3); ``with_flips`` appends the mirrored images
    (training flips photos, so a mirrored copy is as memorized as the photo)."""
    images = np.asarray(images)
    if with_flips:
        images = np.concatenate([images, images[:, :, ::-1]])
    return images.reshape(len(images), -1).astype(np.float64) / 255.0


def summary(distances: np.ndarray) -> dict:
    d = np.asarray(distances, np.float64)
    return {"min": round(float(d.min()), 4), "p05": round(float(np.percentile(d, 5)), 4),
            "median": round(float(np.median(d)), 4), "mean": round(float(d.mean()), 4), "n": int(len(d))}
