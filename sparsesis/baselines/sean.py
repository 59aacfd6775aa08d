"""SEAN (Zhu et al. 2020), scaled to 64x64: region-adaptive normalisation. A style encoder turns the photo
into one style code per class region; every normalisation mixes a scale/shift predicted from the style
codes broadcast over their regions with SPADE's scale/shift from the layout (a learned blend).

Sparse layouts (documented choice): at training time the codes are pooled from the encoder's features
over the *full* label regions of the real photo and broadcast over the pixels the sparse layout labels;
UNKNOWN pixels get a learned "unknown" code. At test time there is no photo: each class uses the running
mean of its training codes (kept as a buffer in the checkpoint). SEAN has no noise input, so a layout gives
one image whatever the seed. Discriminator and losses are SPADE's (multi-scale PatchGAN, hinge, feature
matching).
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

from ..models.gan import feature_matching, hinge_d, hinge_g
from .spade import MultiscaleDiscriminator


@dataclass(frozen=True)
class SeanConfig:
    image_size: int = 64
    label_channels: int = 10
    style_dim: int = 64
    base_channels: int = 32
    spade_hidden: int = 64
    disc_channels: int = 32
    disc_scales: int = 2
    feat_match: float = 10.0
    code_momentum: float = 0.99

    def to_dict(self) -> dict:
        return asdict(self)


class StyleEncoder(nn.Module):
    """Photo -> per-pixel style features (B, style_dim, H, W) -> per-class codes by region averaging."""

    def __init__(self, style_dim: int, ch: int = 32):
        super().__init__()
        self.net = nn.Sequential(
            nn.Conv2d(3, ch, 3, padding=1), nn.LeakyReLU(0.2),
            nn.Conv2d(ch, 2 * ch, 4, stride=2, padding=1), nn.InstanceNorm2d(2 * ch), nn.LeakyReLU(0.2),
            nn.Conv2d(2 * ch, 2 * ch, 3, padding=1), nn.InstanceNorm2d(2 * ch), nn.LeakyReLU(0.2),
            nn.Upsample(scale_factor=2, mode="nearest"), nn.Conv2d(2 * ch, style_dim, 3, padding=1), nn.Tanh())

    def forward(self, photo: torch.Tensor, regions: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """``regions``: (B, K, H, W) one-hot of the real classes -> codes (B, K, D) and presence (B, K)."""
        feats = self.net(photo)
        area = regions.sum((2, 3))
        codes = torch.einsum("bkhw,bdhw->bkd", regions, feats) / area.clamp_min(1)[..., None]
        return codes, area > 0


class SeanNorm(nn.Module):
    def __init__(self, channels: int, label_channels: int, style_dim: int, hidden: int):
        super().__init__()
        self.norm = nn.BatchNorm2d(channels, affine=False)
        self.style_conv = nn.Conv2d(style_dim, hidden, 3, padding=1)
        self.style_gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.style_beta = nn.Conv2d(hidden, channels, 3, padding=1)
        self.shared = nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.ReLU())
        self.gamma = nn.Conv2d(hidden, channels, 3, padding=1)
        self.beta = nn.Conv2d(hidden, channels, 3, padding=1)
        self.blend = nn.Parameter(torch.zeros(()))  # sigmoid(0) = an even blend at the start

    def forward(self, x, layout, style_map):
        size = x.shape[-2:]
        layout = F.interpolate(layout, size=size, mode="nearest")
        style = F.relu(self.style_conv(F.interpolate(style_map, size=size, mode="nearest")))
        seg = self.shared(layout)
        a = torch.sigmoid(self.blend)
        gamma = a * self.style_gamma(style) + (1 - a) * self.gamma(seg)
        beta = a * self.style_beta(style) + (1 - a) * self.beta(seg)
        return self.norm(x) * (1 + gamma) + beta


class SeanResBlock(nn.Module):
    def __init__(self, cin, cout, cfg: SeanConfig):
        super().__init__()
        cmid = min(cin, cout)
        args = (cfg.label_channels, cfg.style_dim, cfg.spade_hidden)
        self.norm0, self.conv0 = SeanNorm(cin, *args), spectral_norm(nn.Conv2d(cin, cmid, 3, padding=1))
        self.norm1, self.conv1 = SeanNorm(cmid, *args), spectral_norm(nn.Conv2d(cmid, cout, 3, padding=1))
        self.skip = spectral_norm(nn.Conv2d(cin, cout, 1, bias=False)) if cin != cout else None

    def forward(self, x, layout, style_map):
        h = self.conv0(F.leaky_relu(self.norm0(x, layout, style_map), 0.2))
        h = self.conv1(F.leaky_relu(self.norm1(h, layout, style_map), 0.2))
        return (self.skip(x) if self.skip is not None else x) + h


class SeanGenerator(nn.Module):
    def __init__(self, cfg: SeanConfig):
        super().__init__()
        self.cfg = cfg
        self.k = cfg.label_channels - 1
        self.levels = 4
        self.start = cfg.image_size // 2 ** self.levels
        chans = [cfg.base_channels * min(8, 2 ** (self.levels - i)) for i in range(self.levels + 1)]
        self.conv_in = nn.Conv2d(cfg.label_channels, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList([SeanResBlock(chans[i], chans[i + 1], cfg) for i in range(self.levels)])
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)
        self.encoder = StyleEncoder(cfg.style_dim)
        self.unknown_code = nn.Parameter(torch.zeros(cfg.style_dim))
        self.register_buffer("mean_codes", torch.zeros(self.k, cfg.style_dim))
        self.register_buffer("codes_seen", torch.zeros(self.k))

    def style_map(self, layout: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        """Broadcast codes (B, K, D) over the pixels the layout labels; UNKNOWN pixels get the learned code."""
        all_codes = torch.cat([codes, self.unknown_code.expand(codes.shape[0], 1, -1)], 1)  # (B, K+1, D)
        return torch.einsum("bkhw,bkd->bdhw", layout, all_codes)

    @torch.no_grad()
    def update_mean_codes(self, codes: torch.Tensor, present: torch.Tensor) -> None:
        m = self.cfg.code_momentum
        for c in range(self.k):
            if present[:, c].any():
                batch_mean = codes[present[:, c], c].mean(0)
                first = self.codes_seen[c] == 0
                self.mean_codes[c] = batch_mean if first else m * self.mean_codes[c] + (1 - m) * batch_mean
                self.codes_seen[c] += 1

    def forward(self, layout: torch.Tensor, codes: torch.Tensor) -> torch.Tensor:
        smap = self.style_map(layout, codes)
        h = self.conv_in(F.interpolate(layout, size=(self.start, self.start), mode="nearest"))
        for block in self.blocks:
            h = F.interpolate(block(h, layout, smap), scale_factor=2, mode="nearest")
        return torch.tanh(self.out(F.leaky_relu(h, 0.2)))


class SeanMethod(nn.Module):
    name = "sean"

    def __init__(self, cfg: SeanConfig):
        super().__init__()
        self.cfg = cfg
        self.generator = SeanGenerator(cfg)
        self.discriminator = MultiscaleDiscriminator(cfg)

    def _codes(self, photos, full_ids, update: bool):
        regions = F.one_hot(full_ids.long(), self.generator.k + 1)[..., : self.generator.k].permute(0, 3, 1, 2).float()
        codes, present = self.generator.encoder(photos, regions)
        if update:
            self.generator.update_mean_codes(codes.detach(), present)
        return codes

    def fake(self, photos, layout, full_ids=None, generator=None) -> torch.Tensor:
        """The generator's images for a training batch: style codes from the real photos' full regions (their
        running means, used at test time, move when the generator trains)."""
        return self.generator(layout, self._codes(photos, full_ids, update=torch.is_grad_enabled()))

    def d_loss(self, photos, layout, fake, full_ids=None, generator=None):
        loss = hinge_d(self.discriminator(photos, layout), self.discriminator(fake, layout))
        return loss, {"d": loss.item()}

    def g_loss(self, photos, layout, fake, full_ids=None):
        fake_out = self.discriminator(fake, layout)
        with torch.no_grad():
            real_out = self.discriminator(photos, layout)
        adv, fm = hinge_g(fake_out), feature_matching(real_out, fake_out)
        return adv + self.cfg.feat_match * fm, {"g": adv.item(), "fm": fm.item()}

    @torch.no_grad()
    def generate(self, layout: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        codes = self.generator.mean_codes.expand(layout.shape[0], -1, -1)
        return self.generator(layout, codes)
