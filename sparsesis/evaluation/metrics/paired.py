"""Paired image metric: how closely one sampler reproduces another's images from the same noise and layout.

A distilled student is trained to reproduce its teacher's full sampler, so besides the set-level Fréchet
distance we measure exactly that: the PSNR of the student's images against the teacher's images for the
same layouts and seeds (and the same for plain DDIM at the student's step count, the baseline).
"""
from __future__ import annotations

import cv2
import numpy as np


def paired_psnr(images: np.ndarray, reference: np.ndarray) -> float:
    """PSNR in dB of the mean squared error between uint8 ``images`` and ``reference`` (same shape),
    pooled over all pairs; ``inf`` when they are identical."""
    a, b = np.asarray(images), np.asarray(reference)
    if a.shape != b.shape:
        raise ValueError(f"images {a.shape} and reference {b.shape} must have the same shape")
    if a.size == 0:
        raise ValueError("no images to compare")
    mse = ((a.astype(np.float64) - b.astype(np.float64)) ** 2).mean()
    return float("inf") if mse == 0 else float(10.0 * np.log10(255.0 ** 2 / mse))


def sobel_energy(image: np.ndarray) -> np.ndarray:
    """The gradient magnitude (3x3 Sobel) of an RGB uint8 image's grey levels: where a seam would show."""
    g = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    return np.hypot(cv2.Sobel(g, cv2.CV_32F, 1, 0, ksize=3), cv2.Sobel(g, cv2.CV_32F, 0, 1, ksize=3))

