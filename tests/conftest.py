import json
import os
from pathlib import Path

import cv2
import numpy as np
import pytest
import torch

torch.set_num_threads(int(os.environ.get("SPARSESIS_TEST_THREADS", "2")))  # 1 beside a training run

REPO = Path(__file__).resolve().parents[1]
DATA = os.environ.get("SPARSESIS_DATA")


def benchmark_module(name: str):
    """``benchmarks/<name>.py`` imported as a module (the scripts import their neighbour ``common``)."""
    import importlib.util
    import sys

    sys.path.insert(0, str(REPO / "benchmarks"))
    spec = importlib.util.spec_from_file_location(name, REPO / "benchmarks" / f"{name}.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


@pytest.fixture(autouse=True)
def _isolated_cache(tmp_path_factory, monkeypatch):
    monkeypatch.setenv("SPARSESIS_CACHE", str(tmp_path_factory.getbasetemp() / "cache"))


def needs_data():
    """Skip, saying why, when the LabelMeFacade folder is not configured."""
    if not DATA or not Path(DATA).is_dir():
        pytest.skip("LabelMeFacade not available: set SPARSESIS_DATA to its folder (see README, 'Data')")
    return Path(DATA)


@pytest.fixture
def lmf_root():
    return needs_data()


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


@pytest.fixture
def toy_root(tmp_path):
    return make_toy_dataset(tmp_path / "toy")


def tiny_teacher(toy_root: Path, folder: Path, steps: int = 2) -> str:
    """A tiny diffusion teacher trained ``steps`` steps on the toy data -> its exported model folder."""
    from sparsesis.train import TrainConfig, train

    train(TrainConfig(run=str(folder), data=str(toy_root), preset="tiny", image_size=32, batch_size=4, steps=steps,
                      sample_every=10 ** 9, threads=2))
    return str(folder / "export")
