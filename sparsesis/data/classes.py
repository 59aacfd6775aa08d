"""Class sets as data: names, palette colours and the explicit UNKNOWN id.

Inside the package a layout is always an integer map ``(H, W)`` of class ids in ``[0, K)`` plus
``K`` (= ``ClassSet.unknown_id``) for "no label here". Colour images and one-hot tensors are
conversions at the edges, and they all live in this module.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path

import numpy as np


# Snapping a painted layout to the palette: a pixel farther than this (Euclidean, RGB 0-255) from every palette
# colour is "off the palette"; up to this share of such pixels is what anti-aliased stroke edges produce.
PALETTE_TOLERANCE = 40
MAX_OFF_PALETTE_SHARE = 0.10


class PaletteError(ValueError):
    """A colour image holds a colour that is not in the class set's palette."""


@dataclass(frozen=True)
class ClassSet:
    """The classes of one data set. ``unknown_color`` is only used to draw/read UNKNOWN pixels."""

    name: str
    names: tuple[str, ...]
    colors: tuple[tuple[int, int, int], ...]
    unknown_color: tuple[int, int, int] = (255, 255, 255)

    def __post_init__(self):
        if len(self.names) == 0:
            raise ValueError("a class set needs at least one class")
        if len(self.names) != len(self.colors):
            raise ValueError(f"class set {self.name!r}: {len(self.names)} names but {len(self.colors)} colours")
        all_colors = list(self.colors) + [self.unknown_color]
        if len(set(map(tuple, all_colors))) != len(all_colors):
            raise ValueError(f"class set {self.name!r}: colours must be distinct (unknown included)")
        for c in all_colors:
            if len(c) != 3 or not all(0 <= int(v) <= 255 for v in c):
                raise ValueError(f"class set {self.name!r}: colour {c} is not an RGB triple in 0..255")

    # ---- basic facts -------------------------------------------------------------------------
    @property
    def num_classes(self) -> int:
        return len(self.names)

    @property
    def unknown_id(self) -> int:
        return len(self.names)

    @property
    def num_channels(self) -> int:
        """One-hot channels a model sees: the classes plus UNKNOWN."""
        return len(self.names) + 1

    def palette(self) -> np.ndarray:
        """``(K + 1, 3)`` uint8: row i is the colour of id i, the last row UNKNOWN's."""
        return np.array(list(self.colors) + [self.unknown_color], dtype=np.uint8)

    # ---- serialisation ------------------------------------------------------------------------
    def to_dict(self) -> dict:
        return {
            "name": self.name,
            "classes": [{"id": i, "name": n, "color": list(c)} for i, (n, c) in enumerate(zip(self.names, self.colors))],
            "unknown_color": list(self.unknown_color),
        }

    @classmethod
    def from_dict(cls, d: dict) -> "ClassSet":
        try:
            entries = sorted(d["classes"], key=lambda e: e["id"])
            ids = [int(e["id"]) for e in entries]
            if ids != list(range(len(entries))):
                raise ValueError(f"class ids must be 0..{len(entries) - 1} without gaps, got {ids}")
            return cls(
                name=str(d.get("name", "custom")),
                names=tuple(str(e["name"]) for e in entries),
                colors=tuple(tuple(int(v) for v in e["color"]) for e in entries),
                unknown_color=tuple(int(v) for v in d.get("unknown_color", (255, 255, 255))),
            )
        except (KeyError, TypeError) as err:
            raise ValueError(f"malformed class set: missing or wrong field ({err}); expected "
                             '{"name": ..., "classes": [{"id", "name", "color"}], "unknown_color": [r, g, b]}') from err

    @classmethod
    def from_json(cls, path: str | Path) -> "ClassSet":
        path = Path(path)
        if not path.is_file():
            raise FileNotFoundError(f"class file not found: {path}")
        try:
            data = json.loads(path.read_text())
        except json.JSONDecodeError as err:
            raise ValueError(f"class file {path} is not valid JSON: {err}") from err
        return cls.from_dict(data)

    def save_json(self, path: str | Path) -> None:
        Path(path).write_text(json.dumps(self.to_dict(), indent=2) + "\n")

    # ---- conversions ------------------------------------------------------------------------
    def colors_to_ids(self, rgb: np.ndarray, *, allow_unknown: bool = True, source: str = "image",
                      nearest: bool = False, valid: np.ndarray | None = None) -> np.ndarray:
        """``(H, W, 3)`` uint8 RGB -> ``(H, W)`` int64 ids.

        Exact matching by default: a colour outside the palette raises ``PaletteError`` naming
        ``source`` and the colour. ``nearest=True`` snaps every pixel to the closest palette colour
        instead (for brush strokes whose edges a browser may have blended), as long as at most
        ``MAX_OFF_PALETTE_SHARE`` of the pixels (among ``valid`` ones, a boolean (H, W) mask) lie farther than
        ``PALETTE_TOLERANCE`` from every palette colour: more than that is a photo or noise, not a layout,
        and raises ``PaletteError`` with the share and the palette.
        """
        rgb = np.asarray(rgb)
        if rgb.ndim != 3 or rgb.shape[2] != 3:
            raise ValueError(f"{source}: expected an (H, W, 3) RGB image, got shape {rgb.shape}")
        pal = self.palette() if allow_unknown else self.palette()[:-1]
        pix = rgb.reshape(-1, 3).astype(np.int32)
        if nearest:
            d = ((pix[:, None, :] - pal[None, :, :].astype(np.int32)) ** 2).sum(-1)
            off = d.min(1) > PALETTE_TOLERANCE ** 2
            if valid is not None:
                off &= np.asarray(valid).reshape(-1)
            share = float(off.mean()) if off.size else 0.0
            if share > MAX_OFF_PALETTE_SHARE:
                raise PaletteError(
                    f"{source}: {share:.0%} of its pixels are not within {PALETTE_TOLERANCE} of any palette colour "
                    f"(blended stroke edges explain at most {MAX_OFF_PALETTE_SHARE:.0%}): this looks like a photo or "
                    f"noise, not a layout. Paint or upload a label map in the {self.name} colours "
                    f"{self.describe_palette(allow_unknown)}")
            return d.argmin(1).reshape(rgb.shape[:2]).astype(np.int64)
        code = (pix[:, 0] << 16) | (pix[:, 1] << 8) | pix[:, 2]
        pal_code = (pal[:, 0].astype(np.int64) << 16) | (pal[:, 1].astype(np.int64) << 8) | pal[:, 2]
        order = np.argsort(pal_code)
        pos = np.searchsorted(pal_code[order], code)
        pos = np.clip(pos, 0, len(pal_code) - 1)
        found = pal_code[order][pos] == code
        if not found.all():
            bad = pix[np.argmax(~found)]
            n_bad = int((~found).sum())
            raise PaletteError(
                f"{source}: colour RGB{tuple(int(v) for v in bad)} (and {n_bad - 1} more pixels off the palette) "
                f"is not one of the {self.name} classes {self.describe_palette(allow_unknown)}")
        return order[pos].reshape(rgb.shape[:2]).astype(np.int64)

    def ids_to_colors(self, ids: np.ndarray) -> np.ndarray:
        """``(..., H, W)`` ids -> ``(..., H, W, 3)`` uint8 RGB."""
        ids = np.asarray(ids)
        self.check_ids(ids)
        return self.palette()[ids]

    def check_ids(self, ids: np.ndarray, source: str = "layout") -> None:
        if not np.issubdtype(np.asarray(ids).dtype, np.integer):
            raise TypeError(f"{source}: ids must be integers, got dtype {np.asarray(ids).dtype}")
        if ids.size and (ids.min() < 0 or ids.max() > self.unknown_id):
            raise ValueError(f"{source}: ids must lie in 0..{self.unknown_id} (UNKNOWN = {self.unknown_id}), "
                             f"got {int(ids.min())}..{int(ids.max())}")

    def describe_palette(self, with_unknown: bool = True) -> str:
        parts = [f"{n}={tuple(c)}" for n, c in zip(self.names, self.colors)]
        if with_unknown:
            parts.append(f"unknown={tuple(self.unknown_color)}")
        return "[" + ", ".join(parts) + "]"


def one_hot(ids, num_channels: int):
    """``(B, H, W)`` long tensor -> ``(B, C, H, W)`` float one-hot (torch)."""
    import torch
    import torch.nn.functional as F

    return F.one_hot(ids.long(), num_channels).permute(0, 3, 1, 2).to(torch.float32)


def builtin_dict(name: str) -> dict:
    """A class file shipped inside the package (``sparsesis/data/classsets/<name>.json``) as a dict: the class set,
    and for a data set read as published its label format and split lists."""
    ref = resources.files("sparsesis.data.classsets") / f"{name}.json"
    if not ref.is_file():
        avail = sorted(p.name[:-5] for p in resources.files("sparsesis.data.classsets").iterdir() if p.name.endswith(".json"))
        raise ValueError(f"no built-in class set {name!r}; available: {avail}")
    return json.loads(ref.read_text())


def builtin(name: str = "labelmefacade") -> ClassSet:
    """A class set shipped inside the package (``sparsesis/data/classsets/<name>.json``)."""
    return ClassSet.from_dict(builtin_dict(name))


LABELMEFACADE = builtin("labelmefacade")
