"""Named model sizes. What they cost to train: ``results/README.md`` ("Training at paper scale") and
``results/history/train_step_cpu.json``."""
from __future__ import annotations

from dataclasses import replace

from .unet import UNetConfig

PRESETS: dict[str, UNetConfig] = {
    # for tests: trains in seconds
    "tiny": UNetConfig(image_size=32, base_channels=16, channel_mults=(1, 2), num_res_blocks=1,
                       attention_resolutions=(16,), head_channels=16, spade_hidden=16, groups=4),
    # the shipped CPU model
    "64": UNetConfig(image_size=64, base_channels=32, channel_mults=(1, 2, 2, 4), num_res_blocks=2,
                     attention_resolutions=(16, 8), spade_hidden=64),
    "128": UNetConfig(image_size=128, base_channels=64, channel_mults=(1, 1, 2, 3, 4), num_res_blocks=2,
                      attention_resolutions=(16, 8), head_channels=64, spade_hidden=64, groups=32),
    # the paper's scale (SDM's 256x256 setting, reduced depth)
    "256": UNetConfig(image_size=256, base_channels=128, channel_mults=(1, 1, 2, 2, 4, 4), num_res_blocks=2,
                      attention_resolutions=(32, 16, 8), head_channels=64, spade_hidden=128, groups=32),
}


def preset(name: str, label_channels: int, image_size: int | None = None) -> UNetConfig:
    if name not in PRESETS:
        raise ValueError(f"unknown model preset {name!r}; choose from {sorted(PRESETS)}")
    cfg = replace(PRESETS[name], label_channels=label_channels)
    return replace(cfg, image_size=image_size) if image_size else cfg
