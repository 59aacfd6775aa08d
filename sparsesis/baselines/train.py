"""One training loop for every GAN baseline; methods plug in through ``METHODS``.

    python -m sparsesis.baselines.train --method spade --run-dir runs/spade64 --minutes 60

Same data, same class-wise masks and the same per-step batch function as the diffusion model, so the
budgets (images seen, CPU-hours) are comparable. Resumable like ``sparsesis.train``; ``<run>/export`` holds
the generator as a model folder (kind ``sparsesis-gan``) and, beside it, the discriminator
(``discriminator.safetensors``, fp16): what a run needs to go on where its run folder is gone.

    python -m sparsesis.baselines.train --method oasis --run-dir runs/oasis64 --init-from checkpoints/oasis64

starts a run without state from such a folder: the generator, the discriminator where the folder has one (a
fresh one otherwise), the step and the record; the optimizers start afresh, and ``record["restarts"]`` says so.
"""
from __future__ import annotations

import json
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..batches import classwise_masker, make_batch
from ..checkpoint import STATE_FILE, save_discriminator, save_model_dir
from ..classes import one_hot
from ..data import load_split
from ..masking import MaskConfig
from ..schema import gan_config
from ..training import (PRECISIONS, TrainingLoop, config_from_args, config_parser, count_images, load_state,
                        mixed_precision, save_state, set_threads)
from ..unet import count_parameters
from .models import METHODS, build_method, load_generator  # noqa: F401  (load_generator: re-exported for callers)


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
    steps: int = 1_000_000
    minutes: float | None = None
    save_every: int = 200
    snapshot_every: int = 1000  # steps between generator snapshots in <run>/snapshots (1000 x 16 = 16,000 images)
    threads: int | None = None
    precision: str = "fp32"  # "bf16": autocast forward passes (pays only where the CPU computes bf16 natively)
    init_from: str | None = None  # an exported GAN folder to go on from when the run has no state



def init_from_folder(method, folder: str | Path, cfg: GanTrainConfig) -> tuple[int, dict]:
    """Load an exported GAN folder into ``method`` (generator; discriminator where the folder has one) ->
    (step, record), the record noting the restart."""
    from ..checkpoint import CheckpointError, load_discriminator, load_model_dir

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

def train_gan(cfg: GanTrainConfig, progress: bool = True) -> dict:
    autocast = mixed_precision(cfg.precision)  # an unknown precision fails here, before any work
    set_threads(cfg.threads)
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    pairs = load_split("train", cfg.image_size, cfg.data, progress=progress)
    classset = pairs.classset
    torch.manual_seed(cfg.seed)
    method = build_method(cfg.method, classset, cfg.image_size)
    opt_g = torch.optim.Adam(method.generator.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(method.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    modules, optimizers = {"gen": method.generator, "disc": method.discriminator}, {"opt_g": opt_g, "opt_d": opt_d}
    step, record = 0, {"images_seen": 0, "train_seconds": 0.0, "device": "cpu",
                       "parameters_g": count_parameters(method.generator),
                       "parameters_d": count_parameters(method.discriminator)}
    if (run / STATE_FILE).is_file():
        meta = load_state(run / STATE_FILE, modules, optimizers)
        step, record = int(meta["step"]), json.loads(meta["record"])
    elif cfg.init_from:
        step, record = init_from_folder(method, cfg.init_from, cfg)
    loop = TrainingLoop(cfg.steps, step, f"train {cfg.method}", cfg.minutes, progress)

    def save():
        save_state(run / STATE_FILE, modules, optimizers, step=str(loop.step), record=record)
        export = save_model_dir(run / "export", method.generator.state_dict(),
                                gan_config(method, classset, {**record, "step": loop.step, "train": _jsonable(cfg)}))
        save_discriminator(export, method.discriminator)

    masker = classwise_masker(cfg.mask)
    method.train()
    with loop:
        try:
            while loop.running():
                t0 = time.time()
                batch = make_batch(pairs, loop.step, cfg.seed, cfg.batch_size, masker)
                layout = one_hot(batch.layouts, classset.num_channels)
                g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + loop.step)
                with autocast:
                    d_loss, logs = method.d_loss(batch.photos, layout, g, batch.full_layouts)
                opt_d.zero_grad(set_to_none=True)
                d_loss.backward()
                opt_d.step()
                with autocast:
                    g_loss, logs_g = method.g_loss(batch.photos, layout, g, batch.full_layouts)
                opt_g.zero_grad(set_to_none=True)
                g_loss.backward()
                opt_g.step()
                count_images(record, cfg.precision, cfg.batch_size)
                record["train_seconds"] += time.time() - t0
                record["losses"] = {**logs, **logs_g}
                step = loop.advance(**{k: f"{v:.3f}" for k, v in record["losses"].items()})
                if step % cfg.save_every == 0:
                    save()
                if cfg.snapshot_every and step % cfg.snapshot_every == 0:  # for quality-versus-budget curves
                    save_model_dir(run / "snapshots" / f"images_{record['images_seen']:07d}", method.generator.state_dict(),
                                   gan_config(method, classset, {**record, "step": step, "train": _jsonable(cfg)}))
        finally:
            save()
    return {**record, "step": loop.step}


def _jsonable(cfg: GanTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def main(argv=None) -> None:
    from ..checkpoint import CheckpointError
    from ..data import DataError

    p = config_parser(GanTrainConfig, "python -m sparsesis.baselines.train", __doc__, names={"run": "--run-dir"},
                      choices={"method": sorted(METHODS), "precision": list(PRECISIONS)})
    cfg = config_from_args(GanTrainConfig, p.parse_args(argv))
    try:
        print(json.dumps(train_gan(cfg), indent=2))
    except (DataError, CheckpointError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
