"""Continuous-time Gaussian diffusion with a cosine schedule and v-prediction, as pure functions.

Notation (Kingma et al. 2021; Salimans & Ho 2022): ``z_t = alpha_t x + sigma_t eps`` with
``alpha_t^2 + sigma_t^2 = 1``, ``logsnr_t = log(alpha_t^2 / sigma_t^2)``, ``t`` in [0, 1] (1 = pure noise).
The network predicts ``v = alpha_t eps - sigma_t x``, from which ``x = alpha_t z - sigma_t v`` and
``eps = sigma_t z + alpha_t v``.

A *model function* here is any callable ``model_fn(z, t) -> v`` with ``z`` (B, C, H, W) and ``t`` (B,);
conditioning and guidance are bound into it (see ``guided_model``). Samplers know nothing else.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable

import torch

ModelFn = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
PairFn = Callable[[torch.Tensor, torch.Tensor], tuple[torch.Tensor, torch.Tensor]]  # (z, t) -> (v_c, v_u)

LOGSNR_MIN, LOGSNR_MAX = -20.0, 20.0


# ---------------------------------------------------------------------------------------------
# schedule
# ---------------------------------------------------------------------------------------------
def logsnr_cosine(t: torch.Tensor, logsnr_min: float = LOGSNR_MIN, logsnr_max: float = LOGSNR_MAX) -> torch.Tensor:
    """Cosine schedule (Nichol & Dhariwal 2021) as log-SNR, clipped to [logsnr_min, logsnr_max]."""
    b = math.atan(math.exp(-0.5 * logsnr_max))
    a = math.atan(math.exp(-0.5 * logsnr_min)) - b
    return -2.0 * torch.log(torch.tan(a * t.double() + b)).to(torch.float32)


def alpha_sigma(logsnr: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.sigmoid(logsnr).sqrt(), torch.sigmoid(-logsnr).sqrt()


def _bc(v: torch.Tensor, like: torch.Tensor) -> torch.Tensor:
    """(B,) -> (B, 1, 1, 1) to broadcast against images."""
    return v.reshape(-1, *([1] * (like.ndim - 1))).to(like.dtype)


def q_sample(x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """Forward process: z_t = alpha_t x + sigma_t eps."""
    a, s = alpha_sigma(logsnr_cosine(t))
    return _bc(a, x) * x + _bc(s, x) * noise


def v_target(x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    a, s = alpha_sigma(logsnr_cosine(t))
    return _bc(a, x) * noise - _bc(s, x) * x


def x_eps_from_v(z: torch.Tensor, v: torch.Tensor, t: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    a, s = alpha_sigma(logsnr_cosine(t))
    a, s = _bc(a, z), _bc(s, z)
    return a * z - s * v, s * z + a * v


def v_from_x(z: torch.Tensor, x: torch.Tensor, t: torch.Tensor) -> torch.Tensor:
    """The v that maps z_t to the given x (used as the distillation target)."""
    a, s = alpha_sigma(logsnr_cosine(t))
    a, s = _bc(a, z), _bc(s, z)
    eps = (z - a * x) / s.clamp_min(1e-8)
    return a * eps - s * x


def ddim_step(z: torch.Tensor, x0: torch.Tensor, t: torch.Tensor, s: torch.Tensor) -> torch.Tensor:
    """One deterministic DDIM move from time t to s < t given the predicted clean image:
    z_s = alpha_s x0 + sigma_s * (z_t - alpha_t x0) / sigma_t."""
    a_t, s_t = alpha_sigma(logsnr_cosine(t))
    a_s, s_s = alpha_sigma(logsnr_cosine(s))
    eps = (z - _bc(a_t, z) * x0) / _bc(s_t, z).clamp_min(1e-8)
    return _bc(a_s, z) * x0 + _bc(s_s, z) * eps


# ---------------------------------------------------------------------------------------------
# training loss
# ---------------------------------------------------------------------------------------------
def loss_weight(t: torch.Tensor, snr_gamma: float | None = 5.0, snr_floor: float | None = 1.0) -> torch.Tensor:
    """Weight of the v-prediction MSE, as an x-space weight ``clamp(snr, floor, gamma)`` divided by ``snr + 1``
    (since ||x_hat - x||^2 = sigma^2 ||v_hat - v||^2 = ||v_hat - v||^2 / (snr + 1)).

    The cap ``gamma`` is min-SNR weighting (Hang et al. 2023). The floor is Salimans & Ho's truncated SNR: without
    it the weight of high-noise times goes to 0 and the x prediction at t ~ 1, which a few-step sampler
    and distillation lean on, is never learned. ``None`` switches either side off (both off: plain v-MSE)."""
    snr = torch.exp(logsnr_cosine(t))
    if snr_gamma is None and snr_floor is None:
        return torch.ones_like(snr)
    w = snr
    if snr_gamma is not None:
        w = torch.clamp(w, max=snr_gamma)
    if snr_floor is not None:
        w = torch.clamp(w, min=snr_floor)
    return w / (snr + 1)


def diffusion_loss(model_fn: ModelFn, x: torch.Tensor, t: torch.Tensor, noise: torch.Tensor,
                   snr_gamma: float | None = 5.0, snr_floor: float | None = 1.0) -> torch.Tensor:
    """Weighted v-prediction MSE, one value per example: (B,)."""
    z = q_sample(x, t, noise)
    err = (model_fn(z, t).float() - v_target(x, noise, t)) ** 2
    return loss_weight(t, snr_gamma, snr_floor) * err.mean(dim=tuple(range(1, x.ndim)))


# ---------------------------------------------------------------------------------------------
# guidance
# ---------------------------------------------------------------------------------------------
def guided(model: Callable, cond, uncond, scale: float, both=None) -> ModelFn:
    """Classifier-free guidance (Ho & Salimans 2022): v = v_u + scale * (v_c - v_u).

    ``model(z, t, c)`` is the network; ``cond``/``uncond`` its conditioning (the null layout is all
    UNKNOWN). ``scale == 1`` is the plain conditional model and costs one pass, not two. ``both`` is the
    conditioning of the stacked batch [cond; uncond] when the caller has it ready-made (a cached layout
    branch); by default the two tensors are concatenated.
    """
    if scale == 1.0:
        return lambda z, t: model(z, t, cond)
    return _classifier_free(cond_uncond(model, cond, uncond, both), scale)


def cond_uncond(model: Callable, cond, uncond, both=None) -> PairFn:
    """``(z, t) -> (v_c, v_u)``: the conditional and the unconditional prediction from one batched pass
    (``both`` as in ``guided``)."""
    both = torch.cat([cond, uncond]) if both is None else both

    def fn(z, t):
        return model(torch.cat([z, z]), torch.cat([t, t]), both).chunk(2)

    return fn


def _classifier_free(pair: PairFn, scale: float) -> ModelFn:
    """v = v_u + scale * (v_c - v_u), both from one batched pass of ``pair``."""

    def fn(z, t):
        v_c, v_u = pair(z, t)
        return v_u + scale * (v_c - v_u)

    return fn


def autoguided(main: Callable, guide: Callable, scale: float, pair: PairFn | None = None,
               cfg_scale: float = 1.0) -> ModelFn:
    """Autoguidance (Karras et al. 2024, "Guiding a diffusion model with a bad version of itself"):
    v = v_guide + scale * (v_main - v_guide), both ``main(z, t)`` and ``guide(z, t)`` conditioned on the same
    layout; the guide is a weaker model of the same task (an earlier checkpoint, a smaller network). One pass
    of each network per step; ``scale == 1`` is the main model alone.

    ``cfg_scale != 1`` adds classifier-free guidance on top (``pair`` from ``cond_uncond``):
    v = v_c + (scale - 1)(v_c - v_guide) + (cfg_scale - 1)(v_c - v_u). Autoguidance pulls towards photos,
    the classifier-free term towards the layout; three passes a step (two of them batched). At ``scale == 1``
    that is classifier-free guidance alone, computed as ``guided`` computes it, without the guide's pass."""
    if cfg_scale != 1.0:
        if pair is None:
            raise ValueError("classifier-free guidance on top of autoguidance needs the conditional/unconditional pair")
        if scale == 1.0:
            return _classifier_free(pair, cfg_scale)

        def both_fn(z, t):
            v_c, v_u = pair(z, t)
            return v_c + (scale - 1.0) * (v_c - guide(z, t)) + (cfg_scale - 1.0) * (v_c - v_u)

        return both_fn
    if scale == 1.0:
        return main

    def fn(z, t):
        v_g = guide(z, t)
        return v_g + scale * (main(z, t) - v_g)

    return fn


def guidance_interval(guided_fn: ModelFn, plain_fn: ModelFn, lo: float, hi: float) -> ModelFn:
    """Guidance on a limited interval of noise levels (Kynkäänniemi et al. 2024): ``guided_fn`` where the time
    ``t`` (1 = pure noise, 0 = clean; the same for the whole batch) lies in ``[lo, hi]``, ``plain_fn`` (the
    unguided conditional model, one pass) elsewhere."""
    if not 0.0 <= lo <= hi <= 1.0:
        raise ValueError(f"the guidance interval must satisfy 0 <= lo <= hi <= 1, got ({lo}, {hi})")

    def fn(z, t):
        return guided_fn(z, t) if lo <= float(t.reshape(-1)[0]) <= hi else plain_fn(z, t)

    return fn


def guided_model(plain: ModelFn, pair: PairFn | None, scale: float, guide: ModelFn | None = None,
                 cfg_scale: float = 1.0, interval: tuple[float, float] | None = None) -> ModelFn:
    """The sampler's model function under one guidance specification; every guided sampler in the package (the
    ``Synthesizer``, the distillation's teacher, the training's sample grids) is built here.

    ``plain(z, t) -> v_c`` is the conditional model (one pass), ``pair(z, t) -> (v_c, v_u)`` the conditional and the
    unconditional prediction from one batched pass (``cond_uncond``). Without ``guide``: classifier-free guidance at
    ``scale`` (``guided``). With ``guide(z, t) -> v`` (a weaker model on the same layout): autoguidance at ``scale``,
    classifier-free guidance at ``cfg_scale`` on top (``autoguided``; ``pair`` may be None when ``cfg_scale == 1``).
    ``interval=(lo, hi)``: guided only at times lo <= t <= hi, ``plain`` elsewhere (``guidance_interval``).
    ``scale == cfg_scale == 1`` is ``plain`` itself, one pass a step, whatever the interval."""
    if guide is None and cfg_scale != 1.0:
        raise ValueError("cfg_scale adds classifier-free guidance on top of autoguidance and needs a guide; "
                         "classifier-free guidance alone is scale")
    if scale == 1.0 and cfg_scale == 1.0:
        return plain
    if guide is not None:
        fn = autoguided(plain, guide, scale, pair, cfg_scale)
    elif pair is None:
        raise ValueError("classifier-free guidance needs the conditional/unconditional pair")
    else:
        fn = _classifier_free(pair, scale)
    if interval is None:
        return fn
    lo, hi = interval
    return guidance_interval(fn, plain, float(lo), float(hi))


# ---------------------------------------------------------------------------------------------
# samplers
# ---------------------------------------------------------------------------------------------
@dataclass
class Step:
    """What a sampler reports after each step (for trajectories and progress)."""

    index: int  # 0-based step number
    t: float  # time before the step
    z: torch.Tensor  # the noisy image after the step, (B, C, H, W)
    x0: torch.Tensor  # the model's predicted clean image at this step, (B, C, H, W)


def time_grid(steps: int, start: float = 1.0) -> torch.Tensor:
    """Uniform times ``start`` -> 0: (steps + 1,). ``start < 1`` begins from a partly noised image (SDEdit)."""
    if int(steps) != steps or steps < 1:
        raise ValueError(f"steps must be a positive integer, got {steps!r}")
    if not 0.0 < start <= 1.0:
        raise ValueError(f"start must be in (0, 1], got {start!r}")
    return torch.linspace(float(start), 0.0, int(steps) + 1)


@dataclass
class Known:
    """A region to keep (RePaint, Lugmayr et al. 2022): after every step the sampler holds ``z`` there to the kept
    image noised to the step's time, so at t = 0 the region is exactly ``x``; the rest is generated to fit it.

    ``x`` (B, C, H, W) the image to keep, ``mask`` (B, 1, H, W) 1 = keep / 0 = generate, ``noise`` (B, C, H, W)
    the fixed noise that noises ``x``."""

    x: torch.Tensor
    mask: torch.Tensor
    noise: torch.Tensor

    def paste(self, z: torch.Tensor, s: float) -> torch.Tensor:
        tt = torch.full((z.shape[0],), float(s), device=z.device)
        held = self.x if s == 0.0 else q_sample(self.x, tt, self.noise)
        return self.mask * held + (1 - self.mask) * z


def renoise(z: torch.Tensor, s: float, t: float, generator: torch.Generator | None = None) -> torch.Tensor:
    """A draw of z_t given z_s (t > s): the forward process q(z_t | z_s), RePaint's "jump back"."""
    a_t, s_t = (v.item() for v in alpha_sigma(logsnr_cosine(torch.tensor([t]))))
    a_s, s_s = (v.item() for v in alpha_sigma(logsnr_cosine(torch.tensor([s]))))
    a_ts = a_t / a_s
    std = math.sqrt(max(s_t ** 2 - a_ts ** 2 * s_s ** 2, 0.0))
    return a_ts * z + std * torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype)


def _predict(model_fn: ModelFn, z: torch.Tensor, t: float, clip: bool):
    tt = torch.full((z.shape[0],), float(t), device=z.device)
    v = model_fn(z, tt).float()
    x0, eps = x_eps_from_v(z, v, tt)
    if clip:
        x0 = x0.clamp(-1, 1)
        a, s = alpha_sigma(logsnr_cosine(tt))
        eps = (z - _bc(a, z) * x0) / _bc(s, z).clamp_min(1e-8)
    return x0, eps


def _ddim_move(model_fn: ModelFn, z: torch.Tensor, t: float, s: float, clip: bool):
    """One DDIM step t -> s: z_s = alpha_s x0_hat + sigma_s eps_hat (z_0 = x0_hat). -> (z_s, x0_hat)."""
    x0, _ = _predict(model_fn, z, t, clip)
    if s == 0.0:
        return x0, x0
    full = lambda v: torch.full((z.shape[0],), float(v), device=z.device)  # noqa: E731
    return ddim_step(z, x0, full(t), full(s)), x0


def _ddpm_move(model_fn: ModelFn, z: torch.Tensor, t: float, s: float, clip: bool, generator=None):
    """One ancestral step t -> s from the posterior q(z_s | z_t, x0_hat). -> (z_s, x0_hat)."""
    x0, _ = _predict(model_fn, z, t, clip)
    if s == 0.0:
        return x0, x0
    a_t, s_t = (v.item() for v in alpha_sigma(logsnr_cosine(torch.tensor([t]))))
    a_s, s_s = (v.item() for v in alpha_sigma(logsnr_cosine(torch.tensor([s]))))
    a_ts = a_t / a_s
    var_ts = s_t ** 2 - a_ts ** 2 * s_s ** 2
    mean = (a_ts * s_s ** 2 / s_t ** 2) * z + (a_s * var_ts / s_t ** 2) * x0
    std = math.sqrt(max(var_ts * s_s ** 2 / s_t ** 2, 0.0))
    return mean + std * torch.randn(z.shape, generator=generator, device=z.device, dtype=z.dtype), x0


def _run(move, noise: torch.Tensor, steps: int, callback, known: Known | None, resample: int, start: float,
         generator: torch.Generator | None) -> torch.Tensor:
    """The loop every sampler shares: ``move(z, t, s) -> (z_s, x0_hat)`` per step; with ``known``, the kept region
    is pasted after every move and each step is redone ``resample`` more times after jumping back to t (RePaint),
    so the generated part can settle against the kept one."""
    ts = time_grid(steps, start).tolist()
    z = noise.float()
    for i, (t, s) in enumerate(zip(ts[:-1], ts[1:])):
        z_s, x0 = move(z, t, s)
        if known is not None:
            z_s = known.paste(z_s, s)
            for _ in range(resample if s > 0.0 else 0):  # jump back to t and step again
                z_s, x0 = move(renoise(z_s, s, t, generator), t, s)
                z_s = known.paste(z_s, s)
        z = z_s
        if callback is not None:
            callback(Step(i, t, z, x0))
    return z


@torch.no_grad()
def sample_ddim(model_fn: ModelFn, noise: torch.Tensor, steps: int, clip: bool = True,
                callback: Callable[[Step], None] | None = None, known: Known | None = None, resample: int = 0,
                start: float = 1.0, generator: torch.Generator | None = None) -> torch.Tensor:
    """Deterministic DDIM (Song et al. 2021) from ``noise`` = z at time ``start``. Returns the image at t = 0.

    ``known`` keeps a region (RePaint); ``resample`` jumps back that many times per step (fresh noise from
    ``generator``). ``start < 1`` with ``noise`` a noised image is SDEdit (Meng et al. 2022)."""
    return _run(lambda z, t, s: _ddim_move(model_fn, z, t, s, clip), noise, steps, callback, known, resample, start,
                generator)


@torch.no_grad()
def sample_ddpm(model_fn: ModelFn, noise: torch.Tensor, steps: int, generator: torch.Generator | None = None,
                clip: bool = True, callback: Callable[[Step], None] | None = None, known: Known | None = None,
                resample: int = 0, start: float = 1.0) -> torch.Tensor:
    """Ancestral sampling from the posterior q(z_s | z_t, x0_hat) (Ho et al. 2020, in continuous time)."""
    return _run(lambda z, t, s: _ddpm_move(model_fn, z, t, s, clip, generator), noise, steps, callback, known,
                resample, start, generator)


SAMPLERS = {"ddim": sample_ddim, "ddpm": sample_ddpm}
