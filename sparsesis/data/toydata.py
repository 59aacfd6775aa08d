"""A toy data set made on the spot: what the tests and ``python -m sparsesis.training.reproduce --smoke`` train on (the real
data sets cannot ship with the package)."""
from __future__ import annotations

import json
from pathlib import Path

import cv2
import numpy as np

FOUR_CLASSES = {
    "name": "toy4",
    "classes": [
        {"id": 0, "name": "ground", "color": [200, 100, 0]},
        {"id": 1, "name": "wall", "color": [0, 0, 200]},
        {"id": 2, "name": "sky", "color": [0, 200, 200]},
        {"id": 3, "name": "tree", "color": [0, 160, 0]},
    ],
    "unknown_color": [255, 255, 255],
    "splits": {"train": "train.txt", "eval": "val.txt"},
}
TOY_COLOURS = np.array([[110, 80, 40], [150, 150, 160], [120, 170, 230], [40, 110, 40]], np.uint8)


def make_toy_dataset(root: Path, n_train: int = 12, n_eval: int = 4, size=(40, 48), seed: int = 0) -> Path:
    """A small data set with 4 classes: bands of ground/wall/sky with a tree blob, photos coloured per class."""
    rng = np.random.default_rng(seed)
    (root / "images").mkdir(parents=True)
    (root / "labels").mkdir()
    stems = []
    h, w = size
    palette = np.array([c["color"] for c in FOUR_CLASSES["classes"]], np.uint8)
    for i in range(n_train + n_eval):
        lab = np.zeros((h, w), np.uint8)
        sky_end, wall_end = rng.integers(8, 16), rng.integers(26, 34)
        lab[:sky_end] = 2
        lab[sky_end:wall_end] = 1
        cy, cx = rng.integers(10, h - 10), rng.integers(10, w - 10)
        cv2.circle(lab, (int(cx), int(cy)), int(rng.integers(4, 8)), 3, -1)
        photo = TOY_COLOURS[lab].astype(np.int16) + rng.integers(-12, 12, (h, w, 3))
        photo = np.clip(photo, 0, 255).astype(np.uint8)
        stem = f"toy_{i:03d}"
        cv2.imwrite(str(root / "images" / f"{stem}.png"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
        cv2.imwrite(str(root / "labels" / f"{stem}.png"), cv2.cvtColor(palette[lab], cv2.COLOR_RGB2BGR))
        stems.append(stem)
    (root / "train.txt").write_text("\n".join(f"images/{s}.png" for s in stems[:n_train]) + "\n")
    (root / "val.txt").write_text("\n".join(stems[n_train:]) + "\n")
    (root / "classes.json").write_text(json.dumps(FOUR_CLASSES))
    return root
