"""The GAN baselines by name, and their generators rebuilt from a model folder (no training code here)."""
from __future__ import annotations

from ..models.checkpoint import load_model
from ..data.classes import ClassSet
from ..models.schema import GAN_KIND
from .oasis import OasisConfig, OasisMethod
from .sean import SeanConfig, SeanMethod
from .spade import SpadeConfig, SpadeMethod

METHODS = {"spade": (SpadeConfig, SpadeMethod), "oasis": (OasisConfig, OasisMethod), "sean": (SeanConfig, SeanMethod)}


def build_method(name: str, classset: ClassSet, image_size: int, overrides: dict | None = None):
    if name not in METHODS:
        raise ValueError(f"unknown GAN method {name!r}; choose from {sorted(METHODS)}")
    cfg_cls, method_cls = METHODS[name]
    cfg = cfg_cls(**{"image_size": image_size, "label_channels": classset.num_channels, **(overrides or {})})
    return method_cls(cfg)


def load_generator(folder):
    """-> (method with generator weights, classset, config) from an exported GAN model folder."""
    built = {}

    def build(config):
        classset = ClassSet.from_dict(config["classes"])
        model_cfg = config["model"]
        built["method"] = build_method(config["method"], classset, model_cfg["image_size"],
                                       {k: v for k, v in model_cfg.items() if k not in ("image_size", "label_channels")})
        built["classset"] = classset
        return built["method"].generator

    config, _ = load_model(folder, GAN_KIND, build, "a GAN baseline's generator")
    return built["method"].eval(), built["classset"], config
