"""Train the layout-aware 4x upsampler (``sparsesis.models.upsampler``) on the training photos at 256 px.

    python -m sparsesis.training.train_upsampler --run-dir runs/upsampler4x --threads 1 --minutes 120

The defaults are the shipped upsampler's adversarial stage (``checkpoints/upsampler4x/config.json``'s recipe;
its first stage trains the pixel losses alone from a network without fine blocks, then this stage continues it
with ``--init-from``). Each step takes random 128x128 crops of the 256-px training photos (random square crop,
flip), makes the 32x32 input the way the base model's images differ from clean downsampled photos
(area-downsampled, then a random blur, Gaussian noise and a small colour shift; ``degrade``), and the layout at 128
under class-wise random masks (sometimes all UNKNOWN). A noise plane at 2x and 4x draws the fine texture per seed.

Losses: L1 to the real crop (``--l1-weight``; ``--lowpass-weight`` puts L1 on 2x2 means instead, leaving the
finest octave to the discriminator), and from ``--adv-from`` on an adversarial loss with feature matching against
OASIS's per-pixel segmentation discriminator behind DiffAugment (the other discriminators and regularisers tried,
and what each gave: ``results/history/EXPERIMENTS.md`` and git). No ImageNet network is used in any loss (the
metric's network least of all). Batches are a pure function of (seed, step), so a resumed run continues exactly;
``<run>/export`` holds the EMA generator as a model folder (the discriminator beside it, so a run started from it
with ``--init-from`` goes on against it), ``<run>/snapshots/step_<n>`` one every ``--snapshot-every`` steps.
"""
from __future__ import annotations

import json
import sys
from dataclasses import dataclass
from pathlib import Path

import cv2
import numpy as np
import torch
import torch.nn as nn
import torch.nn.functional as F

from .adversarial import AdversarialSchedule, train_adversarial
from ..models.checkpoint import STATE_FILE, save_discriminator, save_model_dir
from ..data.classes import one_hot
from ..data.sets import load_split
from ..models.gan import IGNORE, SegmentationDiscriminator, balanced_ce, diff_augment, feature_matching, unlabelled_to_ignore
from ..data.masking import MaskConfig, class_wise_random
from ..models.schema import UPSAMPLER_KIND, upsampler_config
from .loop import EMA, PRECISIONS, check_precision, config_from_args, config_parser, set_threads
from ..models.unet import count_parameters
from ..models.upsampler import UpsamplerConfig, UpsamplerNet, area_down

# What every shipped upsampler was trained with (the runs that varied them: results/history/EXPERIMENTS.md)
LAYOUT_DROP = 0.2  # share of examples with an all-UNKNOWN layout, so the network also upscales without one
BLUR_MAX = 0.8  # the degradation: Gaussian blur sigma up to this (pixels at the input size) ...
NOISE_MAX = 6.0  # ... and Gaussian noise std up to this (0-255)
NOISE_INPUT = True  # a noise plane at 2x and 4x (StyleGAN's noise inputs): fine texture drawn per seed
DISC_CHANNELS = 16  # the segmentation discriminator's width
DIFFAUG = True  # DiffAugment (colour, translation) on everything the discriminator sees
DISC_KIND = "segmentation"  # the kind written beside an export's discriminator; a run restores only this kind


@dataclass(frozen=True)
class UpsamplerTrainConfig:
    run: str = "runs/upsampler4x"
    data: str | None = None
    size: int = 256  # the output size the photos are prepared at
    patch: int = 128  # training crops (output side); inputs are patch / 4
    channels: int = 64
    blocks: int = 8
    fine_blocks: int = 2  # residual blocks at 2x, identity at the start (init_weights)
    batch_size: int = 16
    lr: float = 5e-5
    lr_d: float = 2e-4
    adv_from: int = 0  # L1 only before this step
    adv_weight: float = 0.15
    fm_weight: float = 2.0
    # the pixel losses: L1 to the real crop at full resolution, and L1 between the two at half resolution (2x2
    # means): weight on the latter instead of the former leaves the finest octave to the adversarial terms
    l1_weight: float = 0.1
    lowpass_weight: float = 1.0
    ema_decay: float = 0.9995
    init_from: str | None = None  # an upsampler folder to start from when the run has no state (same width)
    precision: str = "fp32"  # "bf16": autocast forward passes
    seed: int = 0
    steps: int = 4250
    minutes: float | None = None
    save_every: int = 100
    snapshot_every: int = 250
    threads: int | None = None


def degrade(photo_small: np.ndarray, rng: np.random.Generator, blur_max: float = BLUR_MAX,
            noise_max: float = NOISE_MAX) -> np.ndarray:
    """What the base model's 64-px images do that a clean downsampled photo does not: a little softness,
    grain and colour error. ``(h, w, 3)`` uint8 -> same."""
    x = photo_small.astype(np.float32)
    sigma = rng.uniform(0.0, blur_max)
    if sigma > 0.2:
        x = cv2.GaussianBlur(x, (0, 0), sigma)
    x = x * rng.uniform(0.92, 1.08, size=3) + rng.uniform(-8, 8, size=3)  # per-channel gain and offset
    x = x + rng.normal(0.0, rng.uniform(0.0, noise_max), size=x.shape)
    return np.clip(np.round(x), 0, 255).astype(np.uint8)


def make_patch_batch(pairs, step: int, cfg: UpsamplerTrainConfig, masker):
    """-> (inputs (B, 3, p/4, p/4), targets (B, 3, p, p)) in [-1, 1], layouts (B, p, p) long, the crops' full label
    maps (B, p, p) long. Pure in (seed, step)."""
    from ..data.sets import photo_to_tensor

    unknown = pairs.classset.unknown_id
    xs, ys, lays, fulls = [], [], [], []
    for j in range(cfg.batch_size):
        rng = np.random.default_rng([cfg.seed, step, j])
        photo, label = pairs.augmented(int(rng.integers(len(pairs))), rng)
        y0, x0 = rng.integers(0, pairs.size - cfg.patch + 1, size=2)
        photo = photo[y0:y0 + cfg.patch, x0:x0 + cfg.patch]
        label = label[y0:y0 + cfg.patch, x0:x0 + cfg.patch]
        small = cv2.resize(photo, (cfg.patch // 4, cfg.patch // 4), interpolation=cv2.INTER_AREA)
        xs.append(degrade(small, rng))
        ys.append(photo)
        fulls.append(label)
        lays.append(np.full_like(label, unknown) if rng.random() < LAYOUT_DROP else masker(label, unknown, rng))
    ids = lambda a: torch.from_numpy(np.stack(a)).long()  # noqa: E731
    return photo_to_tensor(np.stack(xs)), photo_to_tensor(np.stack(ys)), ids(lays), ids(fulls)


class SegmentationAdversary:
    """OASIS's discriminator on the image alone: each real pixel is to be labelled with its class (the crop's
    full label map), each generated one "fake"; the generator is rewarded where its pixels read as their true
    class. Feature matching over the decoder's activations."""

    def __init__(self, classset, channels: int = DISC_CHANNELS, diffaug: bool = DIFFAUG):
        self.k = classset.num_classes  # real classes 0..K-1; K is "fake"
        self.disc = SegmentationDiscriminator(self.k, channels)
        self.diffaug = diffaug

    def _aug(self, images, full, gen_seed):
        full = unlabelled_to_ignore(full, self.k)
        if not self.diffaug:
            return images, full
        return diff_augment(images, full, torch.Generator().manual_seed(gen_seed))

    def d_loss(self, real, fake, full, seed):
        x, lab = self._aug(real, full, seed)
        loss_real = balanced_ce(self.disc(x), lab)
        x, lab = self._aug(fake, full, seed + 1)
        fake_target = torch.where(lab == IGNORE, lab, torch.full_like(lab, self.k))
        return loss_real + F.cross_entropy(self.disc(x).float(), fake_target, ignore_index=IGNORE)

    def g_loss(self, real, fake, full, seed):
        x, lab = self._aug(fake, full, seed)
        f_fake = self.disc.features(x)
        with torch.no_grad():
            f_real = self.disc.features(self._aug(real, full, seed)[0])
        return balanced_ce(f_fake[-1], lab), feature_matching([f_real], [f_fake])


def init_weights(net: UpsamplerNet, folder: str, classset) -> dict:
    """Start ``net`` from a trained upsampler of the same width and depth. A noise input the old network lacked
    gets zero weights and fine blocks it lacked keep their identity start, so the new network starts out computing
    exactly what the old one did. Returns what the old folder's record says of its training (the new run's record
    keeps it as ``started_from``)."""
    from ..models.checkpoint import load_model_dir

    old_cfg, weights = load_model_dir(folder)
    if old_cfg.get("kind") != UPSAMPLER_KIND:
        raise ValueError(f"--init-from {folder}: not a sparsesis upsampler")
    old = UpsamplerConfig(**old_cfg["model"])
    if old.label_channels != classset.num_channels:
        raise ValueError(f"--init-from {folder}: trained for {old.label_channels - 1} classes, the data has "
                         f"{classset.num_classes}")
    if (old.channels, old.blocks) != (net.cfg.channels, net.cfg.blocks):
        raise ValueError(f"--init-from {folder}: {old.channels} channels x {old.blocks} blocks, the run is "
                         f"{net.cfg.channels} x {net.cfg.blocks}: pass --channels and --blocks to match")
    if old.level_input:
        raise ValueError(f"--init-from {folder}: it has a degradation-level input, and the trainer makes networks "
                         "without one (git history holds the trainer that made them)")
    # the noise plane comes last in each of these convolutions' inputs
    for key in ("mix1.0.weight", "mix2.0.weight"):
        w = weights[key]  # (out, in, 3, 3)
        missing = net.state_dict()[key].shape[1] - w.shape[1]
        if missing < 0:
            raise ValueError(f"--init-from {folder}: it has a noise input, the network has none")
        weights[key] = torch.cat([w, w.new_zeros(w.shape[0], missing, *w.shape[2:])], 1)
    if old.fine_blocks > net.cfg.fine_blocks:
        raise ValueError(f"--init-from {folder}: it has {old.fine_blocks} fine blocks, pass --fine-blocks "
                         f"{old.fine_blocks} or more")
    own = net.state_dict()
    weights.update({k: v for k, v in own.items() if k.startswith("fine.") and k not in weights})
    net.load_state_dict(weights)
    old_record = old_cfg.get("record", {})
    return {"folder": str(folder), **{k: old_record[k] for k in ("step", "images_seen", "train_seconds")
                                      if k in old_record}}


def restore_discriminator(disc: nn.Module, folder: str | Path) -> str:
    """Load the discriminator exported beside an upsampler folder into ``disc`` when it is a segmentation
    discriminator (``DISC_KIND``) of the same shape: -> "restored", or "fresh" (none there, another kind or shape)."""
    from ..models.checkpoint import load_discriminator as load_exported

    exported = load_exported(folder)
    if exported is None or exported[1].get("disc") != DISC_KIND:
        return "fresh"
    weights, own = exported[0], disc.state_dict()
    if set(weights) != set(own) or any(weights[k].shape != own[k].shape for k in own):
        return "fresh"
    disc.load_state_dict(weights)
    return "restored"


class UpsamplerTask:
    """The upsampler as a task of the one adversarial loop (``sparsesis.training.adversarial``): L1 (and low-pass L1) to the
    real crop, and from ``adv_from`` on the adversary's loss with feature matching; the EMA generator is what is
    exported."""

    def __init__(self, cfg: UpsamplerTrainConfig, pairs, net: UpsamplerNet, adversary: SegmentationAdversary):
        self.cfg, self.pairs, self.adversary = cfg, pairs, adversary
        self.generator, self.discriminator = net, adversary.disc
        self.ema_avg = EMA(net, cfg.ema_decay)
        self.batch_size = cfg.batch_size
        mask_cfg = MaskConfig()
        self.masker = lambda labels, unknown, rng: class_wise_random(labels, unknown, rng, mask_cfg)  # noqa: E731

    def state_modules(self) -> dict:
        return {"net": self.generator, "ema": self.ema_avg.model, "disc": self.discriminator}

    def batch(self, step: int) -> dict:
        x, y, lay_ids, full = make_patch_batch(self.pairs, step, self.cfg, self.masker)
        seed = (self.cfg.seed * 1_000_003 + step) * 4
        noise = (torch.randn(y.shape[0], 1, *y.shape[-2:], generator=torch.Generator().manual_seed(seed))
                 if self.generator.cfg.noise_input else None)
        return {"x": x, "y": y, "lay": one_hot(lay_ids, self.pairs.classset.num_channels), "full": full,
                "noise": noise, "seed": seed}

    def generate(self, b: dict) -> torch.Tensor:
        return self.generator(b["x"], b["lay"], noise=b["noise"]).float()

    def d_loss(self, b: dict, fake: torch.Tensor, step: int):
        if step < self.cfg.adv_from:
            return None, {}
        d_loss = self.adversary.d_loss(b["y"], fake, b["full"], b["seed"])
        return d_loss, {"d": d_loss.item()}

    def g_loss(self, b: dict, fake: torch.Tensor, step: int):
        cfg, y = self.cfg, b["y"]
        l1 = (fake - y).abs().mean()
        loss, logs = cfg.l1_weight * l1, {}
        if cfg.lowpass_weight:
            lowpass = (F.avg_pool2d(fake, 2) - F.avg_pool2d(y, 2)).abs().mean()
            loss = loss + cfg.lowpass_weight * lowpass
            logs["lowpass"] = lowpass.item()
        if step >= cfg.adv_from:
            adv, fm = self.adversary.g_loss(y, fake, b["full"], b["seed"] + 2)
            loss = loss + cfg.adv_weight * adv + cfg.fm_weight * fm
            logs.update(adv=adv.item(), fm=fm.item())
        logs["l1"] = l1.item()
        # how far the output's 4x area-downsample is from the (degraded) input: it should add detail only
        logs["consistency"] = (area_down(fake.detach()) - b["x"]).abs().mean().item()
        return loss, logs

    def after_step(self, step: int) -> None:
        self.ema_avg.update(self.generator, step)

    def export(self, folder: Path, record: dict, snapshot: bool = False) -> None:
        ema = self.ema_avg.model
        save_model_dir(folder, ema.state_dict(), upsampler_config(ema, self.pairs.classset, record, self.cfg))
        if not snapshot:  # beside the export, the discriminator (fp16): a run started from it goes on against it
            save_discriminator(folder, self.discriminator, disc=DISC_KIND)


def check_config(cfg: UpsamplerTrainConfig) -> None:
    """Refuse settings that do not go together, before any work."""
    check_precision(cfg.precision)
    if cfg.patch % 16 or cfg.patch > cfg.size:  # the segmentation discriminator halves its input four times
        raise ValueError(f"patch must be a multiple of 16 and at most size ({cfg.size}), got {cfg.patch}")


def train_upsampler(cfg: UpsamplerTrainConfig, progress: bool = True) -> dict:
    check_config(cfg)
    set_threads(cfg.threads)
    run = Path(cfg.run)
    pairs = load_split("train", cfg.size, cfg.data, progress=progress)
    classset = pairs.classset
    torch.manual_seed(cfg.seed)
    net = UpsamplerNet(UpsamplerConfig(classset.num_channels, cfg.channels, cfg.blocks, noise_input=NOISE_INPUT,
                                       fine_blocks=cfg.fine_blocks))
    fresh = not (run / STATE_FILE).is_file()
    started_from = init_weights(net, cfg.init_from, classset) if cfg.init_from and fresh else None
    task = UpsamplerTask(cfg, pairs, net, SegmentationAdversary(classset))
    record = {"parameters": count_parameters(net)}
    if started_from is not None:  # this run's counts start at 0; the start's own training is kept beside them
        started_from["discriminator"] = restore_discriminator(task.discriminator, cfg.init_from)
        record["started_from"] = started_from
    schedule = AdversarialSchedule(steps=cfg.steps, lr_g=cfg.lr, lr_d=cfg.lr_d, betas=(0.5, 0.999),
                                   save_every=cfg.save_every, snapshot_every=cfg.snapshot_every,
                                   precision=cfg.precision, minutes=cfg.minutes)
    return train_adversarial(task, schedule, run, record, progress, "train upsampler")


def main(argv=None) -> None:
    from ..data.sets import DataError

    p = config_parser(UpsamplerTrainConfig, "python -m sparsesis.training.train_upsampler", __doc__, names={"run": "--run-dir"},
                      choices={"precision": list(PRECISIONS)})
    cfg = config_from_args(UpsamplerTrainConfig, p.parse_args(argv))
    try:
        print(json.dumps(train_upsampler(cfg), indent=2))
    except (DataError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
