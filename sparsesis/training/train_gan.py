"""One training loop for every GAN baseline; methods plug in through ``METHODS``.

    python -m sparsesis.training.train_gan --method spade --run-dir runs/spade64 --minutes 60

Same data, same class-wise masks and the same per-step batch function as the diffusion model, so the
budgets (images seen, CPU-hours) are comparable. Resumable like ``sparsesis.training.train``; ``<run>/export`` holds
the generator as a model folder (kind ``sparsesis-gan``) and, beside it, the discriminator
(``discriminator.safetensors``, fp16): what a run needs to go on where its run folder is gone.

    python -m sparsesis.training.train_gan --method oasis --run-dir runs/oasis64 --init-from checkpoints/oasis64

starts a run without state from such a folder: the generator, the discriminator where the folder has one (a
fresh one otherwise), the step and the record; the optimizers start afresh, and ``record["restarts"]`` says so.
"""
from __future__ import annotations

import json
import sys
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from .adversarial import AdversarialSchedule, train_adversarial
from ..data.batches import classwise_masker, make_batch
from ..models.checkpoint import STATE_FILE, save_discriminator, save_model_dir
from ..data.classes import one_hot
from ..data.sets import load_split
from ..data.masking import MaskConfig
from ..models.schema import gan_config
from .loop import PRECISIONS, check_precision, config_from_args, config_parser, set_threads
from ..models.unet import count_parameters
from ..baselines.models import METHODS, build_method


@dataclass(frozen=True)
class GanTrainConfig:
    method: str = "spade"
    run: str = "runs/spade64"
    data: str | None = None
    image_size: int = 64
    batch_size: int = 16
    lr_g: float = 1e-4
    lr_d: float = 4e-4  # two time-scale update rule, as SPADE
    betas: tuple[float, float] = (0.0, 0.999)
    mask: MaskConfig = field(default_factory=MaskConfig)
    seed: int = 0
    steps: int = 9375  # 150,000 images: the shipped baselines' budget
    minutes: float | None = None
    save_every: int = 200
    snapshot_every: int = 1000  # steps between generator snapshots in <run>/snapshots (1000 x 16 = 16,000 images)
    threads: int | None = None
    precision: str = "fp32"  # "bf16": autocast forward passes (pays only where the CPU computes bf16 natively)
    init_from: str | None = None  # an exported GAN folder to go on from when the run has no state



def init_from_folder(method, folder: str | Path, cfg: GanTrainConfig) -> tuple[int, dict]:
    """Load an exported GAN folder into ``method`` (generator; discriminator where the folder has one) ->
    (step, record), the record noting the restart."""
    from ..models.checkpoint import CheckpointError, load_discriminator, load_model_dir

    config, weights = load_model_dir(folder)
    if config.get("method") != cfg.method:
        raise CheckpointError(f"--init-from {folder}: a {config.get('method')!r} generator, the run trains "
                              f"{cfg.method!r}")
    method.generator.load_state_dict(weights)
    disc = load_discriminator(folder)
    if disc is not None:
        method.discriminator.load_state_dict(disc[0])
    record = {k: v for k, v in config.get("record", {}).items() if k != "train"}
    step = int(record.pop("step", 0))
    record.setdefault("restarts", []).append({
        "at_step": step, "from": str(folder), "discriminator": "restored" if disc is not None else "fresh",
        "optimizers": "fresh"})
    return step, record

class GanTask:
    """A GAN baseline as a task of the one adversarial loop (``sparsesis.training.adversarial``): the same data, class-wise
    masks and per-step batch function as the diffusion model."""

    def __init__(self, method, pairs, cfg: GanTrainConfig):
        self.method, self.pairs, self.cfg = method, pairs, cfg
        self.generator, self.discriminator = method.generator, method.discriminator
        self.batch_size = cfg.batch_size
        self.masker = classwise_masker(cfg.mask)

    def state_modules(self) -> dict:
        return {"gen": self.generator, "disc": self.discriminator}

    def batch(self, step: int) -> dict:
        b = make_batch(self.pairs, step, self.cfg.seed, self.cfg.batch_size, self.masker)
        return {"photos": b.photos, "layout": one_hot(b.layouts, self.pairs.classset.num_channels),
                "full": b.full_layouts, "noise": torch.Generator().manual_seed(self.cfg.seed * 1_000_003 + step)}

    def generate(self, batch: dict) -> torch.Tensor:
        return self.method.fake(batch["photos"], batch["layout"], batch["full"], batch["noise"])

    def d_loss(self, batch: dict, fake: torch.Tensor, step: int):
        return self.method.d_loss(batch["photos"], batch["layout"], fake, batch["full"], batch["noise"])

    def g_loss(self, batch: dict, fake: torch.Tensor, step: int):
        return self.method.g_loss(batch["photos"], batch["layout"], fake, batch["full"])

    def after_step(self, step: int) -> None:
        pass

    def export(self, folder: Path, record: dict, snapshot: bool = False) -> None:
        save_model_dir(folder, self.generator.state_dict(),
                       gan_config(self.method, self.pairs.classset, {**record, "train": _jsonable(self.cfg)}))
        if not snapshot:
            save_discriminator(folder, self.discriminator)

    def snapshot_name(self, record: dict) -> str:
        return f"images_{record['images_seen']:07d}"  # for quality-versus-budget curves


def train_gan(cfg: GanTrainConfig, progress: bool = True) -> dict:
    check_precision(cfg.precision)
    set_threads(cfg.threads)
    run = Path(cfg.run)
    pairs = load_split("train", cfg.image_size, cfg.data, progress=progress)
    torch.manual_seed(cfg.seed)
    method = build_method(cfg.method, pairs.classset, cfg.image_size)
    method.train()
    record = {"parameters_g": count_parameters(method.generator), "parameters_d": count_parameters(method.discriminator)}
    start = 0
    if cfg.init_from and not (run / STATE_FILE).is_file():
        start, record = init_from_folder(method, cfg.init_from, cfg)
    schedule = AdversarialSchedule(steps=cfg.steps, lr_g=cfg.lr_g, lr_d=cfg.lr_d, betas=cfg.betas,
                                   save_every=cfg.save_every, snapshot_every=cfg.snapshot_every,
                                   precision=cfg.precision, minutes=cfg.minutes)
    return train_adversarial(GanTask(method, pairs, cfg), schedule, run, record, progress, f"train {cfg.method}",
                             start_step=start)


def _jsonable(cfg: GanTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def main(argv=None) -> None:
    from ..models.checkpoint import CheckpointError
    from ..data.sets import DataError

    p = config_parser(GanTrainConfig, "python -m sparsesis.training.train_gan", __doc__, names={"run": "--run-dir"},
                      choices={"method": sorted(METHODS), "precision": list(PRECISIONS)})
    cfg = config_from_args(GanTrainConfig, p.parse_args(argv))
    try:
        print(json.dumps(train_gan(cfg), indent=2))
    except (DataError, CheckpointError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
