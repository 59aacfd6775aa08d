"""One training loop for every GAN baseline; methods plug in through ``METHODS``.

    python -m sparsesis.baselines.train --method spade --run-dir runs/spade64 --minutes 60

Same data, same class-wise masks and the same per-step batch function as the diffusion model, so the
budgets (images seen, CPU-hours) are comparable. Resumable like ``sparsesis.train``; ``<run>/export`` holds
the generator as a model folder (kind ``sparsesis-gan``).
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import torch

from ..batches import classwise_masker, make_batch
from ..checkpoint import (STATE_FILE, flatten_optimizer, load_model_dir, load_tensors, prefixed, read_metadata,
                          save_model_dir, save_tensors_atomic, unflatten_optimizer)
from ..classes import ClassSet, one_hot
from ..data import load_split
from ..masking import MaskConfig
from ..unet import count_parameters
from .oasis import OasisConfig, OasisMethod
from .sean import SeanConfig, SeanMethod
from .spade import SpadeConfig, SpadeMethod

GAN_KIND = "sparsesis-gan"
METHODS = {"spade": (SpadeConfig, SpadeMethod), "oasis": (OasisConfig, OasisMethod), "sean": (SeanConfig, SeanMethod)}


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
    threads: int | None = None


def build_method(name: str, classset: ClassSet, image_size: int, overrides: dict | None = None):
    if name not in METHODS:
        raise ValueError(f"unknown GAN method {name!r}; choose from {sorted(METHODS)}")
    cfg_cls, method_cls = METHODS[name]
    cfg = cfg_cls(**{"image_size": image_size, "label_channels": classset.num_channels, **(overrides or {})})
    return method_cls(cfg)


def gan_config(method, classset: ClassSet, record: dict) -> dict:
    return {"kind": GAN_KIND, "method": method.name, "model": method.cfg.to_dict(), "classes": classset.to_dict(),
            "record": record}


def load_generator(folder):
    """-> (method with generator weights, classset, config) from an exported GAN model folder."""
    config, weights = load_model_dir(folder)
    if config.get("kind") != GAN_KIND:
        raise ValueError(f"{folder} is not a GAN baseline checkpoint (kind {config.get('kind')!r})")
    classset = ClassSet.from_dict(config["classes"])
    model_cfg = config["model"]
    method = build_method(config["method"], classset, model_cfg["image_size"],
                          {k: v for k, v in model_cfg.items() if k not in ("image_size", "label_channels")})
    method.generator.load_state_dict(weights)
    return method.eval(), classset, config


def train_gan(cfg: GanTrainConfig, progress: bool = True) -> dict:
    from tqdm.auto import tqdm

    if cfg.threads:
        torch.set_num_threads(cfg.threads)
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    pairs = load_split("train", cfg.image_size, cfg.data, progress=progress)
    classset = pairs.classset
    torch.manual_seed(cfg.seed)
    method = build_method(cfg.method, classset, cfg.image_size)
    opt_g = torch.optim.Adam(method.generator.parameters(), lr=cfg.lr_g, betas=cfg.betas)
    opt_d = torch.optim.Adam(method.discriminator.parameters(), lr=cfg.lr_d, betas=cfg.betas)
    step, record = 0, {"images_seen": 0, "train_seconds": 0.0, "device": "cpu",
                       "parameters_g": count_parameters(method.generator),
                       "parameters_d": count_parameters(method.discriminator)}
    if (run / STATE_FILE).is_file():
        t = load_tensors(run / STATE_FILE)
        meta = read_metadata(run / STATE_FILE)
        method.generator.load_state_dict(prefixed(t, "gen"))
        method.discriminator.load_state_dict(prefixed(t, "disc"))
        opt_g.load_state_dict(unflatten_optimizer(t, meta["groups_g"], "opt_g"))
        opt_d.load_state_dict(unflatten_optimizer(t, meta["groups_d"], "opt_d"))
        step, record = int(meta["step"]), json.loads(meta["record"])

    def save():
        tensors = {f"gen.{k}": v for k, v in method.generator.state_dict().items()}
        tensors.update({f"disc.{k}": v for k, v in method.discriminator.state_dict().items()})
        tg, gg = flatten_optimizer(opt_g.state_dict(), "opt_g")
        td, gd = flatten_optimizer(opt_d.state_dict(), "opt_d")
        tensors.update(tg)
        tensors.update(td)
        save_tensors_atomic(run / STATE_FILE, tensors, {"step": str(step), "groups_g": gg, "groups_d": gd,
                                                         "record": json.dumps(record)})
        save_model_dir(run / "export", method.generator.state_dict(),
                       gan_config(method, classset, {**record, "step": step, "train": _jsonable(cfg)}))

    masker = classwise_masker(cfg.mask)
    stop = {"now": False}
    old = [signal.signal(s, lambda *_: stop.update(now=True)) for s in (signal.SIGINT, signal.SIGTERM)]
    deadline = time.time() + 60 * cfg.minutes if cfg.minutes else None
    bar = tqdm(total=cfg.steps, initial=step, desc=f"train {cfg.method}", disable=not progress, file=sys.stderr,
               mininterval=5.0)
    method.train()
    try:
        while step < cfg.steps and not stop["now"] and not (deadline and time.time() > deadline):
            t0 = time.time()
            batch = make_batch(pairs, step, cfg.seed, cfg.batch_size, masker)
            layout = one_hot(batch.layouts, classset.num_channels)
            g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step)
            d_loss, logs = method.d_loss(batch.photos, layout, g, batch.full_layouts)
            opt_d.zero_grad(set_to_none=True)
            d_loss.backward()
            opt_d.step()
            g_loss, logs_g = method.g_loss(batch.photos, layout, g, batch.full_layouts)
            opt_g.zero_grad(set_to_none=True)
            g_loss.backward()
            opt_g.step()
            step += 1
            record["images_seen"] += cfg.batch_size
            record["train_seconds"] += time.time() - t0
            record["losses"] = {**logs, **logs_g}
            bar.update(1)
            bar.set_postfix({k: f"{v:.3f}" for k, v in record["losses"].items()}, refresh=False)
            if step % cfg.save_every == 0:
                save()
    finally:
        save()
        bar.close()
        for s, h in zip((signal.SIGINT, signal.SIGTERM), old):
            signal.signal(s, h)
    return {**record, "step": step}


def _jsonable(cfg: GanTrainConfig) -> dict:
    return json.loads(json.dumps(asdict(cfg)))


def main(argv=None) -> None:
    from ..data import DataError

    p = argparse.ArgumentParser(prog="python -m sparsesis.baselines.train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    d = GanTrainConfig()
    p.add_argument("--method", default=d.method, choices=sorted(METHODS))
    p.add_argument("--run-dir", dest="run", default=d.run)
    p.add_argument("--data", default=None)
    p.add_argument("--image-size", type=int, default=d.image_size)
    p.add_argument("--batch-size", type=int, default=d.batch_size)
    p.add_argument("--steps", type=int, default=d.steps)
    p.add_argument("--minutes", type=float, default=None)
    p.add_argument("--save-every", type=int, default=d.save_every)
    p.add_argument("--seed", type=int, default=d.seed)
    p.add_argument("--threads", type=int, default=None)
    a = p.parse_args(argv)
    cfg = GanTrainConfig(method=a.method, run=a.run, data=a.data, image_size=a.image_size, batch_size=a.batch_size,
                         steps=a.steps, minutes=a.minutes, save_every=a.save_every, seed=a.seed, threads=a.threads)
    try:
        print(json.dumps(train_gan(cfg), indent=2))
    except DataError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
