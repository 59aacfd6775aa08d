"""The cascade users see: a generator at 64x64 decides the scene, the 4x upsampler adds the detail up to 256x256.

    from sparsesis.pipeline import Pipeline
    pipe = Pipeline.from_pretrained("checkpoints/ours64-student4")   # finds checkpoints/upsampler4x beside it
    photo = pipe(layout256, seed=0)                                    # (256, 256, 3) uint8
    small = pipe(layout256, seed=0, upscale=None)                      # the generator's own 64x64 image
    look = pipe.sdedit(layout256, reference, strength=0.6, seed=0)     # a reference photo's look
    again = pipe.reroll(layout256, photo, region256, seed=1)           # a new draw inside the region only

Layouts may come at the output size (256, as painted; area-downsampled for the generator, kept whole for the
upsampler) or at the generator's size (nearest-upscaled for the upsampler). ``upscale`` is ``"learned"``
(the default when an upsampler is there), ``"bicubic"`` or None. Same seed, same image.
"""
from __future__ import annotations

from pathlib import Path

import cv2
import numpy as np

from .interface import Generator
from .data.layouts import LayoutError, centre_square, downsample_ids, is_single, region_at, to_ids
from .loader import load
from .models.upsampler import Upsampler, bicubic_up

UPSAMPLER_DIR = "upsampler4x"  # the upsampler's folder name beside the generators in checkpoints/
FOOTPRINT = 8  # pixels at the output size that a change at the generator's size can reach through the upsampler


class Pipeline:
    def __init__(self, generator: Generator, upsampler: Upsampler | None = None):
        if upsampler is not None:
            upsampler.check_compatible(generator.classset)
        self.generator, self.upsampler = generator, upsampler
        self.classset = generator.classset

    @classmethod
    def from_pretrained(cls, path: str | Path, upsampler: str | Path | None = "auto", device: str = "cpu",
                        precision: str = "auto") -> "Pipeline":
        """``upsampler="auto"`` takes ``upsampler4x`` beside the model folder when it is there; a path loads that
        one (a clear error when it is missing or broken); None: no learned upsampler (bicubic only)."""
        generator = load(path, device=device, precision=precision)
        if upsampler == "auto":
            beside = Path(path).parent / UPSAMPLER_DIR
            upsampler = beside if (beside / "config.json").is_file() else None
        up = Upsampler.from_pretrained(upsampler, device=device, precision=precision) if upsampler else None
        return cls(generator, up)

    @property
    def base_size(self) -> int:
        return self.generator.image_size

    @property
    def output_size(self) -> int:
        return self.base_size * 4

    def default_upscale(self) -> str:
        return "learned" if self.upsampler is not None else "bicubic"

    def _how(self, upscale: str | None) -> str | None:
        return self.default_upscale() if upscale == "default" else upscale

    def layouts(self, layout) -> tuple[np.ndarray, np.ndarray, bool]:
        """-> (ids at the generator's size (B, s, s), ids at the output size (B, 4s, 4s), one layout?)."""
        single = is_single(layout)
        ids = to_ids(layout, self.classset)
        s, big = self.base_size, self.output_size
        if ids.shape[-2:] == (big, big):
            small = np.stack([downsample_ids(i, s, self.classset.num_channels) for i in ids])
            return small, ids, single
        if ids.shape[-2:] == (s, s):
            large = np.stack([cv2.resize(i.astype(np.int32), (big, big), interpolation=cv2.INTER_NEAREST) for i in ids])
            return ids, large.astype(np.int64), single
        raise LayoutError(f"layout is {ids.shape[-1]}x{ids.shape[-2]}: this pipeline takes {big}x{big} (its output "
                          f"size) or {s}x{s} (its generator's)")

    def upscale(self, images: np.ndarray, large_ids: np.ndarray, how: str | None, seed: int = 0) -> np.ndarray:
        """``images`` at the generator's size -> at the output size, ``how``: "learned", "bicubic" or None (as
        they are). ``seed`` draws a noise-input upsampler's fine texture (image ``i``: ``seed + i``) at its folder's
        ``defaults.noise_scale`` (the shipped one: 0, the mean texture, the same for every seed)."""
        if how is None:
            return images
        if how == "bicubic":
            return bicubic_up(images)
        if how == "learned":
            if self.upsampler is None:
                raise ValueError("no learned upsampler is loaded: pass upscale='bicubic' or None, or load one "
                                 f"(Pipeline.from_pretrained(..., upsampler='checkpoints/{UPSAMPLER_DIR}'))")
            return self.upsampler(images, large_ids, seed=seed)
        raise ValueError(f"upscale must be 'learned', 'bicubic' or None, got {how!r}")

    def __call__(self, layout, seed: int = 0, upscale: str | None = "default", return_trajectory: bool = False,
                 **sampling):
        """Images at the output size (``upscale=None``: at the generator's). ``sampling`` goes to the generator
        (steps, guidance, guide, ...). With ``return_trajectory``: ``(images, the generator's trajectory at its own
        size, None for a GAN)``."""
        small_ids, large_ids, single = self.layouts(layout)
        out = self.generator(small_ids[0] if single else small_ids, seed=seed, return_trajectory=return_trajectory,
                             **sampling)
        return self._upscaled(out, large_ids, single, upscale, seed, return_trajectory)

    def sdedit(self, layout, init, strength: float, seed: int = 0, upscale: str | None = "default",
               return_trajectory: bool = False, **sampling):
        """The look of ``init`` under the layout (the generator's ``sdedit``): ``strength`` 0 keeps ``init``, 1 is
        plain generation. ``init``: a photo (H, W, 3) uint8; one not at the generator's size has its centre square
        area-resized to it."""
        small_ids, large_ids, single = self.layouts(layout)
        init = np.asarray(init)
        if init.ndim == 3 and init.shape[:2] != (self.base_size,) * 2:
            init = cv2.resize(centre_square(init), (self.base_size,) * 2, interpolation=cv2.INTER_AREA)
        out = self.generator.sdedit(small_ids[0] if single else small_ids, init, strength, seed=seed,
                                    return_trajectory=return_trajectory, **sampling)
        return self._upscaled(out, large_ids, single, upscale, seed, return_trajectory)

    def _upscaled(self, out, large_ids: np.ndarray, single: bool, upscale: str | None, seed: int,
                  return_trajectory: bool):
        """The generator's output (images, with their trajectory when asked) -> the same at the output size."""
        images, traj = out if return_trajectory else (out, None)
        images = self.upscale(images[None] if single else images, large_ids, self._how(upscale), seed)
        images = images[0] if single else images
        return (images, traj) if return_trajectory else images

    def reroll(self, layout, image: np.ndarray, region: np.ndarray, seed: int = 0, upscale: str | None = "default",
               **kwargs) -> np.ndarray:
        """Generate ``region`` (bool at the output size, True = anew) of ``image`` (an output of this pipeline)
        again under ``seed``; pixels farther than ``FOOTPRINT`` from the region stay exactly as they were. ``kwargs``
        go to the generator's ``reroll`` (steps, guidance, resample, ...)."""
        how = self._how(upscale)
        small_ids, large_ids, single = self.layouts(layout)
        image, region = np.asarray(image), np.asarray(region).astype(bool)
        if not single or image.ndim != 3 or region.ndim != 2:
            raise ValueError(f"reroll takes one layout, one image (H, W, 3) and one region (H, W); got "
                             f"{image.shape} and {region.shape}")
        size = self.base_size if how is None else self.output_size
        if image.shape != (size, size, 3):
            raise ValueError(f"the image to keep must be {size}x{size} (what this pipeline made), got {image.shape}")
        base = image if how is None else cv2.resize(image, (self.base_size,) * 2, interpolation=cv2.INTER_AREA)
        new_base = self.generator.reroll(small_ids[0], base, region, seed, **kwargs)
        if how is None:
            return new_base
        out = self.upscale(new_base[None], large_ids, how, seed)[0]
        # farther than the upsampler's footprint from the region, the old pixels stay exactly
        small_region = region_at(region, self.base_size)[0].astype(np.uint8)
        grow = cv2.getStructuringElement(cv2.MORPH_ELLIPSE, (2 * FOOTPRINT + 1, 2 * FOOTPRINT + 1))
        near = cv2.dilate(cv2.resize(small_region, (size, size), interpolation=cv2.INTER_NEAREST), grow) > 0
        return np.where(near[..., None], out, image)

    def edit(self, layout, image: np.ndarray, previous_layout, seed: int = 0, radius: int | None = None,
             **kwargs) -> np.ndarray:
        """Keep the rest: regenerate only near the strokes that changed since ``previous_layout`` (``radius`` in
        pixels at the output size; default 1/8 of it)."""
        from .editing import changed_region

        new_ids, _, _ = self.layouts(layout)
        old_ids, _, _ = self.layouts(previous_layout)
        r = self.base_size // 8 if radius is None else max(1, round(radius * self.base_size / image.shape[0]))
        region = changed_region(old_ids[0], new_ids[0], r)
        if not region.any():
            return np.asarray(image).copy()
        return self.reroll(layout, image, region, seed, **kwargs)
