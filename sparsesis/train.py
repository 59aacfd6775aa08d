"""Train the layout-conditioned diffusion model.

    python -m sparsesis.train --run-dir runs/ours64 --data $SPARSESIS_DATA --minutes 60
    torchrun --nproc_per_node 4 -m sparsesis.train --run-dir runs/ours256 --preset 256 --device cuda ...

Re-running the same command resumes from ``<run>/state.safetensors`` (written atomically every
``--save-every`` steps, on Ctrl-C and at the end). ``--init-from checkpoints/<name>`` starts from shipped
fp16 weights when the optimizer state is gone. ``<run>/export`` always holds the latest EMA weights as a
model folder that ``Synthesizer.from_pretrained`` loads; ``--snapshot-every N`` also keeps one every N steps in
``<run>/snapshots/images_<images seen>`` (milestones to choose from on training layouts, and earlier versions of
the model to guide it with: autoguidance).
"""
from __future__ import annotations

import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch

from . import distributed as D
from .batches import StepBatches, classwise_masker, make_batch
from .checkpoint import CONFIG_FILE, STATE_FILE, load_model_dir, save_json_atomic, save_model_dir
from .classes import ClassSet, one_hot
from .configs import PRESETS, preset
from .data import load_split, tensor_to_photo
from .diffusion import diffusion_loss
from .masking import MaskConfig
from .schema import DEFAULT_GUIDANCE, diffusion_config
from .training import (EMA, PRECISIONS, TrainingLoop, config_from_args, config_parser, count_images, load_state,
                       mixed_precision, save_state, set_threads)
from .unet import UNet, UNetConfig, count_parameters

@dataclass(frozen=True)
class TrainConfig:
    run: str = "runs/ours64"
    data: str | None = None
    preset: str = "64"
    image_size: int | None = None  # default: the preset's
    batch_size: int = 16  # global, split across processes
    lr: float = 2e-4
    warmup_steps: int = 200
    decay_from: int | None = None  # cosine-anneal the learning rate from this step ...
    decay_steps: int = 3000  # ... over this many steps ...
    lr_final: float = 1e-5  # ... down to this, then hold it
    weight_decay: float = 0.0
    grad_clip: float = 1.0
    ema_decay: float = 0.999
    layout_drop: float = 0.1  # classifier-free guidance training
    snr_gamma: float = 5.0
    snr_floor: float = 1.0
    mask: MaskConfig = field(default_factory=MaskConfig)
    masking: str = "classwise"  # classwise | shared | none (the ablation's variants)
    seed: int = 0
    steps: int = 1_000_000  # stop after this many steps ...
    minutes: float | None = None  # ... or after this much wall time in this invocation
    save_every: int = 200
    snapshot_every: int | None = None  # keep the EMA weights every this many steps in <run>/snapshots
    sample_every: int = 1000
    sample_steps: int = 25
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None
    init_from: str | None = None
    precision: str = "fp32"  # CPU autocast: fp32 | bf16 (CUDA always trains under bf16 autocast)

    def to_dict(self) -> dict:
        return asdict(self)


def make_masker(cfg: TrainConfig):
    from .masking import shared_random

    if cfg.masking == "classwise":
        return classwise_masker(cfg.mask)
    if cfg.masking == "shared":
        return lambda labels, unknown, rng: shared_random(labels, unknown, rng, cfg.mask)
    if cfg.masking == "none":
        return lambda labels, unknown, rng: labels.copy()
    raise ValueError(f"masking must be classwise, shared or none, got {cfg.masking!r}")


@torch.no_grad()
def sample_grid(ema_model: UNet, pairs, classset: ClassSet, device, steps: int, path: Path, n: int = 8) -> None:
    """Rows: sparse layout | sample | real photo, for ``n`` fixed held-out layouts and fixed noise."""
    import cv2

    from .diffusion import guided, sample_ddim
    from .masking import class_wise_random

    photos, layouts = [], []
    for i in range(min(n, len(pairs))):
        photo, full = pairs.centre(i)
        photos.append(photo)
        layouts.append(class_wise_random(full, classset.unknown_id, np.random.default_rng(i)))
    lay = torch.from_numpy(np.stack(layouts)).to(device)
    cond = one_hot(lay, classset.num_channels)
    uncond = one_hot(torch.full_like(lay, classset.unknown_id), classset.num_channels)
    noise = torch.randn(cond.shape[0], 3, *lay.shape[-2:], generator=torch.Generator().manual_seed(0)).to(device)
    x = sample_ddim(guided(ema_model, cond, uncond, DEFAULT_GUIDANCE), noise, steps)
    out = tensor_to_photo(x)
    rows = [np.concatenate([classset.ids_to_colors(l), o, p], axis=1) for l, o, p in zip(layouts, out, photos)]
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, (grid.shape[1] * 2, grid.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the record (step, images seen, wall time, last loss)."""
    set_threads(cfg.threads)
    device = D.pick_device(cfg.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = D.init(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    run = Path(cfg.run)
    pairs = load_split("train", cfg.image_size or preset(cfg.preset, 1).image_size, cfg.data, progress=dist.is_main)
    eval_pairs = load_split("eval", pairs.size, cfg.data, progress=dist.is_main) if dist.is_main else None
    classset = pairs.classset
    unet_cfg = preset(cfg.preset, classset.num_channels, pairs.size)

    torch.manual_seed(cfg.seed)
    model = UNet(unet_cfg).to(device).to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=cfg.weight_decay)
    step, record = 0, {"images_seen": 0, "train_seconds": 0.0, "device": str(device), "world": dist.world}

    state_modules, state_opts = {"model": model, "ema": ema.model}, {"opt": opt}
    if (run / STATE_FILE).is_file():
        meta = load_state(run / STATE_FILE, state_modules, state_opts)
        step, record = int(meta["step"]), json.loads(meta.get("record", "{}"))
        if dist.is_main:
            print(f"resumed {run} at step {step}", flush=True)
    elif cfg.init_from:
        init_cfg, weights = load_model_dir(cfg.init_from)
        try:  # compare as configs: a JSON file holds lists where the dataclass holds tuples
            same = UNetConfig.from_dict(init_cfg["unet"]) == unet_cfg
        except (KeyError, TypeError, ValueError):
            same = False
        if not same:
            raise ValueError(f"--init-from {cfg.init_from}: its architecture differs from preset {cfg.preset!r}")
        model.load_state_dict(weights)
        ema.model.load_state_dict(weights)
        record = dict(init_cfg.get("record", record))
        step = int(record.get("step", 0))
        record["warmup_from"] = step  # a fresh optimizer warms its learning rate up again from here
        if dist.is_main:
            print(f"initialised from {cfg.init_from} (step {step}); optimizer state starts afresh", flush=True)
    record = {**record, "world": dist.world, "device": str(device)}
    # histories of the loss weighting and the learning-rate schedule, so a run whose recipe changed says so
    record["loss_weighting"] = extend_history(
        record.get("loss_weighting", []), "weighting", f"x-weight clamp(snr, {cfg.snr_floor}, {cfg.snr_gamma})",
        step, legacy="x-weight min(snr, 5.0)")  # runs from before the history existed were trained with min-SNR-5
    schedule = (f"cosine {cfg.lr:g} -> {cfg.lr_final:g} from step {cfg.decay_from} over {cfg.decay_steps}"
                if cfg.decay_from is not None else f"constant {cfg.lr:g}")
    record["lr_schedule"] = extend_history(record.get("lr_schedule", []), "schedule", schedule, step,
                                           legacy=f"constant {cfg.lr:g} (assumed; not recorded then)")

    ddp_model = model
    if dist.world > 1:
        ddp_model = torch.nn.parallel.DistributedDataParallel(
            model, device_ids=[device.index] if device.type == "cuda" else None)

    def write_export(at_step: int, folder: Path | None = None):
        save_model_dir(folder or run / "export", ema.model.state_dict(),
                       diffusion_config(unet_cfg, classset, cfg, record={**record, "step": at_step}))

    if dist.is_main:
        run.mkdir(parents=True, exist_ok=True)
        save_json_atomic(run / CONFIG_FILE, diffusion_config(unet_cfg, classset, cfg))
        print(f"model: {count_parameters(model) / 1e6:.2f}M parameters, {len(pairs)} training pairs at "
              f"{pairs.size}px, device {device}, {dist.world} process(es)", flush=True)

    masker = make_masker(cfg)
    batches = None
    if cfg.num_workers > 0:  # prepare batches in worker processes (GPU runs); the stream is the same
        batches = iter(torch.utils.data.DataLoader(
            StepBatches(pairs, cfg.seed, cfg.batch_size, masker, cfg.layout_drop, dist.rank, dist.world, cfg.steps),
            sampler=range(step, cfg.steps), batch_size=None, num_workers=cfg.num_workers,
            pin_memory=device.type == "cuda"))
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else mixed_precision(cfg.precision)
    loop = TrainingLoop(cfg.steps, step, "train", cfg.minutes, progress=dist.is_main)

    def save():
        save_state(run / STATE_FILE, state_modules, state_opts, step=str(loop.step), record=record)
        write_export(loop.step)

    log = open(run / "log.jsonl", "a") if dist.is_main else None
    last_loss, t_window, n_window = float("nan"), time.time(), 0
    loss_avg = None
    loop.start()
    try:
        while loop.running():
            step = loop.step
            t0 = time.time()
            batch = next(batches) if batches is not None else make_batch(
                pairs, step, cfg.seed, cfg.batch_size, masker, cfg.layout_drop, dist.rank, dist.world)
            x = batch.photos.to(device).contiguous(memory_format=torch.channels_last)
            layout = one_hot(batch.layouts.to(device), classset.num_channels).contiguous(memory_format=torch.channels_last)
            gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + dist.rank)
            t = torch.rand(x.shape[0], generator=gen).to(device)
            noise = torch.randn(x.shape, generator=gen).to(device)
            for g in opt.param_groups:
                g["lr"] = learning_rate(step, cfg, int(record.get("warmup_from", 0)))
            with autocast:
                loss = diffusion_loss(lambda z, tt: ddp_model(z, tt, layout), x, t, noise, cfg.snr_gamma,
                                      cfg.snr_floor).mean()
            opt.zero_grad(set_to_none=True)
            loss.backward()
            if cfg.grad_clip:
                torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
            opt.step()
            ema.update(model, step)
            loss_val = float(D.all_mean(loss.detach(), dist))
            loss_avg = loss_val if loss_avg is None else 0.98 * loss_avg + 0.02 * loss_val
            count_images(record, cfg.precision if device.type == "cpu" else "bf16", cfg.batch_size)
            record["train_seconds"] = float(record.get("train_seconds", 0.0)) + (time.time() - t0)
            n_window += cfg.batch_size
            step = loop.step + 1
            if step % 10 == 0 and dist.is_main:
                ips = n_window / max(1e-9, time.time() - t_window)
                loop.advance(loss=f"{loss_avg:.4f}", img_s=f"{ips:.1f}")
                log.write(json.dumps({"step": step, "loss": loss_val, "loss_avg": loss_avg, "img_s": ips,
                                      "images_seen": record["images_seen"], "time": time.time()}) + "\n")
                log.flush()
                t_window, n_window = time.time(), 0
            else:
                loop.advance()
            last_loss = loss_avg
            if step % cfg.save_every == 0:
                record["loss"] = last_loss
                if dist.is_main:
                    save()
                D.barrier(dist)
            if cfg.snapshot_every and step % cfg.snapshot_every == 0 and dist.is_main:
                write_export(step, run / "snapshots" / f"images_{record['images_seen']:07d}")
            if step % cfg.sample_every == 0 and dist.is_main:
                sample_grid(ema.model, eval_pairs, classset, device, cfg.sample_steps, run / "samples" / f"step_{step:07d}.png")
    finally:
        step = loop.step
        record["loss"] = last_loss
        record["step"] = step
        if dist.world > 1:  # a cheap proof that DDP kept the replicas identical
            record["rank_checksums"] = D.weights_checksums(model, dist)
        if dist.is_main:
            save()
            log.close()
            print(f"saved {run} at step {step} (loss {last_loss:.4f}, {record['images_seen']} images seen, "
                  f"{record['train_seconds'] / 3600:.2f} h of training)", flush=True)
        loop.close()
        D.barrier(dist)
        # release DDP (its reducer holds the process group) before the group goes, or gloo may abort at exit
        ddp_model = batches = None  # noqa: F841
        import gc

        gc.collect()
        D.shutdown(dist)
    return {**record, "step": step}


def extend_history(history: list[dict], key: str, value: str, step: int, legacy: str) -> list[dict]:
    """A run's history of one setting: ``value`` is appended with the step it starts at when it differs from
    the last entry. A resumed run from before the history existed (``step > 0``, no entries) first gets
    ``legacy`` from step 0."""
    history = list(history)
    if not history and step > 0:
        history = [{"from_step": 0, key: legacy}]
    if not history or history[-1][key] != value:
        history.append({"from_step": step, key: value})
    return history


def learning_rate(step: int, cfg: TrainConfig, warmup_from: int = 0) -> float:
    """Linear warm-up over ``warmup_steps`` from step ``warmup_from`` (0, or where ``--init-from`` started a
    fresh optimizer), constant ``lr``, then (with ``decay_from``) a cosine anneal to ``lr_final`` over
    ``decay_steps``. ``decay_from`` is an absolute step, so a resumed run anneals a model that was trained at
    constant rate before (the usual last phase of diffusion training)."""
    rate = cfg.lr * min(1.0, (step - warmup_from + 1) / max(1, cfg.warmup_steps))
    if cfg.decay_from is None or step < cfg.decay_from:
        return rate
    done = min(1.0, (step - cfg.decay_from) / max(1, cfg.decay_steps))
    return cfg.lr_final + (rate - cfg.lr_final) * 0.5 * (1.0 + math.cos(math.pi * done))


def parse_args(argv=None) -> TrainConfig:
    p = config_parser(TrainConfig, "python -m sparsesis.train", __doc__, names={"run": "--run-dir"}, skip=("mask",),
                      choices={"masking": ["classwise", "shared", "none"], "device": ["auto", "cpu", "cuda"],
                               "preset": sorted(PRESETS), "precision": list(PRECISIONS)},
                      helps={"run": "run folder (state, samples, export); resumes if it holds a state",
                             "data": "data folder (default: $SPARSESIS_DATA)",
                             "steps": "stop at this total step", "minutes": "stop after this wall time (this invocation)",
                             "decay_from": "cosine-anneal the learning rate from this (absolute) step; default: constant",
                             "threads": "CPU threads for torch",
                             "snapshot_every": "also keep the EMA weights every this many steps in <run>/snapshots",
                             "init_from": "model folder to start from when the run has no state",
                             "precision": "CPU training precision (bf16 pays only where the CPU has native bf16)"})
    p.add_argument("--hide-range", type=float, nargs=2, default=MaskConfig().hide_range, metavar=("LO", "HI"),
                   help="share of each class's pixels the class-wise mask hides, drawn from this range")
    a = p.parse_args(argv)
    if a.decay_from is not None and (a.decay_from < 0 or a.decay_steps < 1 or not 0 <= a.lr_final <= a.lr):
        p.error("the anneal needs --decay-from >= 0, --decay-steps >= 1 and 0 <= --lr-final <= --lr")
    return config_from_args(TrainConfig, a, mask=replace(MaskConfig(), hide_range=tuple(a.hide_range)))


def main(argv=None) -> None:
    from .data import DataError

    try:
        train(parse_args(argv))
    except DataError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
