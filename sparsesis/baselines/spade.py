"""SPADE (Park et al. 2019), scaled to 64x64: a generator built from SPADE residual blocks that upsample a
noise vector while the layout modulates every normalisation, and a multi-scale PatchGAN discriminator
on (image, layout) pairs with hinge loss and feature matching.

Differences from the paper, forced by this setting: no VGG perceptual loss (the VGG weights cannot be had
offline), batch statistics from plain BatchNorm (one process), and the layout includes the UNKNOWN
channel, like the diffusion model's.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from ..models.gan import feature_matching, hinge_d, hinge_g


@dataclass(frozen=True)
class SpadeConfig:
    image_size: int = 64
    label_channels: int = 10
    z_dim: int = 128
    base_channels: int = 32  # channels at the output resolution; doubles per level up to 8x
    spade_hidden: int = 64
    disc_channels: int = 32
    disc_scales: int = 2
    feat_match: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


class SpadeNorm(nn.Module):
    """Parameter-free BatchNorm, then gamma/beta from the layout (resized to the feature map, nearest)."""

    def __init__(self, channels: int, label_channels: int, hidden: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)

    def forward(self, x, layout):
        layout = F.interpolate(layout, size=x.shape[-2:], mode="nearest")
        h = self.shared(layout)
        return self.norm(x) * (1 + self.gamma(h)) + self.beta(h)


class SpadeResBlock(nn.Module):
    def __init__(self, cin: int, cout: int, label_channels: int, hidden: int):
        super().__init__()
        cmid = min(cin, cout)
        self.norm0 = SpadeNorm(cin, label_channels, hidden)
        self.conv0 = spectral_norm(nn.Conv2d(cin, cmid, 3, padding=1))
        self.norm1 = SpadeNorm(cmid, label_channels, hidden)
        self.conv1 = spectral_norm(nn.Conv2d(cmid, cout, 3, padding=1))
        self.learned_skip = cin != cout
        if self.learned_skip:
            self.norm_s = SpadeNorm(cin, label_channels, hidden)
            self.conv_s = spectral_norm(nn.Conv2d(cin, cout, 1, bias=False))

    def forward(self, x, layout):
        skip = self.conv_s(self.norm_s(x, layout)) if self.learned_skip else x
        h = self.conv0(F.leaky_relu(self.norm0(x, layout), 0.2))
        h = self.conv1(F.leaky_relu(self.norm1(h, layout), 0.2))
        return skip + h


class SpadeGenerator(nn.Module):
    def __init__(self, cfg: SpadeConfig):
        super().__init__()
        self.cfg = cfg
        self.levels = 4  # 4x4 -> 64x64 at image_size 64
        self.start = cfg.image_size // 2 ** self.levels
        chans = [cfg.base_channels * min(8, 2 ** (self.levels - i)) for i in range(self.levels + 1)]
        self.fc = nn.Linear(cfg.z_dim, chans[0] * self.start * self.start)
        self.chans = chans
        self.blocks = nn.ModuleList(
            [SpadeResBlock(chans[i], chans[i + 1], cfg.label_channels, cfg.spade_hidden) for i in range(self.levels)])
        self.head = SpadeResBlock(chans[-1], chans[-1], cfg.label_channels, cfg.spade_hidden)
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)

    def forward(self, layout: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # layout: (B, K+1, H, W) one-hot; z: (B, z_dim) -> (B, 3, H, W) in [-1, 1]
        h = self.fc(z).view(z.shape[0], self.chans[0], self.start, self.start)
        for block in self.blocks:
            h = F.interpolate(block(h, layout), scale_factor=2, mode="nearest")
        h = self.head(h, layout)
        return torch.tanh(self.out(F.leaky_relu(h, 0.2)))

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, self.cfg.z_dim, generator=generator)


class PatchDiscriminator(nn.Module):
    """pix2pixHD/SPADE PatchGAN on concat(image, layout); returns every layer's features (last = logits)."""

    def __init__(self, in_channels: int, ch: int, n_layers: int = 4):
        super().__init__()
        layers, c = [], in_channels
        for i in range(n_layers):
            cout = ch * min(8, 2 ** i)
            stride = 2 if i < n_layers - 1 else 1
            norm = nn.InstanceNorm2d(cout) if i else nn.Identity()
            layers.append(nn.Sequential(spectral_norm(nn.Conv2d(c, cout, 4, stride, padding=2)), norm,
                                        nn.LeakyReLU(0.2)))
            c = cout
        layers.append(nn.Conv2d(c, 1, 4, 1, padding=2))
        self.layers = nn.ModuleList(layers)

    def forward(self, x):
        feats = []
        for layer in self.layers:
            x = layer(x)
            feats.append(x)
        return feats


class MultiscaleDiscriminator(nn.Module):
    def __init__(self, cfg: SpadeConfig):
        super().__init__()
        self.discs = nn.ModuleList([PatchDiscriminator(3 + cfg.label_channels, cfg.disc_channels)
                                    for _ in range(cfg.disc_scales)])

    def forward(self, image, layout):
        x, out = torch.cat([image, layout], 1), []
        for d in self.discs:
            out.append(d(x))
            x = F.avg_pool2d(x, 3, stride=2, padding=1, count_include_pad=False)
        return out


class SpadeMethod(nn.Module):
    """SPADE as a plug-in for the GAN training loop."""

    name = "spade"

    def __init__(self, cfg: SpadeConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = SpadeGenerator(cfg)
        self.discriminator = MultiscaleDiscriminator(cfg)

    def fake(self, photos, layout, full_ids=None, generator=None) -> torch.Tensor:
        """The generator's images for a training batch (noise drawn from ``generator``)."""
        return self.generator(layout, self.generator.sample_noise(len(photos), generator).to(photos.device))

    def d_loss(self, photos, layout, fake, full_ids=None, generator=None) -> tuple[torch.Tensor, dict]:
        loss = hinge_d(self.discriminator(photos, layout), self.discriminator(fake, layout))
        return loss, {"d": loss.item()}

    def g_loss(self, photos, layout, fake, full_ids=None) -> tuple[torch.Tensor, dict]:
        fake_out = self.discriminator(fake, layout)
        with torch.no_grad():
            real_out = self.discriminator(photos, layout)
        adv, fm = hinge_g(fake_out), feature_matching(real_out, fake_out)
        loss = adv + self.cfg.feat_match * fm
        return loss, {"g": adv.item(), "fm": fm.item()}

    @torch.no_grad()
    def generate(self, layout: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        z = torch.stack([self.generator.sample_noise(1, torch.Generator().manual_seed(s))[0] for s in seeds])
        return self.generator(layout, z.to(layout.device))
