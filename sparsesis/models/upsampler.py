"""A layout-aware 4x upsampler: the second stage of a cascade (Imagen, CDM, SR3; pix2pixHD's local enhancer).

The 64x64 diffusion model decides the scene; this small network adds the detail up to 256x256. It sees the
64x64 image and the layout at the output size (sparse, with its UNKNOWN label), so a painted window or road
edge sharpens where it was drawn. The network predicts a residual over the bicubic upscale (ESRGAN-style
residual blocks, two pixel-shuffle stages); the layout enters at every scale, area-pooled to it.

    up = Upsampler.from_pretrained("checkpoints/upsampler4x")
    big = up(image64, layout256)      # (64, 64, 3) uint8 + (256, 256) ids -> (256, 256, 3) uint8
    soft = up.with_settings(detail_scale=0.5)   # the same network, other inference settings

Training: ``sparsesis.training.train_upsampler``.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .checkpoint import CheckpointError, load_classes, load_model
from ..data.classes import ClassSet, one_hot
from ..data.layouts import LayoutError, to_ids
from ..precision import resolve_precision
from .schema import UPSAMPLER_KIND


@dataclass(frozen=True)
class UpsamplerConfig:
    label_channels: int = 10  # classes + UNKNOWN
    channels: int = 48
    blocks: int = 8
    scale: int = 4  # two pixel-shuffle stages of 2
    # the input's degradation level in [0, 1] as an extra input plane (CDM's noise-conditioning augmentation):
    # 0 = a clean downsampled photo, higher = as blurred, grainy and colour-shifted as the training degraded it
    level_input: bool = False
    # a Gaussian noise plane at 2x and at 4x (StyleGAN's noise inputs): fine texture drawn per seed, the same
    # picture for the same seed
    noise_input: bool = False
    # residual blocks at 2x (after the first pixel shuffle), where the fine texture is drawn; each starts as the
    # identity (its last convolution zero), so blocks added to a trained network leave its output unchanged
    fine_blocks: int = 0

    def to_dict(self) -> dict:
        return asdict(self)


class DetailBlock(nn.Module):
    def __init__(self, ch: int, identity_init: bool = False):
        super().__init__()
        self.body = nn.Sequential(nn.Conv2d(ch, ch, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(ch, ch, 3, padding=1))
        if identity_init:  # the block computes the identity until training moves its last convolution
            nn.init.zeros_(self.body[2].weight)
            nn.init.zeros_(self.body[2].bias)

    def forward(self, x):
        return x + 0.2 * self.body(x)  # residual scaling (ESRGAN) keeps a deep stack stable without norms


class UpsamplerNet(nn.Module):
    """``(B, 3, h, w)`` in [-1, 1] and a ``(B, K+1, 4h, 4w)`` one-hot layout -> ``(B, 3, 4h, 4w)`` in ~[-1, 1]."""

    def __init__(self, cfg: UpsamplerConfig):
        super().__init__()
        if cfg.scale != 4:
            raise ValueError(f"the upsampler is built for 4x, got scale {cfg.scale}")
        self.cfg = cfg
        ch, lc = cfg.channels, cfg.label_channels
        self.head = nn.Conv2d(3 + lc + int(cfg.level_input), ch, 3, padding=1)
        self.body = nn.Sequential(*[DetailBlock(ch) for _ in range(cfg.blocks)], nn.Conv2d(ch, ch, 3, padding=1))
        nz = int(cfg.noise_input)
        self.up1 = nn.Sequential(nn.Conv2d(ch, 4 * ch, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True))
        self.mix1 = nn.Sequential(nn.Conv2d(ch + lc + nz, ch, 3, padding=1), nn.LeakyReLU(0.2, inplace=True))
        self.fine = nn.Sequential(*[DetailBlock(ch, identity_init=True) for _ in range(cfg.fine_blocks)])
        half = ch // 2
        self.up2 = nn.Sequential(nn.Conv2d(ch, 4 * half, 3, padding=1), nn.PixelShuffle(2), nn.LeakyReLU(0.2, inplace=True))
        self.mix2 = nn.Sequential(nn.Conv2d(half + lc + nz, half, 3, padding=1), nn.LeakyReLU(0.2, inplace=True),
                                  nn.Conv2d(half, 3, 3, padding=1))

    def forward(self, x: torch.Tensor, layout: torch.Tensor, level: torch.Tensor | float | None = None,
                noise: torch.Tensor | None = None, detail_scale: float = 1.0) -> torch.Tensor:
        # x: (B, 3, h, w); layout: (B, K+1, 4h, 4w); level: (B,) or a number in [0, 1] (networks with level_input);
        # noise: (B, 1, 4h, 4w) standard normal (networks with noise_input; None = zeros, the mean texture);
        # detail_scale: how much of the detail over the bicubic picture is kept (ESRGAN's network interpolation,
        # on the outputs; each pixel keeps its neighbourhood, so editing keeps its footprint)
        inputs = [x, F.avg_pool2d(layout, 4)]
        if self.cfg.level_input:
            if level is None:
                raise ValueError("this upsampler needs the input's degradation level (0 = a clean photo)")
            level = torch.as_tensor(level, dtype=x.dtype, device=x.device).reshape(-1, 1, 1, 1)
            inputs.append(level.expand(x.shape[0], 1, *x.shape[2:]))
        f = self.head(torch.cat(inputs, 1))
        f = f + self.body(f)
        at2, at4 = [F.avg_pool2d(layout, 2)], [layout]
        if self.cfg.noise_input:
            if noise is None:
                noise = x.new_zeros(x.shape[0], 1, *layout.shape[-2:])
            at2.append(2 * F.avg_pool2d(noise.to(x.dtype), 2))  # the mean of 4 unit normals, back to unit std
            at4.append(noise.to(x.dtype))
        f = self.fine(self.mix1(torch.cat([self.up1(f), *at2], 1)))  # (B, ch, 2h, 2w)
        detail = self.mix2(torch.cat([self.up2(f), *at4], 1))  # (B, 3, 4h, 4w)
        base = F.interpolate(x, scale_factor=4, mode="bicubic", align_corners=False)
        return base + detail if detail_scale == 1.0 else base + detail_scale * detail


def area_down(x: torch.Tensor, factor: int = 4) -> torch.Tensor:
    """Area downsampling (the mean of each factor x factor cell), as the data pipeline downsamples photos."""
    return F.avg_pool2d(x, factor)


def back_project(y: torch.Tensor, x: torch.Tensor, rounds: int) -> torch.Tensor:
    """Iterative back-projection (Irani & Peleg): ``rounds`` times, add to ``y`` the bicubic upscale of
    ``x - area_down(y)``, pulling the output's 4x area-downsample towards its input ``x``."""
    factor = y.shape[-1] // x.shape[-1]
    for _ in range(rounds):
        y = y + F.interpolate(x - area_down(y, factor), scale_factor=factor, mode="bicubic", align_corners=False)
    return y


SCALES = {"noise_scale": "1: the training's noise, 0: none", "detail_scale": "1: the network's output, 0: bicubic"}


def check_scale(name: str, value) -> float:
    """One of the upsampler's inference scales (``SCALES``) as a float, or a clear error: a finite number >= 0."""
    try:
        scale = float(value)
    except (TypeError, ValueError):
        scale = float("nan")
    if not np.isfinite(scale) or scale < 0:
        raise ValueError(f"{name} must be a number >= 0 ({SCALES[name]}), got {value!r}")
    return scale


def check_level(value) -> float:
    """A degradation level as a float, or a clear error: a number from 0 (a clean photo) to 1."""
    try:
        level = float(value)
    except (TypeError, ValueError):
        level = float("nan")
    if not 0.0 <= level <= 1.0:
        raise ValueError(f"level must be between 0 (a clean photo) and 1, got {value!r}")
    return level


def check_rounds(value) -> int:
    """Rounds of back-projection as an int, or a clear error: a whole number >= 0."""
    whole = (isinstance(value, (int, float, np.integer, np.floating)) and not isinstance(value, bool)
             and np.isfinite(value) and value >= 0 and float(value).is_integer())
    if not whole:
        raise ValueError(f"back_projection must be a whole number of rounds >= 0, got {value!r}")
    return int(value)


def bicubic_up(images: np.ndarray, factor: int = 4) -> np.ndarray:
    """The baseline the upsampler is compared with: ``(B, h, w, 3)`` uint8 -> ``(B, 4h, 4w, 3)`` uint8."""
    import cv2

    images = np.asarray(images)
    one = images.ndim == 3
    batch = images[None] if one else images
    h, w = batch.shape[1:3]
    out = np.stack([cv2.resize(im, (w * factor, h * factor), interpolation=cv2.INTER_CUBIC) for im in batch])
    return out[0] if one else out


SETTINGS = ("level", "back_projection", "noise_scale", "detail_scale")  # an Upsampler's inference settings


class Upsampler:
    """A trained upsampler: ``up(images, layouts, seed)`` -> images 4x larger (uint8).

    Its inference settings (``SETTINGS``: ``level``, ``back_projection``, ``noise_scale``, ``detail_scale``) are
    read from the model folder's ``defaults`` when it is loaded; ``from_pretrained(..., noise_scale=0)`` loads it
    with others, and ``up.with_settings(detail_scale=0.5)`` is a copy that shares the network and differs in
    those named. Both check the values."""

    def __init__(self, net: UpsamplerNet, classset: ClassSet, config: dict, device="cpu", precision: str = "fp32",
                 **settings):
        precision = resolve_precision(precision, device)
        # channels_last, as the synthesizer runs: oneDNN's bf16 convolutions are ~1.6x faster in it on AMX CPUs
        # (fp32 about the same)
        self.net = net.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)
        self.classset, self.config, self.device, self.precision = classset, config, torch.device(device), precision
        self._settings = self._checked(settings)

    def _checked(self, settings: dict) -> dict:
        """``settings`` (None or absent: the folder's ``defaults``, else the built-in default) checked -> all four."""
        unknown = sorted(set(settings) - set(SETTINGS))
        if unknown:
            raise TypeError(f"unknown upsampler setting(s) {', '.join(unknown)}; they are {', '.join(SETTINGS)}")
        folder = self.config.get("defaults", {})

        def value(name: str, absent):
            return folder.get(name, absent) if settings.get(name) is None else settings[name]

        if self.net.cfg.level_input:
            level = check_level(value("level", 0.0))
        elif settings.get("level") is not None:
            raise ValueError(f"this upsampler has no degradation-level input, got level={settings['level']!r}")
        else:
            level = None
        return {"level": level, "back_projection": check_rounds(value("back_projection", 0)),
                "noise_scale": check_scale("noise_scale", value("noise_scale", 1.0)),
                "detail_scale": check_scale("detail_scale", value("detail_scale", 1.0))}

    @property
    def scale(self) -> int:
        return self.net.cfg.scale

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", precision: str = "fp32", *,
                        level: float | None = None, back_projection: int | None = None,
                        noise_scale: float | None = None, detail_scale: float | None = None) -> "Upsampler":
        """Load an upsampler folder; the settings given (not None) replace the folder's ``defaults``."""
        config, net = load_model(path, UPSAMPLER_KIND, lambda c: UpsamplerNet(UpsamplerConfig(**c["model"])),
                                 "a sparsesis upsampler")
        classset = load_classes(config, path)
        return cls(net, classset, config, device, precision, level=level, back_projection=back_projection,
                   noise_scale=noise_scale, detail_scale=detail_scale)

    def with_settings(self, **settings) -> "Upsampler":
        """A copy sharing this one's network, with the named ``SETTINGS`` changed (None: the folder's default)."""
        merged = {**{name: getattr(self, name) for name in SETTINGS}, **settings}
        return type(self)(self.net, self.classset, self.config, self.device, self.precision, **merged)

    def check_compatible(self, classset: ClassSet, source: str = "the generator") -> None:
        """A clear error when this upsampler was trained for other classes than ``source``'s."""
        if classset.to_dict() != self.classset.to_dict():
            raise CheckpointError(f"the upsampler was trained for the class set {self.classset.name!r} "
                                  f"({self.classset.num_classes} classes), {source} uses {classset.name!r} "
                                  f"({classset.num_classes}); use an upsampler trained for the same classes")

    @property
    def level(self) -> float | None:
        """How degraded the inputs are taken to be, 0 (clean photos) to 1, for a network with a level input (the
        model folder's ``defaults.level``, 0 when absent, suits its generator's images); None for networks without."""
        return self._settings["level"]

    @property
    def back_projection(self) -> int:
        """Rounds of back-projection after the network (the model folder's ``defaults.back_projection``, 0 when
        absent): each adds the bicubic upscale of what the output's area-downsample misses of the input, so the
        output keeps the input's colours and layout and the network only contributes detail."""
        return self._settings["back_projection"]

    @property
    def noise_scale(self) -> float:
        """How strongly the noise planes of a noise-input network are drawn (the model folder's
        ``defaults.noise_scale``, 1 when absent, the training's unit normals): below 1 trades texture variety
        between seeds for fidelity (StyleGAN's truncation trick, here on the noise), 0 is the mean texture and
        the same picture for every seed. Networks without noise planes ignore it."""
        return self._settings["noise_scale"]

    @property
    def detail_scale(self) -> float:
        """How much of the detail the network adds to the bicubic picture is kept, before back-projection (the
        model folder's ``defaults.detail_scale``, 1 when absent): below 1 a softer picture between bicubic (0) and
        the network's own output (1), above 1 a sharper one."""
        return self._settings["detail_scale"]

    @torch.no_grad()
    def __call__(self, images: np.ndarray, layouts=None, seed: int = 0) -> np.ndarray:
        """``(h, w, 3)`` or ``(B, h, w, 3)`` uint8, layouts as ids/colour maps at ``4h`` (None: all unknown) ->
        ``(4h, 4w, 3)`` or ``(B, 4h, 4w, 3)`` uint8, at this upsampler's settings. ``seed`` draws the fine texture
        of upsamplers with a noise input (image ``i``: ``seed + i``; the same seed, the same picture); others
        ignore it."""
        from ..data.sets import photo_to_tensor, tensor_to_photo

        images = np.asarray(images)
        one = images.ndim == 3
        batch = images[None] if one else images
        if batch.ndim != 4 or batch.shape[-1] != 3 or batch.dtype != np.uint8:
            raise ValueError(f"images must be (h, w, 3) or (B, h, w, 3) uint8, got {images.shape} {images.dtype}")
        b, h, w = batch.shape[:3]
        out_size = (h * self.scale, w * self.scale)
        if layouts is None:
            ids = np.full((b,) + out_size, self.classset.unknown_id, np.int64)
        else:
            ids = to_ids(layouts, self.classset)
            if ids.shape[-2:] != out_size or len(ids) != b:
                raise LayoutError(f"the upsampler's layout must be {b} map(s) of {out_size[1]}x{out_size[0]} (the "
                                  f"output size), got {ids.shape}")
        x = photo_to_tensor(batch).to(self.device).contiguous(memory_format=torch.channels_last)
        lay = one_hot(torch.from_numpy(ids).to(self.device), self.classset.num_channels).contiguous(
            memory_format=torch.channels_last)
        noise = None  # the network reads None as zero noise
        if self.net.cfg.noise_input and self.noise_scale > 0:
            noise = self.noise_scale * torch.stack([torch.randn((1,) + out_size,
                                                                generator=torch.Generator().manual_seed(int(seed) + i))
                                                    for i in range(b)]).to(self.device)  # image i: seed + i, any batch
        with torch.autocast(self.device.type, dtype=torch.bfloat16, enabled=self.precision == "bf16"):
            y = self.net(x, lay, self.level, noise, self.detail_scale)
        y = back_project(y.float(), x, self.back_projection)
        out = tensor_to_photo(y)
        return out[0] if one else out
