"""Photo + label-map data sets: discovery, decoding, resizing, caching, splits, augmentation.

A data set is a folder of photos (``.jpg`` or ``.png``), label maps and split lists, as data sets are
published. A split list line names a photo (a path, or a stem) and optionally its label map; paths written
on another machine (SegNet's ``/SegNet/CamVid/train/x.png``) are matched by their trailing parts, so the
lists need no editing; a line with a photo alone takes ``labels/<stem>.png``. A ``classes.json`` in the
folder gives the class set, the split files (a split may join several lists) and the label format:
colour-coded in the palette or one-channel index maps, and the void ids (or colours) that mean "nobody
labelled this", read as UNKNOWN (see ``LabelFormat``). A folder laid out as SegNet publishes CamVid is read
with the built-in ``camvid`` class file; any other folder without a class file as LabelMeFacade.

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

from ..files import save_npz_atomic
from .classes import ClassSet, LABELMEFACADE

DATA_ENV = "SPARSESIS_DATA"
CACHE_ENV = "SPARSESIS_CACHE"
CLASS_FILE = "classes.json"
LABELMEFACADE_SPLITS = {"train": "test.txt", "eval": "train.txt"}
DEFAULT_SPLITS = {"train": "train.txt", "eval": "val.txt"}
DOWNLOAD_HINT = (
    "Get LabelMeFacade with\n"
    "    python -m sparsesis.data.download --dest data/labelmefacade\n"
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
    if _class_meta(root) is None:  # read as LabelMeFacade: images/ and labels/
        for sub in ("images", "labels"):
            if not (root / sub).is_dir():
                raise DataError(f"Data folder {root} has no '{sub}/' subfolder and no {CLASS_FILE}: expected images/ "
                                f"and labels/ (and split lists), or a class file naming the format.\n{DOWNLOAD_HINT}")
    return root


def _class_meta(root: Path) -> dict | None:
    """The folder's class file as a dict: ``classes.json`` when it has one, the built-in ``camvid`` file for a
    folder laid out as SegNet publishes CamVid (``trainannot/`` beside ``train.txt``), else None (LabelMeFacade)."""
    class_file = root / CLASS_FILE
    if class_file.is_file():
        try:
            return json.loads(class_file.read_text())
        except json.JSONDecodeError as err:
            raise DataError(f"{class_file} is not valid JSON ({err}): fix or remove it") from None
    if (root / "trainannot").is_dir() and (root / "train.txt").is_file():
        from .classes import builtin_dict

        return builtin_dict("camvid")
    return None


def excluded(root: Path, split: str) -> set[str]:
    """Stems the class file leaves out of ``split`` (``"exclude": {"eval": [...], "rule": ...}``): held-out photos
    that nearly copy a training photo (``near_copies``), which would flatter every figure measured on them."""
    meta = _class_meta(root)
    if meta is None:
        from .classes import builtin_dict

        meta = builtin_dict("labelmefacade")
    return set(meta.get("exclude", {}).get(split, []))


NEAR_COPY = 8.0  # see near_copies


def near_copies(held_out: np.ndarray, train: np.ndarray, threshold: float = NEAR_COPY) -> list[tuple[int, float]]:
    """The held-out photos within ``threshold`` of a training photo or its mirror image: Euclidean distance of
    their (N, S, S, 3) uint8 centre crops in [0, 1] units (8.0 at 64 px is about 18 grey levels RMS). Measured at
    64 px: LabelMeFacade's held-out photos lie 0.63 and 6.8 (the same street, re-encoded) and then 16.4 or more
    from their nearest training photo; CamVid's test frames 9.8 or more (frames of one drive, no copies).
    -> [(index, distance)]."""
    from .nearest import nearest, pixel_rows

    dist, _ = nearest(pixel_rows(held_out), pixel_rows(train, with_flips=True))
    return [(int(i), round(float(d), 4)) for i, d in enumerate(dist) if d < threshold]


def dataset_info(root: Path) -> tuple[ClassSet, dict[str, str | list[str]]]:
    """The class set and split-file names of a data folder (a split may name several list files)."""
    meta = _class_meta(root)
    if meta is None:
        return LABELMEFACADE, dict(LABELMEFACADE_SPLITS)
    try:
        classset = ClassSet.from_dict(meta)
    except ValueError as err:
        raise DataError(f"class file of {root}: {err}") from None
    return classset, {**DEFAULT_SPLITS, **meta.get("splits", {})}


@dataclass(frozen=True)
class LabelFormat:
    """How a data set's label maps encode classes. ``kind`` "color": RGB in the class set's palette; "index": one
    channel of class ids. ``void``: ids (index) or RGB triples (color) that mark pixels nobody labelled; they are
    read as UNKNOWN, never as a class (and mIoU leaves them out)."""

    kind: str = "color"
    void: tuple = ()


def label_format(root: Path) -> LabelFormat:
    """The label format the folder's class file names (``"labels": {"format": ..., "void": [...]}``)."""
    meta = _class_meta(root) or {}
    spec = meta.get("labels", {})
    kind = spec.get("format", "color")
    if kind not in ("color", "index"):
        raise DataError(f"class file of {root}: labels.format must be 'color' or 'index', got {kind!r}")
    void = tuple(tuple(int(c) for c in v) if isinstance(v, (list, tuple)) else int(v) for v in spec.get("void", []))
    return LabelFormat(kind, void)


@dataclass(frozen=True)
class Entry:
    """One photo and its label map, found from a split list line."""

    stem: str
    photo: Path
    label: Path


PHOTO_SUFFIXES = (".jpg", ".jpeg", ".png")


def _find(root: Path, token: str, suffixes: tuple[str, ...]) -> Path | None:
    """A file a list names, matched whatever folder the list's paths come from: the path's trailing parts under
    ``root`` (longest first), with each of ``suffixes`` in place of its own."""
    parts = [p for p in token.replace("\\", "/").split("/") if p not in ("", ".")]
    for k in range(len(parts)):
        base = root.joinpath(*parts[k:])
        for cand in (base, *(base.with_suffix(s) for s in suffixes)):
            if cand.is_file():
                return cand
    return None


def split_entries(root: Path, split: str) -> list[Entry]:
    """The photo / label pairs of a split, in list order. A list line holds a photo path (a stem will do) and
    optionally its label map's path; paths from another machine are matched by their trailing parts, photos as
    ``.jpg`` or ``.png``; without a label path the label is ``labels/<stem>.png``."""
    _, splits = dataset_info(root)
    if split not in splits:
        raise ValueError(f"unknown split {split!r}; this data set has {sorted(splits)}")
    files = splits[split] if isinstance(splits[split], list) else [splits[split]]
    entries, seen = [], set()
    for name in files:
        list_file = root / name
        if not list_file.is_file():
            raise DataError(f"Split list {list_file} is missing (split {split!r}).\n{DOWNLOAD_HINT}")
        for n, line in enumerate(list_file.read_text().splitlines(), 1):
            tokens = line.split()
            if not tokens:
                continue
            stem = Path(tokens[0]).stem
            photo = _find(root, tokens[0], PHOTO_SUFFIXES) or _find(root, f"images/{stem}", PHOTO_SUFFIXES)
            if photo is None:
                raise DataError(f"{list_file}:{n}: no photo for {tokens[0]!r} in {root} (looked for its path's "
                                f"trailing parts and images/{stem}.jpg|png): restore the file or remove the line")
            label_token = tokens[1] if len(tokens) > 1 else f"labels/{stem}.png"
            label = _find(root, label_token, (".png",))
            if label is None:
                raise DataError(f"{list_file}:{n}: no label map for {label_token!r} in {root}: restore the file "
                                "or remove the line")
            if stem in seen:
                raise DataError(f"{list_file}:{n}: {stem!r} is listed twice in split {split!r}: remove one line")
            seen.add(stem)
            entries.append(Entry(stem, photo, label))
    if not entries:
        raise DataError(f"split {split!r} of {root} lists no photos ({', '.join(files)} empty)")
    drop = excluded(root, split)
    return [e for e in entries if e.stem not in drop]


def split_stems(root: Path, split: str) -> list[str]:
    return [e.stem for e in split_entries(root, split)]


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


def read_label_ids(path: Path, classset: ClassSet, fmt: LabelFormat = LabelFormat()) -> np.ndarray:
    """-> ``(H, W)`` ids, void pixels as UNKNOWN; a map that does not fit the format raises ``DataError`` naming
    the file and the fix."""
    if fmt.kind == "index":
        img = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
        if img is None:
            raise DataError(f"cannot read label map {path} (missing or corrupt)")
        if img.ndim == 3:
            if not (img[:, :, :1] == img[:, :, :3]).all():
                raise DataError(f"label map {path} is a colour image, but the class file says labels.format "
                                "'index': set it to 'color', or give one-channel id maps")
            img = img[:, :, 0]
        ids = img.astype(np.int64)
        void = np.isin(ids, [v for v in fmt.void if isinstance(v, int)])
        bad = (ids >= classset.num_classes) & ~void
        if bad.any():
            raise DataError(f"label map {path} holds id {int(ids[bad][0])}, outside the {classset.num_classes} classes "
                            f"of {classset.name} (0..{classset.num_classes - 1}) and not a void id {list(fmt.void)}: "
                            "add it to labels.void in the class file, or fix the map")
        ids[void] = classset.unknown_id
        return ids
    rgb = read_label_rgb(path)
    void = np.zeros(rgb.shape[:2], bool)
    for c in fmt.void:
        if isinstance(c, tuple):
            void |= (rgb == np.array(c, np.uint8)).all(-1)
    if void.any():
        rgb = rgb.copy()
        rgb[void] = classset.colors[0]
    try:
        ids = classset.colors_to_ids(rgb, allow_unknown=False, source=f"label map {path}")
    except ValueError as err:
        raise DataError(f"{err}; if those pixels are unlabelled, list the colour in labels.void of the class "
                        "file") from None
    ids[void] = classset.unknown_id
    return ids


def find_photo(root: Path, stem: str) -> Path:
    for ext in PHOTO_SUFFIXES:
        p = root / "images" / f"{stem}{ext}"
        if p.is_file():
            return p
    raise DataError(f"no photo images/{stem}.jpg|png in {root}")


def resize_short_side(photo: np.ndarray, label: np.ndarray, size: int,
                      name: str = "") -> tuple[np.ndarray, np.ndarray]:
    """Scale so the short side is ``size``: area for the photo, nearest for the labels."""
    h, w = label.shape
    if photo.shape[:2] != (h, w):
        raise DataError(f"{name + ': ' if name else ''}photo {photo.shape[:2]} and label map {(h, w)} differ in size: "
                        "a label map must match its photo pixel for pixel")
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


def _cache_key(root: Path, split: str, size: int, entries: list[Entry], fmt: LabelFormat) -> str:
    h = hashlib.sha1()
    h.update(str(root.resolve()).encode())
    h.update(f"{split}:{size}:v2:{fmt}".encode())
    for e in entries:
        h.update(f"{e.stem}:{e.photo.name}:{e.photo.stat().st_size}:{e.label.stat().st_size}".encode())
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
    fmt = label_format(root)
    entries = split_entries(root, split)
    stems = [e.stem for e in entries]
    cache = cache_root() / f"{classset.name}_{split}_{size}_{_cache_key(root, split, size, entries, fmt)}.npz"
    if use_cache and cache.is_file():
        try:
            with np.load(cache) as z:
                return _unflatten(z, stems, classset, size)
        except Exception:  # a damaged cache is rebuilt, never trusted
            cache.unlink(missing_ok=True)
    photos, labels = [], []
    it = entries
    if progress:
        from tqdm.auto import tqdm
        it = tqdm(entries, desc=f"preparing {split} @ {size}px", unit="img")
    for e in it:
        photo, label = resize_short_side(read_photo(e.photo), read_label_ids(e.label, classset, fmt), size, e.stem)
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
