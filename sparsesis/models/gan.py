"""What the adversarial trainings share (the GAN baselines and the upsampler): pix2pixHD's hinge and
feature-matching losses, OASIS's per-pixel segmentation discriminator with its class-balanced cross-entropy
(Sushko et al. 2021), and DiffAugment (Zhao et al. 2020) for a discriminator that sees few photos.

A discriminator's output here is a list of feature lists, one list per scale, the last entry of each the
real/fake logits: ``[[f1, f2, ..., logits], ...]``.
"""
from __future__ import annotations

import torch
import torch.nn as nn
import torch.nn.functional as F
from torch.nn.utils import spectral_norm

IGNORE = -100  # a label that no loss counts (pixels that DiffAugment's translation brought in)


def hinge_d(real_out, fake_out) -> torch.Tensor:
    """The discriminator's hinge loss, averaged over scales."""
    loss = 0.0
    for r, f in zip(real_out, fake_out):
        loss = loss + F.relu(1 - r[-1].float()).mean() + F.relu(1 + f[-1].float()).mean()
    return loss / len(real_out)


def hinge_g(fake_out) -> torch.Tensor:
    """The generator's hinge loss: raise the discriminator's score of its images."""
    return -sum(f[-1].float().mean() for f in fake_out) / len(fake_out)


def feature_matching(real_out, fake_out) -> torch.Tensor:
    """L1 between the discriminator's features of real and generated images, every layer but the logits
    (pix2pixHD); the real side is not differentiated."""
    loss, n = 0.0, 0
    for r, f in zip(real_out, fake_out):
        for rf, ff in zip(r[:-1], f[:-1]):
            loss = loss + F.l1_loss(ff.float(), rf.detach().float())
            n += 1
    return loss / max(1, n)


def _down(cin, cout):
    return nn.Sequential(spectral_norm(nn.Conv2d(cin, cout, 3, padding=1)), nn.LeakyReLU(0.2),
                         spectral_norm(nn.Conv2d(cout, cout, 4, stride=2, padding=1)), nn.LeakyReLU(0.2))


def _up(cin, cout):
    return nn.Sequential(nn.Upsample(scale_factor=2, mode="nearest"),
                         spectral_norm(nn.Conv2d(cin, cout, 3, padding=1)), nn.LeakyReLU(0.2))


class SegmentationDiscriminator(nn.Module):
    """OASIS's U-Net discriminator: ``(B, 3, H, W)`` -> per-pixel logits over K real classes + 1 fake class,
    ``(B, K + 1, H, W)``; index K is "fake". ``features(x)`` also returns the decoder's activations (for
    feature matching). H and W must be multiples of 16."""

    def __init__(self, num_classes: int, ch: int = 32):
        super().__init__()
        c = [ch, 2 * ch, 4 * ch, 8 * ch]
        self.downs = nn.ModuleList([_down(3, c[0]), _down(c[0], c[1]), _down(c[1], c[2]), _down(c[2], c[3])])
        self.ups = nn.ModuleList([_up(c[3], c[2]), _up(2 * c[2], c[1]), _up(2 * c[1], c[0]), _up(2 * c[0], c[0])])
        self.out = nn.Conv2d(c[0], num_classes + 1, 1)

    def features(self, x: torch.Tensor) -> list[torch.Tensor]:
        skips = []
        for d in self.downs:
            x = d(x)
            skips.append(x)
        skips.pop()
        feats = []
        for u in self.ups:
            x = u(x)
            if skips:
                x = torch.cat([x, skips.pop()], 1)
            feats.append(x)
        return feats + [self.out(x)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.features(x)[-1]


def unlabelled_to_ignore(ids: torch.Tensor, unknown_id: int) -> torch.Tensor:
    """A photo's full label map as a discriminator's target: pixels nobody labelled (UNKNOWN, a data set's void
    id) count in no loss."""
    return torch.where(ids == unknown_id, torch.full_like(ids, IGNORE), ids)


def balanced_ce(logits: torch.Tensor, target: torch.Tensor) -> torch.Tensor:
    """Cross-entropy with OASIS's class balancing: each class weighted by the inverse of its pixel share in
    the batch. ``logits`` (B, C, H, W), ``target`` (B, H, W) long; pixels labelled ``IGNORE`` do not count."""
    n_cls = logits.shape[1]
    valid = target != IGNORE
    safe = torch.where(valid, target, torch.zeros_like(target))
    counts = torch.bincount(safe[valid], minlength=n_cls).float()
    present = (counts > 0).sum().clamp_min(1)
    weights = torch.where(counts > 0, valid.sum() / (counts * present), torch.zeros_like(counts))
    ce = F.cross_entropy(logits.float(), safe, reduction="none")
    return (ce * weights[safe] * valid).sum() / valid.sum().clamp_min(1)


def diff_augment(images: torch.Tensor, labels: torch.Tensor | None = None, generator: torch.Generator | None = None,
                 translation: float = 0.125) -> tuple[torch.Tensor, torch.Tensor | None]:
    """DiffAugment's colour and translation policies, differentiable in ``images`` (B, 3, H, W) in [-1, 1]:
    a random brightness, saturation and contrast per image, then a shift of up to ``translation`` of the
    side, zero-padded. ``labels`` (B, H, W), when given, move with the pixels; pixels shifted in are
    ``IGNORE``. Real and generated batches must each be augmented (the discriminator never sees a clean
    image, so it cannot tell the two by the augmentation)."""
    b, _, h, w = images.shape
    rand = lambda *s: torch.rand(*s, generator=generator).to(images.device, images.dtype)  # noqa: E731
    x = images + (rand(b, 1, 1, 1) - 0.5)  # brightness
    mean = x.mean(1, keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) * 2) + mean  # saturation
    mean = x.mean((1, 2, 3), keepdim=True)
    x = (x - mean) * (rand(b, 1, 1, 1) + 0.5) + mean  # contrast
    sy, sx = int(h * translation + 0.5), int(w * translation + 0.5)
    dy = torch.randint(-sy, sy + 1, (b,), generator=generator).tolist()
    dx = torch.randint(-sx, sx + 1, (b,), generator=generator).tolist()
    x = torch.stack([_shift(x[i], dy[i], dx[i], 0.0) for i in range(b)])
    if labels is not None:
        labels = torch.stack([_shift(labels[i], dy[i], dx[i], IGNORE) for i in range(b)])
    return x, labels


def _shift(t: torch.Tensor, dy: int, dx: int, fill) -> torch.Tensor:
    """``t`` (..., H, W) moved by (dy, dx) pixels, the uncovered border set to ``fill``."""
    h, w = t.shape[-2:]
    out = torch.full_like(t, fill)
    ys, yd = slice(max(0, -dy), h - max(0, dy)), slice(max(0, dy), h - max(0, -dy))
    xs, xd = slice(max(0, -dx), w - max(0, dx)), slice(max(0, dx), w - max(0, -dx))
    out[..., yd, xd] = t[..., ys, xs]
    return out
