"""The ``config.json`` of a model folder, and the sampling defaults: one home for both.

Every checkpoint folder states its ``kind``; ``sparsesis.loader.load`` dispatches on it. A diffusion model's
config rebuilds the network (``unet``), names its classes and holds its sampling defaults; a distilled
student adds ``distillation`` (its step count and the guidance built into it).
"""
from __future__ import annotations

import json
from dataclasses import asdict

DIFFUSION_KIND = "sparsesis-diffusion"
GAN_KIND = "sparsesis-gan"
SEGMENTER_KIND = "sparsesis-segmenter"
UPSAMPLER_KIND = "sparsesis-upsampler"
GENERATOR_KINDS = (DIFFUSION_KIND, GAN_KIND)

# Sampling defaults for a diffusion model whose config does not set them. Guidance 1.5 is the scale the
# teacher was trained and first evaluated at; a distilled student carries its own (built in) instead.
DEFAULT_SAMPLER = "ddim"
DEFAULT_STEPS = 50
DEFAULT_GUIDANCE = 1.5
# the degradation level an upsampler with a level input assumes for a generator's images
DEFAULT_UPSAMPLER_LEVEL = 0.5


def default_sampling() -> dict:
    return {"sampler": DEFAULT_SAMPLER, "steps": DEFAULT_STEPS, "guidance": DEFAULT_GUIDANCE}


def diffusion_config(unet, classset, train=None, **extra) -> dict:
    """The config of a diffusion model folder: enough to rebuild and sample the model.

    ``unet`` a ``UNetConfig``, ``classset`` a ``ClassSet``, ``train`` (optional) the training config (any object
    with ``to_dict()``); ``extra`` keys (``record``, ``sampling``, ...) are added or override."""
    cfg = {"kind": DIFFUSION_KIND, "unet": unet.to_dict(), "classes": classset.to_dict(),
           "diffusion": {"schedule": "cosine", "prediction": "v"}, "sampling": default_sampling()}
    if train is not None:
        cfg["training"] = train.to_dict()
    cfg.update(extra)
    return cfg


def gan_config(method, classset, record: dict) -> dict:
    """The config of a GAN baseline's generator folder."""
    return {"kind": GAN_KIND, "method": method.name, "model": method.cfg.to_dict(), "classes": classset.to_dict(),
            "record": record}


def upsampler_config(net, classset, record: dict, train=None) -> dict:
    """The config of an upsampler folder. ``net`` an ``UpsamplerNet``; ``train`` (optional) its
    ``UpsamplerTrainConfig``. A level-input network's folder gets ``defaults.level`` (``DEFAULT_UPSAMPLER_LEVEL``)."""
    cfg = {"kind": UPSAMPLER_KIND, "model": net.cfg.to_dict(), "classes": classset.to_dict(), "record": record}
    if net.cfg.level_input:
        cfg["defaults"] = {"level": DEFAULT_UPSAMPLER_LEVEL}
    if train is not None:
        cfg["training"] = json.loads(json.dumps(asdict(train)))
    return cfg


def segmenter_config(net, classset, record: dict) -> dict:
    """The config of a segmenter folder (``net`` a ``SegNet``)."""
    return {"kind": SEGMENTER_KIND, "model": net.cfg.to_dict(), "classes": classset.to_dict(), "record": record}
