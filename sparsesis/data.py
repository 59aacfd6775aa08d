"""Photo + label-map data sets: discovery, decoding, resizing, caching, splits, augmentation.

A data set is a folder with ``images/<stem>.jpg|png``, ``labels/<stem>.png`` (colour-coded with the
class set's palette) and split lists (one ``images/<stem>.jpg`` path or stem per line). A
``classes.json`` in the folder gives the class set and the split files (see ``sparsesis.classes``);
a folder without one is read as LabelMeFacade.

LabelMeFacade split (documented choice): we *train* on the 845 images of ``test.txt`` and *evaluate*
on the 100 of ``train.txt``. The published lists are the other way round, which suits segmentation,
not synthesis (a generator needs the larger set).

Arrays are prepared once per (folder, size) and cached as ``.npz`` under ``$SPARSESIS_CACHE``
(default ``~/.cache/sparsesis``), so a second load takes a fraction of a second.
"""
from __future__ import annotations

import hashlib
import json
import os
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np

from .checkpoint import save_npz_atomic
from .classes import ClassSet, LABELMEFACADE

DATA_ENV = "SPARSESIS_DATA"
CACHE_ENV = "SPARSESIS_CACHE"
CLASS_FILE = "classes.json"
LABELMEFACADE_SPLITS = {"train": "test.txt", "eval": "train.txt"}
DEFAULT_SPLITS = {"train": "train.txt", "eval": "val.txt"}
DOWNLOAD_HINT = (
    "Get LabelMeFacade with\n"
    "    python -m sparsesis.download --dest data/labelmefacade\n"
    f"then pass --data data/labelmefacade or set {DATA_ENV}=data/labelmefacade.")


class DataError(RuntimeError):
    """The data folder is missing, incomplete or holds a file we cannot read."""


# ---------------------------------------------------------------------------------------------
# where the data is and what it holds
# ---------------------------------------------------------------------------------------------
def resolve_data_root(path: str | os.PathLike | None = None) -> Path:
    """The data folder from an explicit path, else ``$SPARSESIS_DATA``; a clear error otherwise."""
    chosen = path if path is not None else os.environ.get(DATA_ENV)
    if not chosen:
        raise DataError(f"No data folder given: pass a path (--data) or set {DATA_ENV}.\n{DOWNLOAD_HINT}")
    root = Path(chosen).expanduser()
    if not root.is_dir():
        raise DataError(f"Data folder {root} does not exist.\n{DOWNLOAD_HINT}")
    for sub in ("images", "labels"):
        if not (root / sub).is_dir():
            raise DataError(f"Data folder {root} has no '{sub}/' subfolder: expected images/ and labels/ "
                            f"(and split lists).\n{DOWNLOAD_HINT}")
    return root


def dataset_info(root: Path) -> tuple[ClassSet, dict[str, str]]:
    """The class set and split-file names of a data folder."""
    class_file = root / CLASS_FILE
    if class_file.is_file():
        meta = json.loads(class_file.read_text())
        return ClassSet.from_dict(meta), {**DEFAULT_SPLITS, **meta.get("splits", {})}
    return LABELMEFACADE, dict(LABELMEFACADE_SPLITS)


def split_stems(root: Path, split: str) -> list[str]:
    _, splits = dataset_info(root)
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; this data set has {sorted(splits)}")
    list_file = root / splits[split]
    if not list_file.is_file():
        raise DataError(f"Split list {list_file} is missing (split {split!r}).\n{DOWNLOAD_HINT}")
    stems = [Path(line.strip()).stem for line in list_file.read_text().splitlines() if line.strip()]
    if not stems:
        raise DataError(f"Split list {list_file} is empty")
    return stems


# ---------------------------------------------------------------------------------------------
# decoding one pair
# ---------------------------------------------------------------------------------------------
def read_photo(path: Path) -> np.ndarray:
    """-> ``(H, W, 3)`` uint8 RGB."""
    img = cv2.imread(str(path), cv2.IMREAD_COLOR)
    if img is None:
        raise DataError(f"cannot read photo {path} (missing or corrupt)")
    return cv2.cvtColor(img, cv2.COLOR_BGR2RGB)


def read_label_rgb(path: Path) -> np.ndarray:
    """Colour-coded label map -> ``(H, W, 3)`` uint8 RGB (16-bit maps are scaled down by 257)."""
    img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    if img is None:
        raise DataError(f"cannot read label map {path} (missing or corrupt)")
    if img.dtype == np.uint16:
        img = np.round(img.astype(np.float64) / 257.0).astype(np.uint8)
    if img.ndim == 2:
        img = np.repeat(img[:, :, None], 3, axis=2)
    img = img[:, :, :3]
    return np.ascontiguousarray(img[:, :, ::-1])  # BGR -> RGB


def read_label_ids(path: Path, classset: ClassSet) -> np.ndarray:
    """-> ``(H, W)`` ids; a colour off the palette raises ``PaletteError`` naming the file."""
    return classset.colors_to_ids(read_label_rgb(path), allow_unknown=False, source=f"label map {path}")


def find_photo(root: Path, stem: str) -> Path:
    for ext in (".jpg", ".jpeg", ".png"):
        p = root / "images" / f"{stem}{ext}"
        if p.is_file():
            return p
    raise DataError(f"no photo images/{stem}.jpg|png in {root}")


def resize_short_side(photo: np.ndarray, label: np.ndarray, size: int) -> tuple[np.ndarray, np.ndarray]:
    """Scale so the short side is ``size``: area for the photo, nearest for the labels."""
    h, w = label.shape
    if photo.shape[:2] != (h, w):
        raise DataError(f"photo {photo.shape[:2]} and label map {(h, w)} differ in size")
    s = size / min(h, w)
    nh, nw = max(size, round(h * s)), max(size, round(w * s))
    photo = cv2.resize(photo, (nw, nh), interpolation=cv2.INTER_AREA)
    label = cv2.resize(label.astype(np.uint8), (nw, nh), interpolation=cv2.INTER_NEAREST)
    return photo, label


def crop_square(arr: np.ndarray, size: int, offset: float = 0.5) -> np.ndarray:
    """Square ``size`` crop along the long side; ``offset`` 0..1 (0.5 = centre)."""
    h, w = arr.shape[:2]
    y = int(round((h - size) * offset))
    x = int(round((w - size) * offset))
    return arr[y:y + size, x:x + size]


# ---------------------------------------------------------------------------------------------
# a prepared split in memory
# ---------------------------------------------------------------------------------------------
@dataclass
class PairSet:
    """One split at one size. ``photos[i]``: (h, w, 3) uint8, ``labels[i]``: (h, w) uint8 ids,
    short side = ``size`` (long side kept, for crop augmentation)."""

    photos: list[np.ndarray]
    labels: list[np.ndarray]
    stems: list[str]
    classset: ClassSet
    size: int

    def __len__(self) -> int:
        return len(self.stems)

    def centre(self, i: int) -> tuple[np.ndarray, np.ndarray]:
        """The evaluation view: square centre crop -> ``(S, S, 3)`` photo, ``(S, S)`` ids."""
        return crop_square(self.photos[i], self.size), crop_square(self.labels[i], self.size).astype(np.int64)

    def augmented(self, i: int, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """The training view: a random square crop along the long side and a random horizontal flip."""
        off = rng.random()
        photo, label = crop_square(self.photos[i], self.size, off), crop_square(self.labels[i], self.size, off)
        if rng.random() < 0.5:
            photo, label = photo[:, ::-1], label[:, ::-1]
        return np.ascontiguousarray(photo), np.ascontiguousarray(label).astype(np.int64)

    def centre_arrays(self) -> tuple[np.ndarray, np.ndarray]:
        """All centre crops: ``(N, S, S, 3)`` uint8 photos and ``(N, S, S)`` int64 ids."""
        pairs = [self.centre(i) for i in range(len(self))]
        return np.stack([p for p, _ in pairs]), np.stack([l for _, l in pairs])


def cache_root() -> Path:
    """Where derived data (prepared splits, features) is cached: $SPARSESIS_CACHE, else ~/.cache/sparsesis."""
    return Path(os.environ.get(CACHE_ENV, Path.home() / ".cache" / "sparsesis"))


def _cache_key(root: Path, split: str, size: int, stems: list[str]) -> str:
    h = hashlib.sha1()
    h.update(str(root.resolve()).encode())
    h.update(f"{split}:{size}:v1".encode())
    for s in stems:
        p = find_photo(root, s)
        st_p, st_l = p.stat(), (root / "labels" / f"{s}.png").stat()
        h.update(f"{s}:{st_p.st_size}:{st_l.st_size}".encode())
    return h.hexdigest()[:16]


def load_split(split: str = "train", size: int = 64, root: str | os.PathLike | None = None,
               progress: bool = True, use_cache: bool = True) -> PairSet:
    """Load a split at ``size`` (short side), from the cache when it is there.

    ``split`` is ``"train"`` or ``"eval"`` (see the module docstring for LabelMeFacade's mapping).
    """
    if size < 8:
        raise ValueError(f"size must be at least 8 pixels, got {size}")
    root = resolve_data_root(root)
    classset, _ = dataset_info(root)
    stems = split_stems(root, split)
    cache = cache_root() / f"{classset.name}_{split}_{size}_{_cache_key(root, split, size, stems)}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                return _unflatten(z, stems, classset, size)
        except Exception:  # a damaged cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    photos, labels = [], []
    it = stems
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(stems, desc=f"preparing {split} @ {size}px", unit="img")
    for stem in it:
        label_path = root / "labels" / f"{stem}.png"
        if not label_path.is_file():
            raise DataError(f"label map {label_path} is missing for photo {stem}")
        photo, label = resize_short_side(read_photo(find_photo(root, stem)), read_label_ids(label_path, classset), size)
        photos.append(photo)
        labels.append(label)
    if use_cache:
        save_npz_atomic(cache, _flatten(photos, labels))
    return PairSet(photos, labels, stems, classset, size)


def _flatten(photos, labels) -> dict:
    shapes = np.array([l.shape for l in labels], dtype=np.int64)
    return {"shapes": shapes, "photos": np.concatenate([p.reshape(-1) for p in photos]),
            "labels": np.concatenate([l.reshape(-1) for l in labels])}


def _unflatten(z, stems, classset, size) -> PairSet:
    shapes = z["shapes"]
    flat_p, flat_l = z["photos"], z["labels"]
    photos, labels, op, ol = [], [], 0, 0
    for h, w in shapes:
        photos.append(flat_p[op:op + h * w * 3].reshape(h, w, 3))
        labels.append(flat_l[ol:ol + h * w].reshape(h, w))
        op, ol = op + h * w * 3, ol + h * w
    if len(photos) != len(stems):
        raise DataError("cache does not match the split list")
    return PairSet(photos, labels, stems, classset, size)


def photo_to_tensor(photo: np.ndarray):
    """``(B, H, W, 3)`` or ``(H, W, 3)`` uint8 -> float tensor ``(B, 3, H, W)`` in [-1, 1]."""
    import torch

    t = torch.as_tensor(np.ascontiguousarray(photo))
    if t.ndim == 3:
        t = t[None]
    return t.permute(0, 3, 1, 2).float().div(127.5).sub(1.0)


def tensor_to_photo(x) -> np.ndarray:
    """``(B, 3, H, W)`` in [-1, 1] -> ``(B, H, W, 3)`` uint8."""
    return ((x.detach().float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()
