"""The public generator API.

    from sparsesis import Synthesizer
    synth = Synthesizer.from_pretrained("checkpoints/ours64-student4")
    image = synth(layout, steps=4, seed=0)  # (64, 64, 3) uint8
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import numpy as np
import torch

from .checkpoint import CheckpointError, load_model_dir
from .classes import ClassSet, one_hot
from .diffusion import SAMPLERS, Step, guided
from .layouts import to_ids
from .schema import DEFAULT_GUIDANCE, DEFAULT_SAMPLER, DEFAULT_STEPS, DIFFUSION_KIND
from .unet import UNet, UNetConfig, count_parameters


@dataclass
class Trajectory:
    """Per sampling step: time, the noisy image after the step and the predicted clean image (uint8)."""

    t: list[float]
    z: list[np.ndarray]  # each (B, H, W, 3) uint8 (noisy images shown clipped to [-1, 1])
    x0: list[np.ndarray]  # each (B, H, W, 3) uint8


def _to_uint8(x: torch.Tensor) -> np.ndarray:
    return ((x.float().clamp(-1, 1) + 1) * 127.5).round().byte().permute(0, 2, 3, 1).cpu().numpy()


class Synthesizer:
    def __init__(self, model: UNet, classset: ClassSet, config: dict, device="cpu", precision: str = "fp32"):
        if precision not in ("fp32", "bf16"):
            raise ValueError(f"precision must be fp32 or bf16, got {precision!r}")
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

    @property
    def image_size(self) -> int:
        return self.model.cfg.image_size

    @classmethod
    def from_pretrained(cls, path: str | Path, device: str = "cpu", precision: str = "fp32") -> "Synthesizer":
        config, weights = load_model_dir(path)
        if config.get("kind") != DIFFUSION_KIND:
            raise CheckpointError(f"{path} holds a {config.get('kind')!r} model, not a sparsesis diffusion model")
        try:
            classset = ClassSet.from_dict(config["classes"])
            model = UNet(UNetConfig.from_dict(config["unet"]))
            model.load_state_dict(weights)
        except (KeyError, ValueError, RuntimeError) as err:
            raise CheckpointError(f"{path}: config and weights do not fit together ({err})") from err
        return cls(model, classset, config, device, precision)

    def layout_ids(self, layout, snap_colors: bool = False) -> np.ndarray:
        return to_ids(layout, self.classset, self.image_size, snap_colors)

    @torch.no_grad()
    def __call__(self, layout, steps: int | None = None, seed: int = 0, guidance: float | None = None,
                 sampler: str | None = None, callback: Callable[[Step], None] | None = None,
                 return_trajectory: bool = False, snap_colors: bool = False):
        """Generate RGB uint8 images: ``(H, W, 3)`` for one layout, ``(B, H, W, 3)`` for a batch.

        Image ``i`` of a batch uses seed ``seed + i``, so it does not depend on the batch size.
        With ``return_trajectory`` also returns a ``Trajectory`` of every step.
        """
        single = _is_single(layout)
        ids = self.layout_ids(layout, snap_colors)
        steps = self.default_steps if steps is None else steps
        if isinstance(steps, bool) or not isinstance(steps, (int, np.integer)) or steps < 1:
            raise ValueError(f"steps must be an integer >= 1, got {steps!r}")
        guidance = self._guidance(guidance)
        sampler = sampler or self.default_sampler
        if sampler not in SAMPLERS:
            raise ValueError(f"sampler must be one of {sorted(SAMPLERS)}, got {sampler!r}")
        b, s = ids.shape[0], self.image_size
        noise = torch.stack([torch.randn(3, s, s, generator=torch.Generator().manual_seed(int(seed) + i))
                             for i in range(b)]).to(self.device)
        lay = torch.from_numpy(ids).to(self.device)
        cond = one_hot(lay, self.classset.num_channels).contiguous(memory_format=torch.channels_last)
        net = self._network()
        # the layout branch runs once here, not at every step
        if guidance == 1.0:
            model_fn = guided(net, self._condition(cond), None, 1.0)
        else:
            uncond = one_hot(torch.full_like(lay, self.classset.unknown_id), self.classset.num_channels)
            both = self._condition(torch.cat([cond, uncond.contiguous(memory_format=torch.channels_last)]))
            model_fn = guided(net, None, None, guidance, both=both)
        traj = Trajectory([], [], []) if return_trajectory else None

        def report(st: Step):
            if traj is not None:
                traj.t.append(st.t)
                traj.z.append(_to_uint8(st.z))
                traj.x0.append(_to_uint8(st.x0))
            if callback is not None:
                callback(st)

        kwargs = {"generator": torch.Generator().manual_seed(int(seed) + 7919)} if sampler == "ddpm" else {}
        x = SAMPLERS[sampler](model_fn, noise, int(steps), callback=report, **kwargs)
        images = _to_uint8(x)
        if single:
            images = images[0]
            if traj is not None:
                traj = Trajectory(traj.t, [z[0] for z in traj.z], [x0[0] for x0 in traj.x0])
        return (images, traj) if return_trajectory else images

    def _guidance(self, guidance) -> float:
        if guidance is not None:
            guidance = float(guidance)
            if not np.isfinite(guidance) or guidance < 0:
                raise ValueError(f"guidance must be a finite number >= 0, got {guidance}")
        if self.distilled:
            # a student has the teacher's guidance baked into its single pass
            baked = self.baked_guidance
            if guidance is not None and abs(guidance - baked) > 1e-6:
                raise ValueError(f"this distilled student has guidance {baked:g} built in; pass guidance=None "
                                 "(or that value), or use the undistilled teacher to change it")
            return 1.0
        return self.default_guidance if guidance is None else guidance

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


def _is_single(layout) -> bool:
    """One layout (-> one image) or a batch (-> a batch)?"""
    if isinstance(layout, torch.Tensor):
        if layout.ndim == 4 and layout.is_floating_point():
            return False  # a one-hot batch
        layout = layout.cpu().numpy()
    a = np.asarray(layout)
    return a.ndim == 2 or (a.ndim == 3 and a.shape[-1] == 3 and a.dtype == np.uint8)
