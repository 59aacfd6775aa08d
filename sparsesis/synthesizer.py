"""The public generator API.

    from sparsesis import Synthesizer
    synth = Synthesizer.from_pretrained("checkpoints/ours64-student4")
    image = synth(layout, steps=4, seed=0)                      # (64, 64, 3) uint8
    look = synth.sdedit(layout, photo64, strength=0.6, seed=0)  # a reference photo's look
    again = synth.reroll(layout, image, region, seed=1)         # a new draw inside the region only
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .models.checkpoint import CONFIG_FILE, CheckpointError, load_classes, load_model
from .data.classes import ClassSet, one_hot
from .data.sets import photo_to_tensor, tensor_to_photo
from .models.diffusion import SAMPLERS, Known, Step, cond_uncond, guided, guided_model, q_sample
from .data.layouts import is_single, region_at, to_ids
from .precision import resolve_precision
from .models.schema import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, DIFFUSION_KIND
from .models.unet import UNet, UNetConfig, count_parameters


@dataclass
class Trajectory:
    """Per sampling step: time, the noisy image after the step and the predicted clean image (uint8)."""

    t: list[float]
    z: list[np.ndarray]  # each (B, H, W, 3) uint8 (noisy images shown clipped to [-1, 1])
    x0: list[np.ndarray]  # each (B, H, W, 3) uint8


class Synthesizer:
    """A diffusion model or a distilled student (the ``Generator`` interface, ``sparsesis.interface``).

    Three entries, as diffusers splits text-to-image, img2img and inpainting: ``__call__`` (plain generation),
    ``sdedit`` (the look of a reference image) and ``inpaint`` (keep a region exactly; ``reroll`` and ``edit``
    build on it). Each takes ``steps``, ``seed``, ``guidance`` and the same guidance options:

    Guidance at scale ``guidance``: ``guide=None`` takes the folder's default (``sampling.guide``, a model folder
    path relative to this one) or, without one, classifier-free guidance; ``guide="cfg"`` forces classifier-free
    guidance (against the all-UNKNOWN layout); a ``Synthesizer`` (or a folder path) is *autoguidance*: a weaker
    model of the same classes, conditioned on the same layout. ``interval=(lo, hi)`` applies the guidance only at
    times ``lo <= t <= hi`` (default: the folder's ``sampling.interval`` or always). Either way one pass of each
    network per step. ``cfg_scale`` (with autoguidance; default the folder's ``sampling.cfg_scale`` or 1, none)
    adds classifier-free guidance on top, for a picture that follows the strokes more closely:
    ``v_c + (guidance - 1)(v_c - v_guide) + (cfg_scale - 1)(v_c - v_u)``; the folder's default does not apply at
    ``guidance=1`` (the plain model) or with ``guide="cfg"``. ``sampler``: ``"ddim"`` or ``"ddpm"`` (default: the
    folder's ``sampling.sampler``).
    """

    is_diffusion = True

    def __init__(self, model: UNet, classset: ClassSet, config: dict, device="cpu", precision: str = "fp32"):
        precision = resolve_precision(precision, device)
        self.model = model.eval().requires_grad_(False).to(device).to(memory_format=torch.channels_last)
        self.classset = classset
        self.config = config
        self.device = torch.device(device)
        self.precision = precision
        sampling = config.get("sampling", {})
        self.default_steps = int(sampling.get("steps", DEFAULT_STEPS))
        self.default_guidance = float(sampling.get("guidance", DEFAULT_GUIDANCE))
        self.default_sampler = str(sampling.get("sampler", DEFAULT_SAMPLER))
        # a distilled student has guidance baked in and fixed step counts
        self.distilled = config.get("distillation")
        self.baked_guidance = float(self.distilled.get("guidance", 1.0)) if self.distilled else None
        self.folder: Path | None = None  # set by from_pretrained: where a default guide is looked up
        self._guides: dict = {}

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", precision: str = "fp32") -> "Synthesizer":
        config, model = load_model(path, DIFFUSION_KIND, lambda c: UNet(UNetConfig.from_dict(c["unet"])),
                                   "a sparsesis diffusion model")
        classset = load_classes(config, path)
        synth = cls(model, classset, config, device, precision)
        synth.folder = Path(path)
        return synth

    def layout_ids(self, layout) -> np.ndarray:
        return to_ids(layout, self.classset, self.image_size)

    @torch.no_grad()
    def __call__(self, layout, steps: int | None = None, seed: int = 0, guidance: float | None = None,
                 return_trajectory: bool = False, **sampling):
        """Generate RGB uint8 images: ``(H, W, 3)`` for one layout, ``(B, H, W, 3)`` for a batch.

        Image ``i`` of a batch uses seed ``seed + i``, so it does not depend on the batch size. With
        ``return_trajectory`` also returns a ``Trajectory`` of every step. ``sampling``: the guidance options
        (``guide``, ``interval``, ``cfg_scale``, ``sampler``; the class docstring). See also ``sdedit``,
        ``inpaint``, ``reroll`` and ``edit``."""
        single, ids = is_single(layout), self.layout_ids(layout)
        steps = self._steps(steps)
        x, traj = self._sample(ids, self._noise(len(ids), seed), steps, seed, guidance, return_trajectory, **sampling)
        return self._images_out(x, traj, single, return_trajectory)

    @torch.no_grad()
    def sdedit(self, layout, init, strength: float, steps: int | None = None, seed: int = 0,
               guidance: float | None = None, return_trajectory: bool = False, **sampling):
        """The look of ``init`` under the layout (SDEdit, Meng et al. 2022): start from ``init`` (uint8 ``(H, W, 3)``,
        or one per layout, at the model's size) noised to time ``strength`` in [0, 1] and run the last
        ``ceil(steps * strength)`` of ``steps`` steps. 0 returns ``init``, 1 is plain generation (``__call__``)."""
        strength = float(strength)
        if not 0.0 <= strength <= 1.0:
            raise ValueError(f"strength must be in [0, 1], got {strength}")
        single, ids = is_single(layout), self.layout_ids(layout)
        steps, b = self._steps(steps), len(ids)
        x_init = self._images_in(init, b, "init")
        if strength == 0.0:
            return self._images_out(x_init, Trajectory([], [], []) if return_trajectory else None, single,
                                    return_trajectory)
        z = self._noise(b, seed)
        if strength < 1.0:
            z = q_sample(x_init, torch.full((b,), strength, device=self.device), z)
        x, traj = self._sample(ids, z, max(1, int(np.ceil(steps * strength))), seed, guidance, return_trajectory,
                               start=strength, **sampling)
        return self._images_out(x, traj, single, return_trajectory)

    @torch.no_grad()
    def inpaint(self, layout, known_image, keep_mask, steps: int | None = None, seed: int = 0,
                guidance: float | None = None, resample: int = 1, **sampling):
        """Keep ``known_image`` (uint8 ``(H, W, 3)``, or one per layout, at the model's size) exactly where
        ``keep_mask`` is True and generate the rest to fit it (RePaint, Lugmayr et al. 2022; ``resample`` jumps back
        per step to settle the seam). ``keep_mask``: bool ``(H, W)`` or ``(B, H, W)`` at any multiple of the model's
        size; a model pixel is kept only where its whole cell is."""
        single, ids = is_single(layout), self.layout_ids(layout)
        steps, b = self._steps(steps), len(ids)
        noise = self._noise(b, seed)
        anew = region_at(~np.asarray(keep_mask).astype(bool), self.image_size, b)
        keep = torch.from_numpy(~anew).to(self.device, torch.float32)[:, None]  # (B, 1, S, S), 1 = keep
        known = Known(self._images_in(known_image, b, "known_image"), keep, noise)
        x, _ = self._sample(ids, noise, steps, seed, guidance, False, known=known, resample=int(resample), **sampling)
        return self._images_out(x, None, single, False)

    def reroll(self, layout, image, region, seed: int = 0, **kwargs):
        """Generate ``region`` (bool (H, W), True = anew) of ``image`` again under ``seed``, keeping the rest exactly
        (``inpaint``; ``kwargs``: its keywords)."""
        return self.inpaint(layout, image, ~np.asarray(region).astype(bool), seed=seed, **kwargs)

    def edit(self, layout, previous_image, previous_layout, seed: int = 0, radius: int | None = None, **kwargs):
        """Keep the rest: regenerate only a neighbourhood (``radius`` pixels at the model's size; default 1/8 of
        it) of the layout pixels that changed since ``previous_layout``; ``previous_image`` elsewhere."""
        from .editing import changed_region

        ids, prev = self.layout_ids(layout), self.layout_ids(previous_layout)
        region = changed_region(prev, ids, self.image_size // 8 if radius is None else radius)
        if not region.any():
            return np.asarray(previous_image).copy()
        return self.reroll(layout, previous_image, region if ids.shape[0] > 1 else region[0], seed, **kwargs)

    def _steps(self, steps) -> int:
        steps = self.default_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        return int(steps)

    def _noise(self, b: int, seed: int) -> torch.Tensor:
        """``(b, 3, S, S)``: image ``i``'s noise from seed ``seed + i``, whatever the batch."""
        s = self.image_size
        return torch.stack([torch.randn(3, s, s, generator=torch.Generator().manual_seed(int(seed) + i))
                            for i in range(b)]).to(self.device)

    def _sample(self, ids: np.ndarray, z: torch.Tensor, steps: int, seed: int, guidance: float | None,
                return_trajectory: bool, start: float = 1.0, known: Known | None = None, resample: int = 0,
                guide: "Synthesizer | str | None" = None, interval: tuple[float, float] | None = None,
                cfg_scale: float | None = None, sampler: str | None = None) -> tuple[torch.Tensor, Trajectory | None]:
        """The guided sampler from ``z`` (B, 3, S, S) at time ``start`` over ``steps`` steps for the layouts ``ids``
        (B, S, S), ``known`` held (RePaint) -> (the image (B, 3, S, S) in [-1, 1], its ``Trajectory`` or None)."""
        guidance, cfg_scale = self._guidance(guidance), self._cfg_scale(cfg_scale)
        sampler = sampler or self.default_sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        lay = torch.from_numpy(ids).to(self.device)
        cond = one_hot(lay, self.classset.num_channels).contiguous(memory_format=torch.channels_last)
        model_fn = self._model_fn(cond, lay, guidance, guide, interval, cfg_scale)
        traj = Trajectory([], [], []) if return_trajectory else None

        def report(st: Step):
            traj.t.append(st.t)
            traj.z.append(tensor_to_photo(st.z))
            traj.x0.append(tensor_to_photo(st.x0))

        # the jumps back (RePaint) and DDPM draw fresh noise from their own seeded stream
        gen = torch.Generator().manual_seed(int(seed) + 7919)
        x = SAMPLERS[sampler](model_fn, z, steps, callback=report if traj is not None else None, generator=gen,
                              known=known, resample=resample, start=start)
        return x, traj

    @staticmethod
    def _images_out(x: torch.Tensor, traj: Trajectory | None, single: bool, return_trajectory: bool):
        """``x`` (B, 3, S, S) -> uint8 images, one layout's unbatched (its trajectory too)."""
        images = tensor_to_photo(x)
        if single:
            images = images[0]
            if traj is not None:
                traj = Trajectory(traj.t, [z[0] for z in traj.z], [x0[0] for x0 in traj.x0])
        return (images, traj) if return_trajectory else images

    def _images_in(self, images, b: int, name: str) -> torch.Tensor:
        """uint8 ``(H, W, 3)`` or ``(b, H, W, 3)`` at the model's size -> ``(b, 3, H, W)`` in [-1, 1]."""
        a = np.asarray(images)
        a = a[None] if a.ndim == 3 else a
        s = self.image_size
        if a.ndim != 4 or a.shape[1:] != (s, s, 3) or a.dtype != np.uint8:
            raise ValueError(f"{name} must be a ({s}, {s}, 3) uint8 image (or a batch of {b}) at the model's size, "
                             f"got {np.asarray(images).shape} {np.asarray(images).dtype}; resize it first")
        if len(a) not in (1, b):
            raise ValueError(f"{name} holds {len(a)} images for {b} layouts")
        return photo_to_tensor(a).expand(b, -1, -1, -1).to(self.device)

    def _model_fn(self, cond, lay, guidance: float, guide, interval, cfg_scale: float | None = None):
        """The guided model function ``(z, t) -> v`` for one batch of layouts: ``guided_model`` with this folder's
        networks and defaults (the layout branch runs once here, not at every step)."""
        plain = self.conditional(cond)
        if guidance == 1.0 and cfg_scale in (None, 1.0):
            return plain  # before the guide is resolved: the plain model loads no guide folder
        guide = self._guide(guide)
        if cfg_scale is None:  # the folder's default goes with its autoguidance only
            cfg_scale = self.cfg_scale_label if guide is not None else 1.0
        if guide is None and cfg_scale != 1.0:
            raise ValueError("cfg_scale adds classifier-free guidance to autoguidance, and there is no guide here: "
                             "pass guide=FOLDER, or set guidance (the classifier-free scale) instead")
        pair = None
        if guide is None or cfg_scale != 1.0:  # autoguidance alone never asks the unconditional model
            uncond = one_hot(torch.full_like(lay, self.classset.unknown_id), self.classset.num_channels)
            both = self._condition(torch.cat([cond, uncond.contiguous(memory_format=torch.channels_last)]))
            pair = cond_uncond(self._network(), None, None, both)
        interval = self.config.get("sampling", {}).get("interval") if interval is None else interval
        return guided_model(plain, pair, guidance, guide.conditional(cond) if guide is not None else None, cfg_scale,
                            interval)

    def conditional(self, cond: torch.Tensor):
        """The unguided conditional model ``(z, t) -> v`` for one-hot layouts ``cond`` (B, K+1, S, S); the layout
        branch runs once here, not at every step."""
        return guided(self._network(), self._condition(cond), None, 1.0)

    def _guide(self, guide) -> "Synthesizer | None":
        """The guide network for autoguidance, or None for classifier-free guidance."""
        if isinstance(guide, str) and guide == "cfg":
            return None
        if guide is None:
            default = self.config.get("sampling", {}).get("guide")
            if default is None or self.folder is None:
                return None
            guide = (self.folder / default).resolve()
            if not (guide / CONFIG_FILE).is_file():
                raise CheckpointError(f"{self.folder / CONFIG_FILE} names the guide {default!r}, but {guide} holds no "
                                      "model: restore that folder, or pass guide='cfg' for classifier-free guidance")
        if not isinstance(guide, Synthesizer):
            key = str(guide)
            if key not in self._guides:
                self._guides[key] = Synthesizer.from_pretrained(guide, device=str(self.device), precision=self.precision)
            guide = self._guides[key]
        if guide.distilled:
            raise ValueError("a distilled student cannot guide: autoguidance needs an undistilled model")
        if guide.classset.to_dict() != self.classset.to_dict() or guide.image_size != self.image_size:
            raise ValueError(f"the guide must model the same classes at the same size ({self.classset.name}, "
                             f"{self.image_size}px); got {guide.classset.name}, {guide.image_size}px")
        return guide

    def _guidance(self, guidance) -> float:
        return self._scale("guidance", guidance, self.guidance_label)

    def _cfg_scale(self, cfg_scale) -> float | None:
        """1 for a student (checked against its baked value); for a teacher the value given, or None: the folder's
        default, which applies under its autoguidance only (``_model_fn``)."""
        if cfg_scale is None and not self.distilled:
            return None
        return self._scale("cfg_scale", cfg_scale, self.cfg_scale_label)

    def _scale(self, name: str, value, default: float) -> float:
        """A guidance scale as the sampler takes it: ``value`` checked, or ``default`` (the folder's) for None. A
        student has its teacher's guidance baked into its single pass: only that value (or None) is accepted,
        and its sampler runs unguided (1)."""
        if value is not None:
            value = float(value)
            if not np.isfinite(value) or value < 0:
                raise ValueError(f"{name} must be a finite number >= 0, got {value}")
        if self.distilled:
            if value is not None and abs(value - default) > 1e-6:
                raise ValueError(f"this distilled student has {name} {default:g} built in; pass {name}=None "
                                 "(or that value), or use the undistilled teacher to change it")
            return 1.0
        return default if value is None else value

    def info(self) -> dict:
        """Parameters and training budget; a student's budget is its teacher's plus every distillation stage."""
        rec = self.config.get("record", {})
        extra = (self.distilled or {}).get("total", {"images": 0, "seconds": 0.0})
        images = rec.get("images_seen")
        return {"parameters": count_parameters(self.model),
                "images_seen": images + extra["images"] if images is not None else None,
                "train_hours": round((rec.get("train_seconds", 0) + extra["seconds"]) / 3600, 3),
                "device": rec.get("device")}

    @property
    def guidance_label(self) -> float:
        """The guidance scale the images reflect (the baked one for a student)."""
        return self.baked_guidance if self.distilled else self.default_guidance

    def _sampler_option(self, key: str):
        """A sampler option the images reflect: a student's from its distillation record, a teacher's from its
        folder's ``sampling`` defaults."""
        return (self.distilled or self.config.get("sampling", {})).get(key)

    @property
    def guidance_kind(self) -> str:
        """``"autoguidance"`` where a weaker model guides the images (the folder's default guide, or the one a
        student was distilled with), else ``"classifier-free"``."""
        return "autoguidance" if self._sampler_option("guide") else "classifier-free"

    @property
    def cfg_scale_label(self) -> float:
        """The classifier-free scale on top of autoguidance that the images reflect (1: none)."""
        return float(self._sampler_option("cfg_scale") or 1.0)

    def _autocast(self):
        return torch.autocast("cpu" if self.device.type == "cpu" else "cuda", dtype=torch.bfloat16,
                              enabled=self.precision == "bf16")

    def _condition(self, onehot: torch.Tensor):
        with self._autocast():
            return self.model.condition(onehot)

    def _network(self):
        if self.precision == "bf16":
            def net(z, t, c):
                with self._autocast():
                    return self.model(z.contiguous(memory_format=torch.channels_last), t, c).float()
            return net
        return lambda z, t, c: self.model(z.contiguous(memory_format=torch.channels_last), t, c)
