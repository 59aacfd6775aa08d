"""An SDM-style UNet (Wang et al. 2022): the noisy image goes through the encoder; the layout
enters through SPADE normalisation (Park et al. 2019) in the middle and decoder blocks.

Shapes: ``x`` (B, 3, H, W) noisy image, ``t`` (B,) continuous time in [0, 1], ``layout`` (B, K+1, H, W)
one-hot with UNKNOWN as its own channel. Output: (B, 3, H, W), the v-prediction.

The layout branch (the layout encoders and every SPADE block's scale/shift maps) depends on the layout
alone, not on ``x`` or ``t``: ``UNet.condition(layout)`` evaluates it once and ``forward`` accepts the result
in place of the one-hot layout, so a sampler pays for it once per image rather than once per step.
"""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass

import torch
import torch.nn as nn
import torch.nn.functional as F


@dataclass(frozen=True)
class UNetConfig:
    image_size: int = 64
    label_channels: int = 10  # classes + UNKNOWN
    base_channels: int = 32
    channel_mults: tuple[int, ...] = (1, 2, 2, 4)
    num_res_blocks: int = 2
    attention_resolutions: tuple[int, ...] = (16, 8)
    head_channels: int = 32
    spade_hidden: int = 64
    groups: int = 8
    dropout: float = 0.0

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> "UNetConfig":
        known = {f for f in cls.__dataclass_fields__}
        unknown = set(d) - known
        if unknown:
            raise ValueError(f"unknown UNet config fields {sorted(unknown)}")
        d = {k: tuple(v) if isinstance(v, list) else v for k, v in d.items()}
        return cls(**d)


def timestep_embedding(t: torch.Tensor, dim: int) -> torch.Tensor:
    """Sinusoidal embedding of continuous time ``t`` (B,) in [0, 1] -> (B, dim)."""
    half = dim // 2
    freqs = torch.exp(-math.log(10000.0) * torch.arange(half, device=t.device, dtype=torch.float32) / half)
    args = (t.float() * 1000.0)[:, None] * freqs[None]
    return torch.cat([torch.cos(args), torch.sin(args)], dim=1)


def zero_init(module: nn.Module) -> nn.Module:
    for p in module.parameters():
        nn.init.zeros_(p)
    return module


def layout_encoder(label_channels: int, hidden: int) -> nn.Module:
    """SPADE's shared layout MLP, run once per resolution and reused by every block there
    (SPADE runs it per block; sharing it made training faster on the CPU at equal quality of fit)."""
    return nn.Sequential(nn.Conv2d(label_channels, hidden, 3, padding=1), nn.SiLU(),
                         nn.Conv2d(hidden, hidden, 3, padding=1), nn.SiLU())


Modulation = tuple[torch.Tensor, torch.Tensor]  # SPADE's (gamma, beta), each (B, C, h, w)


class SPADE(nn.Module):
    """Parameter-free group norm, then a per-pixel scale and shift predicted from layout features."""

    def __init__(self, channels: int, hidden: int, groups: int):
        super().__init__()
        self.norm = nn.GroupNorm(groups, channels, affine=False)
        self.gamma_beta = nn.Conv2d(hidden, 2 * channels, 1)

    def modulation(self, layout_features: torch.Tensor) -> Modulation:
        # layout_features: (B, hidden, h, w) at the resolution of the features this block normalises
        gamma, beta = self.gamma_beta(layout_features).chunk(2, dim=1)
        return gamma, beta

    def forward(self, x: torch.Tensor, modulation: Modulation) -> torch.Tensor:
        gamma, beta = modulation
        return self.norm(x) * (1 + gamma) + beta


class ResBlock(nn.Module):
    """GroupNorm (or SPADE) -> SiLU -> conv, time scale/shift, norm -> SiLU -> conv, plus skip."""

    def __init__(self, cin: int, cout: int, emb_dim: int, cfg: UNetConfig, spade: bool, resolution: int = 0):
        super().__init__()
        self.spade = spade
        self.resolution = resolution  # side of the feature map it works on (picks the layout features)
        if spade:
            self.norm1 = SPADE(cin, cfg.spade_hidden, cfg.groups)
            self.norm2 = SPADE(cout, cfg.spade_hidden, cfg.groups)
        else:
            self.norm1 = nn.GroupNorm(cfg.groups, cin)
            self.norm2 = nn.GroupNorm(cfg.groups, cout)
        self.conv1 = nn.Conv2d(cin, cout, 3, padding=1)
        self.emb = nn.Linear(emb_dim, 2 * cout)
        self.dropout = nn.Dropout(cfg.dropout)
        self.conv2 = zero_init(nn.Conv2d(cout, cout, 3, padding=1))
        self.skip = nn.Conv2d(cin, cout, 1) if cin != cout else nn.Identity()

    def modulations(self, layout_features: torch.Tensor) -> tuple[Modulation, Modulation]:
        return self.norm1.modulation(layout_features), self.norm2.modulation(layout_features)

    def _norm(self, norm, h, modulation):
        return norm(h, modulation) if self.spade else norm(h)

    def forward(self, x, emb, modulations: tuple[Modulation, Modulation] | None):
        # modulations: this block's entry of a LayoutCondition (SPADE blocks), None for plain blocks
        mod1, mod2 = modulations if self.spade else (None, None)
        h = self.conv1(F.silu(self._norm(self.norm1, x, mod1)))
        scale, shift = self.emb(F.silu(emb))[:, :, None, None].chunk(2, dim=1)
        h = self._norm(self.norm2, h, mod2) * (1 + scale) + shift
        h = self.conv2(self.dropout(F.silu(h)))
        return self.skip(x) + h


class Attention(nn.Module):
    def __init__(self, channels: int, cfg: UNetConfig):
        super().__init__()
        self.heads = max(1, channels // cfg.head_channels)
        self.norm = nn.GroupNorm(cfg.groups, channels)
        self.qkv = nn.Conv2d(channels, 3 * channels, 1)
        self.proj = zero_init(nn.Conv2d(channels, channels, 1))

    def forward(self, x, emb=None, layout=None):
        b, c, h, w = x.shape
        q, k, v = self.qkv(self.norm(x)).reshape(b, 3, self.heads, c // self.heads, h * w).unbind(1)
        # (B, heads, HW, d)
        out = F.scaled_dot_product_attention(q.transpose(-1, -2), k.transpose(-1, -2), v.transpose(-1, -2))
        return x + self.proj(out.transpose(-1, -2).reshape(b, c, h, w))


class Downsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, stride=2, padding=1)

    def forward(self, x, emb=None, layout=None):
        return self.conv(x)


class Upsample(nn.Module):
    def __init__(self, channels):
        super().__init__()
        self.conv = nn.Conv2d(channels, channels, 3, padding=1)

    def forward(self, x, emb=None, layout=None):
        return self.conv(F.interpolate(x, scale_factor=2, mode="nearest"))


class UNet(nn.Module):
    def __init__(self, cfg: UNetConfig):
        super().__init__()
        n_levels = len(cfg.channel_mults)
        if cfg.image_size % (2 ** (n_levels - 1)):
            raise ValueError(f"image_size {cfg.image_size} must be divisible by {2 ** (n_levels - 1)}")
        if cfg.base_channels % cfg.groups:
            raise ValueError(f"base_channels {cfg.base_channels} must be divisible by groups {cfg.groups}")
        self.cfg = cfg
        ch = cfg.base_channels
        emb_dim = 4 * ch
        self.time_mlp = nn.Sequential(nn.Linear(ch, emb_dim), nn.SiLU(), nn.Linear(emb_dim, emb_dim))
        self.conv_in = nn.Conv2d(3, ch, 3, padding=1)

        # encoder: plain group norm; the layout does not enter here (as in SDM)
        self.down = nn.ModuleList()
        skips = [ch]
        res = cfg.image_size
        for level, mult in enumerate(cfg.channel_mults):
            for _ in range(cfg.num_res_blocks):
                blocks = [ResBlock(ch, cfg.base_channels * mult, emb_dim, cfg, spade=False)]
                ch = cfg.base_channels * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(ch, cfg))
                self.down.append(nn.ModuleList(blocks))
                skips.append(ch)
            if level < n_levels - 1:
                self.down.append(nn.ModuleList([Downsample(ch)]))
                skips.append(ch)
                res //= 2

        self.middle = nn.ModuleList([ResBlock(ch, ch, emb_dim, cfg, spade=True, resolution=res), Attention(ch, cfg),
                                     ResBlock(ch, ch, emb_dim, cfg, spade=True, resolution=res)])

        # decoder: SPADE everywhere
        self.up = nn.ModuleList()
        for level, mult in reversed(list(enumerate(cfg.channel_mults))):
            for i in range(cfg.num_res_blocks + 1):
                blocks = [ResBlock(ch + skips.pop(), cfg.base_channels * mult, emb_dim, cfg, spade=True,
                                   resolution=res)]
                ch = cfg.base_channels * mult
                if res in cfg.attention_resolutions:
                    blocks.append(Attention(ch, cfg))
                if level > 0 and i == cfg.num_res_blocks:
                    blocks.append(Upsample(ch))
                    res *= 2
                self.up.append(nn.ModuleList(blocks))

        sizes = [cfg.image_size // 2 ** i for i in range(n_levels)]
        self.layout_encoders = nn.ModuleDict({str(s): layout_encoder(cfg.label_channels, cfg.spade_hidden) for s in sizes})
        self.out = nn.Sequential(nn.GroupNorm(cfg.groups, ch), nn.SiLU(), zero_init(nn.Conv2d(ch, 3, 3, padding=1)))

    def _layout_pyramid(self, layout: torch.Tensor) -> dict[int, torch.Tensor]:
        """Layout features per resolution: {side: (B, hidden, side, side)}."""
        # Area resizing keeps thin strokes as class fractions instead of dropping them (nearest would).
        pyr, cur = {}, layout
        for i in range(len(self.cfg.channel_mults)):
            if i:
                cur = F.avg_pool2d(cur, 2)
            pyr[cur.shape[-1]] = self.layout_encoders[str(cur.shape[-1])](cur)
        return pyr

    def _spade_blocks(self) -> list[ResBlock]:
        """The layout-modulated blocks in the order ``forward`` runs them."""
        return [b for b in self.middle if isinstance(b, ResBlock)] + [
            b for blocks in self.up for b in blocks if isinstance(b, ResBlock)]

    def condition(self, layout: torch.Tensor) -> "LayoutCondition":
        """Evaluate the layout branch once; ``forward`` takes the result in place of the layout."""
        c, s = self.cfg.label_channels, self.cfg.image_size
        if layout.ndim != 4 or layout.shape[1] != c or layout.shape[-2:] != (s, s):
            raise ValueError(f"layout must be (B, {c}, {s}, {s}) one-hot, got {tuple(layout.shape)}")
        pyr = self._layout_pyramid(layout)
        return LayoutCondition(tuple(b.modulations(pyr[b.resolution]) for b in self._spade_blocks()))

    def forward(self, x: torch.Tensor, t: torch.Tensor, layout: "torch.Tensor | LayoutCondition") -> torch.Tensor:
        # x: (B, 3, H, W); t: (B,); layout: (B, K+1, H, W) one-hot, or its LayoutCondition
        if x.shape[-2:] != (self.cfg.image_size, self.cfg.image_size):
            raise ValueError(f"x must be (B, 3, {self.cfg.image_size}, {self.cfg.image_size}), got {tuple(x.shape)}")
        cond = layout if isinstance(layout, LayoutCondition) else self.condition(layout.to(x.dtype))
        if cond.batch_size != x.shape[0]:
            raise ValueError(f"the layout has batch size {cond.batch_size}, the image {x.shape[0]}")
        mods = iter(cond.modulations)
        emb = self.time_mlp(timestep_embedding(t, self.cfg.base_channels))
        h = self.conv_in(x)
        hs = [h]
        for blocks in self.down:
            for b in blocks:
                h = b(h, emb, None)
            hs.append(h)
        for b in self.middle:
            h = b(h, emb, next(mods) if isinstance(b, ResBlock) else None)
        for blocks in self.up:
            h = torch.cat([h, hs.pop()], dim=1)
            for b in blocks:
                h = b(h, emb, next(mods) if isinstance(b, ResBlock) else None)
        return self.out(h)


@dataclass(frozen=True)
class LayoutCondition:
    """The layout branch of a UNet evaluated for a batch of layouts: per SPADE block, in ``forward``'s order,
    the two (gamma, beta) pairs. For guidance, condition the stacked batch [layouts; null layouts] once."""

    modulations: tuple[tuple[Modulation, Modulation], ...]

    @property
    def batch_size(self) -> int:
        return self.modulations[0][0][0].shape[0]


def count_parameters(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())
