"""OASIS (Schönfeld et al. 2021), scaled to 64x64: a SPADE-style generator conditioned on the layout
concatenated with 3D noise (a noise vector replicated over the image), and a U-Net discriminator that
segments every pixel into the K classes or "fake" (N+1 classes), with class-balanced cross-entropy and
LabelMix regularisation.

Sparse layouts (documented choice): real photos come with their *full* label maps, so the discriminator's
real target is the full map; for generated images the generator is pushed toward the input class where the
layout names one, and toward "some real class" (-log(1 - p_fake)) where the layout says UNKNOWN.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F

from ..models.gan import SegmentationDiscriminator, balanced_ce, unlabelled_to_ignore
from .spade import SpadeResBlock


@dataclass(frozen=True)
class OasisConfig:
    image_size: int = 64
    label_channels: int = 10  # K classes + UNKNOWN
    z_dim: int = 32
    base_channels: int = 32
    spade_hidden: int = 64
    disc_channels: int = 32
    labelmix: float = 10.0

    def to_dict(self) -> dict:
        return asdict(self)


class OasisGenerator(nn.Module):
    def __init__(self, cfg: OasisConfig):
        super().__init__()
        self.cfg = cfg
        self.levels = 4
        self.start = cfg.image_size // 2 ** self.levels
        cond = cfg.label_channels + cfg.z_dim
        chans = [cfg.base_channels * min(8, 2 ** (self.levels - i)) for i in range(self.levels + 1)]
        self.chans = chans
        self.conv_in = nn.Conv2d(cond, chans[0], 3, padding=1)
        self.blocks = nn.ModuleList([SpadeResBlock(chans[i], chans[i + 1], cond, cfg.spade_hidden)
                                     for i in range(self.levels)])
        self.head = SpadeResBlock(chans[-1], chans[-1], cond, cfg.spade_hidden)
        self.out = nn.Conv2d(chans[-1], 3, 3, padding=1)

    def forward(self, layout: torch.Tensor, z: torch.Tensor) -> torch.Tensor:
        # 3D noise: z (B, z_dim) replicated over H x W and concatenated with the layout
        cond = torch.cat([layout, z[:, :, None, None].expand(-1, -1, *layout.shape[-2:])], 1)
        h = self.conv_in(F.interpolate(cond, size=(self.start, self.start), mode="nearest"))
        for block in self.blocks:
            h = F.interpolate(block(h, cond), scale_factor=2, mode="nearest")
        return torch.tanh(self.out(F.leaky_relu(self.head(h, cond), 0.2)))

    def sample_noise(self, batch: int, generator: torch.Generator | None = None) -> torch.Tensor:
        return torch.randn(batch, self.cfg.z_dim, generator=generator)


class OasisMethod(nn.Module):
    name = "oasis"

    def __init__(self, cfg: OasisConfig):
        super().__init__()
        self.cfg = cfg
        self.k = cfg.label_channels - 1  # real classes; index k is "fake"
        self.generator = OasisGenerator(cfg)
        self.discriminator = SegmentationDiscriminator(self.k, cfg.disc_channels)

    def fake(self, photos, layout, full_ids=None, generator=None) -> torch.Tensor:
        """The generator's images for a training batch (noise drawn from ``generator``)."""
        return self.generator(layout, self.generator.sample_noise(len(photos), generator).to(layout.device))

    def d_loss(self, photos, layout, fake, full_ids=None, generator=None):
        full_ids = full_ids.to(photos.device).long()
        d_real, d_fake = self.discriminator(photos), self.discriminator(fake)
        loss_real = balanced_ce(d_real, unlabelled_to_ignore(full_ids, self.k))
        loss_fake = F.cross_entropy(d_fake, torch.full_like(full_ids, self.k))
        # LabelMix: mix real and fake by a random subset of the classes; D must mix its outputs the same way
        classes = torch.unique(full_ids)
        chosen = classes[torch.randperm(len(classes), generator=generator)[: max(1, len(classes) // 2)]]
        mask = torch.isin(full_ids, chosen).unsqueeze(1).float()
        mixed = mask * photos + (1 - mask) * fake
        lm = F.mse_loss(self.discriminator(mixed), mask * d_real + (1 - mask) * d_fake)
        loss = loss_real + loss_fake + self.cfg.labelmix * lm
        return loss, {"d_real": loss_real.item(), "d_fake": loss_fake.item(), "labelmix": lm.item()}

    def g_loss(self, photos, layout, fake, full_ids=None):
        logits = self.discriminator(fake)
        sparse = layout.argmax(1)
        known = sparse < self.k
        target = torch.where(known, sparse, torch.zeros_like(sparse))
        ce = F.cross_entropy(logits, target, reduction="none")
        # where the layout is UNKNOWN: any real class will do, i.e. not "fake"
        p_fake = F.softmax(logits, 1)[:, self.k]
        any_real = -torch.log((1 - p_fake).clamp_min(1e-6))
        loss = torch.where(known, ce, any_real).mean()
        return loss, {"g": loss.item()}

    @torch.no_grad()
    def generate(self, layout: torch.Tensor, seeds: list[int]) -> torch.Tensor:
        z = torch.stack([self.generator.sample_noise(1, torch.Generator().manual_seed(s))[0] for s in seeds])
        return self.generator(layout, z.to(layout.device))
