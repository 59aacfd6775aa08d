"""Turning whatever a user hands us into the package's one layout form: ``(B, H, W)`` int64 ids.

Accepted: an id map ``(H, W)``/``(B, H, W)`` of integers; a colour image ``(H, W, 3)``/``(B, H, W, 3)`` uint8
in the class palette (UNKNOWN = the palette's unknown colour); a one-hot/score tensor ``(B, K+1, H, W)``.
"""
from __future__ import annotations

import cv2
import numpy as np
import torch

from .classes import ClassSet


class LayoutError(ValueError):
    """A layout has the wrong shape, size, type or colours."""


def to_ids(layout, classset: ClassSet, size: int | None = None, snap_colors: bool = False) -> np.ndarray:
    """Any accepted layout -> ``(B, H, W)`` int64 ids; checks the size when ``size`` is given."""
    if isinstance(layout, torch.Tensor):
        t = layout.detach().cpu()
        if t.ndim == 4 and t.is_floating_point():
            if t.shape[1] != classset.num_channels:
                raise LayoutError(f"a one-hot layout needs {classset.num_channels} channels "
                                  f"({classset.num_classes} classes + unknown), got {t.shape[1]}")
            ids = t.argmax(1).numpy()
        else:
            ids = _from_array(t.numpy(), classset, snap_colors)
    else:
        ids = _from_array(np.asarray(layout), classset, snap_colors)
    if size is not None and ids.shape[-2:] != (size, size):
        raise LayoutError(f"layout is {ids.shape[-1]}x{ids.shape[-2]} (WxH) but this model makes {size}x{size} "
                          f"images; resize it first with sparsesis.data.layouts.resize_ids(ids, {size})")
    return ids.astype(np.int64)


def _from_array(a: np.ndarray, classset: ClassSet, snap_colors: bool) -> np.ndarray:
    if a.ndim in (3, 4) and a.shape[-1] == 3 and a.dtype == np.uint8:
        imgs = a if a.ndim == 4 else a[None]
        return np.stack([classset.colors_to_ids(im, nearest=snap_colors, source="layout image") for im in imgs])
    if a.ndim in (3, 4) and a.shape[-1] == 4 and a.dtype == np.uint8:
        raise LayoutError("layout image has an alpha channel: pass RGB (H, W, 3), e.g. image[..., :3]")
    if a.ndim in (2, 3) and np.issubdtype(a.dtype, np.integer):
        ids = a if a.ndim == 3 else a[None]
        try:
            classset.check_ids(ids)
        except ValueError as err:
            raise LayoutError(str(err)) from err
        return ids
    raise LayoutError(f"cannot read a layout of shape {a.shape} and dtype {a.dtype}: pass (H, W) integer ids, "
                      "an (H, W, 3) uint8 colour image in the palette, or a (B, K+1, H, W) one-hot tensor")


def resize_ids(ids: np.ndarray, size: int) -> np.ndarray:
    """Nearest-neighbour resize of an ``(H, W)`` id map to ``(size, size)`` after a square centre crop."""
    crop = centre_square(np.asarray(ids)).astype(np.int32)
    return cv2.resize(crop, (size, size), interpolation=cv2.INTER_NEAREST).astype(np.int64)


def centre_square(a: np.ndarray) -> np.ndarray:
    """The largest centred square of an ``(H, W, ...)`` array."""
    h, w = a.shape[:2]
    s = min(h, w)
    y, x = (h - s) // 2, (w - s) // 2
    return a[y:y + s, x:x + s]


def downsample_ids(ids: np.ndarray, size: int, num_channels: int, min_cover: float = 0.2) -> np.ndarray:
    """Area-downsample an ``(H, W)`` id map to ``(size, size)`` keeping thin strokes.

    Each output pixel takes the most common *labelled* class in its cell when labelled pixels cover at
    least ``min_cover`` of it, else UNKNOWN (= ``num_channels - 1``). Nearest resizing would drop a
    thin brush stroke at random; this keeps it.
    """
    ids = np.asarray(ids)
    h, w = ids.shape
    if (h, w) == (size, size):
        return ids.astype(np.int64)
    unknown = num_channels - 1
    onehot = (ids[..., None] == np.arange(num_channels)).astype(np.float32)
    area = cv2.resize(onehot, (size, size), interpolation=cv2.INTER_AREA)
    if area.ndim == 2:
        area = area[..., None]
    labelled = area[..., :unknown]
    out = labelled.argmax(-1)
    out[labelled.sum(-1) < min_cover] = unknown
    return out.astype(np.int64)


def canvas_to_ids(rgba: np.ndarray, classset: ClassSet, size: int, max_side: int = 4096) -> np.ndarray:
    """A painted canvas (``(H, W, 3|4)`` uint8; transparent or unknown-coloured = unlabelled) -> ``(size, size)`` ids.

    Colours snap to the nearest palette entry (browsers may blend brush edges; a canvas mostly off the palette,
    a photo say, raises ``PaletteError``), then the map is centre-cropped to a square and area-downsampled with ``downsample_ids``.
    """
    a = np.asarray(rgba)
    if a.ndim != 3 or a.shape[2] not in (3, 4) or a.dtype != np.uint8:
        raise LayoutError(f"canvas must be an (H, W, 3 or 4) uint8 image, got shape {a.shape}, dtype {a.dtype}")
    if max(a.shape[:2]) > max_side:
        raise LayoutError(f"canvas is {a.shape[1]}x{a.shape[0]}: larger than {max_side}px on a side; "
                          "upload a smaller label map")
    rgb = a[..., :3]
    opaque = a[..., 3] >= 128 if a.shape[2] == 4 else None
    ids = classset.colors_to_ids(rgb, nearest=True, valid=opaque, source="canvas")
    if opaque is not None:
        ids[~opaque] = classset.unknown_id
    return downsample_ids(centre_square(ids), size, classset.num_channels)


def is_single(layout) -> bool:
    """One layout (-> one image) or a batch (-> a batch)? ids ``(H, W)`` and colour maps ``(H, W, 3)`` uint8 are
    one; ``(B, H, W)`` ids and ``(B, K+1, H, W)`` one-hot tensors are batches."""
    if isinstance(layout, torch.Tensor):
        if layout.ndim == 4 and layout.is_floating_point():
            return False  # a one-hot batch
        layout = layout.cpu().numpy()
    a = np.asarray(layout)
    return a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3 and a.dtype == np.uint8)


def region_at(region, size: int, b: int = 1) -> np.ndarray:
    """A bool region ``(H, W)`` or ``(b, H, W)`` at a multiple of ``size`` -> ``(b, size, size)`` at ``size`` (a
    pixel there is in the region when any of its cell is)."""
    r = np.asarray(region).astype(bool)
    r = r[None] if r.ndim == 2 else r
    if r.ndim != 3 or r.shape[1] != r.shape[2] or r.shape[1] % size or len(r) not in (1, b):
        raise LayoutError(f"region must be a square bool mask at {size}x{size} (or a multiple), got "
                          f"{np.asarray(region).shape}")
    f = r.shape[1] // size
    r = r.reshape(len(r), size, f, size, f).any(axis=(2, 4))
    return np.broadcast_to(r, (b, size, size)).copy()
