"""A one-step generator tuned adversarially from a distilled student (a task of ``sparsesis.training.adversarial``).

    python -m sparsesis.training.onestep --run-dir runs/onestep64 --threads 1

The generator is a student's UNet asked for x0 in one pass from pure noise (v at t = 1). Two terms train it:
- a regression to a few-step student's output from the *same* noise and layout (the last halving of
  progressive distillation, with the 4-step student as the target: the best sampler that is cheap enough
  to run at every step), which keeps it on the teacher's distribution;
- OASIS's per-pixel segmentation discriminator (Sushko et al. 2021), trained from scratch on the training
  photos behind DiffAugment: real pixels are to be labelled with their class (the photo's full label map,
  void pixels left out), generated ones "fake"; the generator is rewarded where its pixels read as the class
  the photo's map names there. This is what can take it past its target (DMD2, adversarial diffusion
  distillation): the regression alone averages, the discriminator sees real photos.

The target costs four network passes a batch, more than the rest of a step: the pairs (noise, layout,
target) of the first ``bank`` batches are computed once, kept in ``<run>/bank``, and later steps reuse them
in a shuffled order per epoch, while the discriminator's real photos stay fresh at every step. The
discriminator trains from the first step; the adversarial term joins the generator's loss at
``adv_from`` and rises over ``adv_ramp`` steps (a fresh discriminator pulled the generator off the
regression when it joined at once). No ImageNet network is used, the metric's least of all. Batches are a
pure function of (seed, step); ``<run>/export`` holds the EMA generator as a model folder that samples in
one step (``sampling.steps: 1``), with the discriminator beside it.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass
from pathlib import Path

import torch
import torch.nn.functional as F

from .adversarial import AdversarialSchedule, train_adversarial
from ..data.batches import classwise_masker, make_batch
from ..models.checkpoint import (CheckpointError, load_model_dir, load_tensors, save_discriminator, save_model_dir,
                         save_tensors_atomic)
from ..data.classes import one_hot
from ..data.sets import load_split
from ..models.diffusion import sample_ddim, x_eps_from_v
from ..models.gan import IGNORE, SegmentationDiscriminator, balanced_ce, diff_augment, unlabelled_to_ignore
from ..data.masking import MaskConfig
from .loop import EMA, PRECISIONS, config_from_args, config_parser, set_threads
from ..models.unet import UNet, UNetConfig, count_parameters


@dataclass(frozen=True)
class OneStepConfig:
    run: str = "runs/onestep64"
    data: str | None = None
    init: str = "checkpoints/ours64-student2"  # the generator starts from this student
    target: str = "checkpoints/ours64-student4"  # the regression target: this student's sampler, same noise
    batch_size: int = 8
    lr: float = 2e-5
    lr_d: float = 1e-4
    regression_weight: float = 1.0
    adv_weight: float = 0.05
    adv_from: int = 600  # the discriminator learns alone against the regressing generator before this step
    adv_ramp: int = 400
    bank: int = 400  # the regression pairs of this many batches are computed once, kept in <run>/bank, reused
    disc_channels: int = 32
    ema_decay: float = 0.999
    steps: int = 20_000
    seed: int = 0
    precision: str = "fp32"
    minutes: float | None = None
    threads: int | None = None


def load_unet(folder: str | Path) -> tuple[UNet, dict]:
    config, weights = load_model_dir(folder)
    if "unet" not in config:
        raise CheckpointError(f"{folder} is not a diffusion model folder (no 'unet' in its config)")
    net = UNet(UNetConfig.from_dict(config["unet"]))
    net.load_state_dict(weights)
    return net, config


def one_step(net: UNet, z: torch.Tensor, layout) -> torch.Tensor:
    """The generator: x0 predicted from pure noise ``z`` (B, 3, S, S) in one pass (v at t = 1)."""
    t = torch.ones(z.shape[0], device=z.device)
    return x_eps_from_v(z, net(z, t, layout).float(), t)[0]


class OneStepTask:
    """The one-step generator's adversarial task (see the module docstring)."""

    def __init__(self, cfg: OneStepConfig, pairs):
        self.cfg, self.pairs, self.classset = cfg, pairs, pairs.classset
        self.generator, self.init_config = load_unet(cfg.init)
        self.generator.to(memory_format=torch.channels_last)
        self.target, target_config = load_unet(cfg.target)
        self.target.eval().requires_grad_(False).to(memory_format=torch.channels_last)
        self.target_steps = int(target_config.get("sampling", {}).get("steps", 4))
        if self.init_config["classes"] != self.classset.to_dict():
            raise ValueError(f"{cfg.init} models {self.init_config['classes']['name']}, the data is "
                             f"{self.classset.name}")
        self.ema_avg = EMA(self.generator, cfg.ema_decay)
        self.discriminator = SegmentationDiscriminator(self.classset.num_classes, cfg.disc_channels)
        resumed = self.init_config.get("onestep")  # ``init`` is this trainer's own export: go on from it
        self.start_step, self.start_record = 0, {}
        self.start_total = self.init_config.get("distillation", {}).get("total", {"images": 0, "seconds": 0.0})
        if resumed is not None:
            self.start_step, self.start_record, self.start_total = self.resume_from(resumed)
        self.batch_size = cfg.batch_size
        self.masker = classwise_masker(MaskConfig())

    def resume_from(self, resumed: dict) -> tuple[int, dict, dict]:
        """Go on from an export of this trainer (a run folder lost with its machine): its EMA weights for both the
        generator and its average, its discriminator where it has one; -> (step, record, the budget before it)."""
        from ..models.checkpoint import load_discriminator

        disc = load_discriminator(self.cfg.init)
        if disc is not None:
            self.discriminator.load_state_dict(disc[0])
        record = {k: v for k, v in resumed["record"].items() if k != "step"}
        record.setdefault("restarts", []).append({
            "at_step": resumed["record"]["step"], "from": self.cfg.init,
            "discriminator": "restored" if disc is not None else "fresh", "optimizers": "fresh"})
        stage = self.init_config["distillation"]["stage"]
        total = self.init_config["distillation"]["total"]
        before = resumed.get("start_total") or {"images": total["images"] - stage["images"],
                                                  "seconds": round(total["seconds"] - stage["seconds"], 1)}
        return int(resumed["record"]["step"]), record, before

    def state_modules(self) -> dict:
        return {"gen": self.generator, "ema": self.ema_avg.model, "disc": self.discriminator}

    def regression_pair(self, index: int) -> dict[str, torch.Tensor]:
        """Batch ``index`` of the bank: noise, sparse and full layouts, and the target's output from that noise;
        computed once and kept under ``<run>/bank``."""
        path = Path(self.cfg.run) / "bank" / f"{index:05d}.safetensors"
        if path.is_file():
            return load_tensors(path)
        b = make_batch(self.pairs, index, self.cfg.seed, self.cfg.batch_size, self.masker)
        z = torch.randn(b.photos.shape, generator=torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + index))
        with torch.no_grad():
            cond = self.target.condition(one_hot(b.layouts, self.classset.num_channels))
            target = sample_ddim(lambda zz, t: self.target(zz.contiguous(memory_format=torch.channels_last), t, cond),
                                 z, self.target_steps)
        pair = {"z": z, "layouts": b.layouts, "full": b.full_layouts, "target": target.half()}
        save_tensors_atomic(path, pair)
        return pair

    def batch(self, step: int) -> dict:
        epoch, pos = divmod(step, self.cfg.bank)
        index = pos if epoch == 0 else int(torch.randperm(self.cfg.bank, generator=torch.Generator().manual_seed(
            self.cfg.seed * 7_919 + epoch))[pos])
        pair = self.regression_pair(index)
        real = make_batch(self.pairs, step, self.cfg.seed + 1, self.cfg.batch_size, self.masker)
        ignore = lambda ids: unlabelled_to_ignore(ids, self.classset.unknown_id)  # noqa: E731
        layout = one_hot(pair["layouts"], self.classset.num_channels).contiguous(memory_format=torch.channels_last)
        return {"z": pair["z"].contiguous(memory_format=torch.channels_last), "layout": layout,
                "target": pair["target"].float(), "labels": ignore(pair["full"]), "photos": real.photos,
                "real_labels": ignore(real.full_layouts), "seed": self.cfg.seed * 1_000_003 + step}

    def generate(self, batch: dict) -> torch.Tensor:
        return one_step(self.generator, batch["z"], batch["layout"])

    def _aug(self, images, labels, seed):
        return diff_augment(images, labels, torch.Generator().manual_seed(seed))

    def d_loss(self, batch: dict, fake: torch.Tensor, step: int):
        x, lab = self._aug(batch["photos"], batch["real_labels"], batch["seed"] * 4)
        real = balanced_ce(self.discriminator(x), lab)
        x, lab = self._aug(fake.clamp(-1, 1), batch["labels"], batch["seed"] * 4 + 1)
        fake_target = torch.where(lab == IGNORE, lab, torch.full_like(lab, self.classset.num_classes))
        fake_loss = F.cross_entropy(self.discriminator(x).float(), fake_target, ignore_index=IGNORE)
        return real + fake_loss, {"d_real": real.item(), "d_fake": fake_loss.item()}

    def adv_weight(self, step: int) -> float:
        if step < self.cfg.adv_from:
            return 0.0
        return self.cfg.adv_weight * min(1.0, (step - self.cfg.adv_from + 1) / max(1, self.cfg.adv_ramp))

    def g_loss(self, batch: dict, fake: torch.Tensor, step: int):
        mse = F.mse_loss(fake, batch["target"])
        loss, logs = self.cfg.regression_weight * mse, {"mse": mse.item()}
        w = self.adv_weight(step)
        if w > 0:
            x, lab = self._aug(fake.clamp(-1, 1), batch["labels"], batch["seed"] * 4 + 2)
            adv = balanced_ce(self.discriminator(x), lab)
            loss = loss + w * adv
            logs["adv"] = adv.item()
        return loss, logs

    def after_step(self, step: int) -> None:
        self.ema_avg.update(self.generator, step)

    def export(self, folder: Path, record: dict, snapshot: bool = False) -> None:
        base = self.init_config
        prior = self.start_total
        started = base["distillation"]["init"] if "onestep" in base else self.cfg.init
        distillation = {**base.get("distillation", {}), "steps": 1, "method": "one-step adversarial tuning",
                        "init": started, "target": self.cfg.target, "target_steps": self.target_steps,
                        "iterations": record["step"], "batch_size": self.cfg.batch_size,
                        "precision": self.cfg.precision,
                        "stage": {"images": record["images_seen"], "seconds": round(record["train_seconds"], 1)},
                        "total": {"images": prior["images"] + record["images_seen"],
                                  "seconds": round(prior["seconds"] + record["train_seconds"], 1)}}
        config = {**base, "sampling": {**base.get("sampling", {}), "steps": 1}, "distillation": distillation,
                  "onestep": {"train": json.loads(json.dumps(asdict(self.cfg))), "record": record,
                              "start_total": prior}}
        save_model_dir(folder, self.ema_avg.model.state_dict(), config)
        if not snapshot:
            save_discriminator(folder, self.discriminator, disc="segmentation")


def train_onestep(cfg: OneStepConfig, progress: bool = True) -> dict:
    set_threads(cfg.threads)
    torch.manual_seed(cfg.seed)
    net, _ = load_unet(cfg.init)  # fails before the data is read when the folder is not a model
    pairs = load_split("train", net.cfg.image_size, cfg.data, progress=progress)
    task = OneStepTask(cfg, pairs)
    schedule = AdversarialSchedule(steps=cfg.steps, lr_g=cfg.lr, lr_d=cfg.lr_d, betas=(0.0, 0.99),
                                   precision=cfg.precision, minutes=cfg.minutes, save_every=50, snapshot_every=250)
    record = {"parameters_g": count_parameters(task.generator), "parameters_d": count_parameters(task.discriminator),
              **task.start_record}
    return train_adversarial(task, schedule, cfg.run, record, progress, desc="one-step", start_step=task.start_step)


def main(argv=None) -> None:
    from ..data.sets import DataError

    p = config_parser(OneStepConfig, "python -m sparsesis.training.onestep", __doc__, names={"run": "--run-dir"},
                      choices={"precision": list(PRECISIONS)})
    cfg = config_from_args(OneStepConfig, p.parse_args(argv))
    try:
        print(json.dumps(train_onestep(cfg), indent=2))
    except (DataError, CheckpointError, ValueError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
