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


from sparsesis.data.toydata import FOUR_CLASSES, TOY_COLOURS, make_toy_dataset  # noqa: E402,F401  (the tests' toy data)


@pytest.fixture
def toy_root(tmp_path):
    return make_toy_dataset(tmp_path / "toy")


def tiny_teacher(toy_root: Path, folder: Path, steps: int = 2) -> str:
    """A tiny diffusion teacher trained ``steps`` steps on the toy data -> its exported model folder."""
    from sparsesis.training.train import TrainConfig, train

    train(TrainConfig(run=str(folder), data=str(toy_root), preset="tiny", image_size=32, batch_size=4, steps=steps,
                      sample_every=10 ** 9, threads=2))
    return str(folder / "export")


def make_segnet_dataset(root: Path, photo_ext: str = ".jpg", counts=(6, 2, 3), size=(36, 48), seed: int = 0) -> Path:
    """A small data set laid out as SegNet publishes CamVid: ``train/``, ``trainannot/``, ... with one-channel index
    label maps (the camvid class ids; 11 = void), and split lists naming paths from SegNet's own container.
    Photos as ``photo_ext`` (the shared copy has ``.jpg``, the public repository ``.png``)."""
    rng = np.random.default_rng(seed)
    colours = np.array([[120, 170, 230], [150, 120, 110], [90, 90, 90], [70, 70, 75], [160, 160, 150],
                        [40, 110, 40], [200, 200, 40], [100, 90, 80], [180, 30, 30], [230, 180, 150],
                        [30, 30, 200], [0, 0, 0]], np.uint8)
    h, w = size
    for split, n in zip(("train", "val", "test"), counts):
        (root / split).mkdir(parents=True)
        (root / f"{split}annot").mkdir()
        lines = []
        for i in range(n):
            lab = np.full((h, w), 3, np.uint8)  # road
            sky_end, wall_end = rng.integers(6, 12), rng.integers(18, 24)
            lab[:sky_end] = 0
            lab[sky_end:wall_end] = 1
            cv2.circle(lab, (int(rng.integers(8, w - 8)), int(rng.integers(14, h - 8))), 4, 8, -1)  # a car
            lab[:, :3] = 11  # nobody labelled the left edge
            photo = np.clip(colours[lab].astype(np.int16) + rng.integers(-10, 10, (h, w, 3)), 0, 255).astype(np.uint8)
            stem = {"train": f"0001TP_{i:06d}", "val": f"0006R0_f{i:05d}", "test": f"Seq05VD_f{i:05d}"}[split]
            cv2.imwrite(str(root / split / f"{stem}{photo_ext}"), cv2.cvtColor(photo, cv2.COLOR_RGB2BGR))
            cv2.imwrite(str(root / f"{split}annot" / f"{stem}.png"), lab)
            lines.append(f"/SegNet/CamVid/{split}/{stem}.png /SegNet/CamVid/{split}annot/{stem}.png")
        (root / f"{split}.txt").write_text("\n".join(lines) + "\n")
    return root


@pytest.fixture
def segnet_root(tmp_path):
    return make_segnet_dataset(tmp_path / "camvid")
