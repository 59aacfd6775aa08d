"""Train the layout-conditioned diffusion model.

    python -m sparsesis.training.train --run-dir runs/ours64 --data $SPARSESIS_DATA --minutes 60
    torchrun --nproc_per_node 4 -m sparsesis.training.train --run-dir runs/ours256 --preset 256 --device cuda ...

Re-running the same command resumes from ``<run>/state.safetensors`` (written atomically every
``--save-every`` steps, on Ctrl-C and at the end). ``--init-from checkpoints/<name>`` starts from shipped
fp16 weights when the optimizer state is gone. ``<run>/export`` always holds the latest EMA weights as a
model folder that ``Synthesizer.from_pretrained`` loads; ``--snapshot-every N`` also keeps one every N steps in
``<run>/snapshots/images_<images seen>`` (milestones to choose from on training layouts, and earlier versions of
the model to guide it with: autoguidance).
"""
from __future__ import annotations

import gc
import json
import math
import os
import sys
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

import numpy as np
import torch

from .. import distributed as D
from ..data.batches import StepBatches, classwise_masker, make_batch
from ..models.checkpoint import CONFIG_FILE, STATE_FILE, load_model_dir, save_json_atomic, save_model_dir
from ..data.classes import ClassSet, one_hot
from ..models.configs import PRESETS, preset
from ..data.sets import load_split, tensor_to_photo
from ..models.diffusion import cond_uncond, diffusion_loss, guided, guided_model, sample_ddim
from ..data.masking import MaskConfig
from ..models.schema import DEFAULT_GUIDANCE, diffusion_config
from .loop import (EMA, PRECISIONS, TrainingLoop, config_from_args, config_parser, count_images, load_state,
                       mixed_precision, save_state, set_threads)
from ..models.unet import UNet, UNetConfig, count_parameters

GRAD_CLIP = 1.0  # the gradient norm every step is clipped to
PREVIEW_STEPS = 25  # DDIM steps of the preview grids


@dataclass(frozen=True)
class TrainConfig:
    run: str = "runs/ours64"
    data: str | None = None
    preset: str = "64"
    image_size: int | None = None  # default: the preset's
    batch_size: int = 16  # global, split across processes
    lr: float = 2e-4
    warmup_steps: int = 200
    decay_from: int | None = 21_000  # cosine-anneal the learning rate from this step ...
    decay_steps: int = 4000  # ... over this many steps ...
    lr_final: float = 1e-5  # ... down to this, then hold it
    ema_decay: float = 0.999
    layout_drop: float = 0.1  # classifier-free guidance training
    snr_gamma: float = 5.0
    snr_floor: float = 1.0
    mask: MaskConfig = field(default_factory=MaskConfig)
    masking: str = "classwise"  # classwise | shared | none (the ablation's variants)
    seed: int = 0
    steps: int = 25_000  # stop after this many steps (400,000 images: the shipped teacher) ...
    minutes: float | None = None  # ... or after this much wall time in this invocation
    save_every: int = 200
    snapshot_every: int | None = None  # keep the EMA weights every this many steps in <run>/snapshots
    sample_every: int = 1000  # a preview grid (DDIM, PREVIEW_STEPS steps) every this many steps
    device: str = "auto"
    num_workers: int = 0
    threads: int | None = None
    init_from: str | None = None
    precision: str = "fp32"  # CPU autocast: fp32 | bf16 (CUDA always trains under bf16 autocast)

    def to_dict(self) -> dict:
        return asdict(self)


def make_masker(cfg: TrainConfig):
    from ..data.masking import shared_random

    if cfg.masking == "classwise":
        return classwise_masker(cfg.mask)
    if cfg.masking == "shared":
        return lambda labels, unknown, rng: shared_random(labels, unknown, rng, cfg.mask)
    if cfg.masking == "none":
        return lambda labels, unknown, rng: labels.copy()
    raise ValueError(f"masking must be classwise, shared or none, got {cfg.masking!r}")


def grid_model_fn(model: UNet, lay: torch.Tensor, classset: ClassSet, scale: float = DEFAULT_GUIDANCE):
    """The model function the sample grids draw with, for class ids ``lay`` (B, H, W): classifier-free guidance at
    the default scale (``guided_model``), as the export samples without a guide."""
    cond = one_hot(lay, classset.num_channels)
    uncond = one_hot(torch.full_like(lay, classset.unknown_id), classset.num_channels)
    return guided_model(guided(model, cond, None, 1.0), cond_uncond(model, cond, uncond), scale)


@torch.no_grad()
def sample_grid(ema_model: UNet, pairs, classset: ClassSet, device, steps: int, path: Path, n: int = 8) -> None:
    """Rows: sparse layout | sample | real photo, for ``n`` fixed held-out layouts and fixed noise."""
    import cv2

    from ..data.masking import class_wise_random

    photos, layouts = [], []
    for i in range(min(n, len(pairs))):
        photo, full = pairs.centre(i)
        photos.append(photo)
        layouts.append(class_wise_random(full, classset.unknown_id, np.random.default_rng(i)))
    lay = torch.from_numpy(np.stack(layouts)).to(device)
    noise = torch.randn(lay.shape[0], 3, *lay.shape[-2:], generator=torch.Generator().manual_seed(0)).to(device)
    x = sample_ddim(grid_model_fn(ema_model, lay, classset), noise, steps)
    out = tensor_to_photo(x)
    rows = [np.concatenate([classset.ids_to_colors(l), o, p], axis=1) for l, o, p in zip(layouts, out, photos)]
    grid = np.concatenate(rows, axis=0)
    grid = cv2.resize(grid, (grid.shape[1] * 2, grid.shape[0] * 2), interpolation=cv2.INTER_NEAREST)
    path.parent.mkdir(parents=True, exist_ok=True)
    cv2.imwrite(str(path), cv2.cvtColor(grid, cv2.COLOR_RGB2BGR))


@dataclass
class Run:
    """What ``train`` builds once and its steps share: the config and folder, this process's device and process
    group, the network with its EMA copy and optimizer, and the record (images seen, training seconds, the recipe's
    history) that travels with the weights."""

    cfg: TrainConfig
    folder: Path
    device: torch.device
    dist: D.Dist
    unet_cfg: UNetConfig
    classset: ClassSet
    model: UNet
    ema: EMA
    opt: torch.optim.Optimizer
    record: dict

    @property
    def modules(self) -> dict:
        return {"model": self.model, "ema": self.ema.model}

    def export(self, step: int, folder: Path | None = None) -> None:
        """The EMA weights as a model folder (``<run>/export`` unless ``folder``) whose record says ``step``."""
        save_model_dir(folder or self.folder / "export", self.ema.model.state_dict(),
                       diffusion_config(self.unet_cfg, self.classset, self.cfg, record={**self.record, "step": step}))

    def save(self, step: int) -> None:
        """The state a re-run resumes from (network, EMA, optimizer, record), and the export."""
        save_state(self.folder / STATE_FILE, self.modules, {"opt": self.opt}, step=str(step), record=self.record)
        self.export(step)


def start_processes(device_name: str) -> tuple[torch.device, D.Dist]:
    """This process's device and, when torchrun launched several, the process group (one device each)."""
    device = D.pick_device(device_name, int(os.environ.get("LOCAL_RANK", "0")))
    dist = D.init(device)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    return device, dist


def new_run(cfg: TrainConfig, device: torch.device, dist: D.Dist, classset: ClassSet, unet_cfg: UNetConfig) -> Run:
    """A freshly initialised network (seeded), its EMA copy, AdamW and an empty record."""
    torch.manual_seed(cfg.seed)
    model = UNet(unet_cfg).to(device).to(memory_format=torch.channels_last)
    ema = EMA(model, cfg.ema_decay)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, weight_decay=0.0)
    record = {"images_seen": 0, "train_seconds": 0.0, "device": str(device), "world": dist.world}
    return Run(cfg, Path(cfg.run), device, dist, unet_cfg, classset, model, ema, opt, record)


def restore(run: Run) -> int:
    """Resume from ``<run>/state.safetensors``, or start from ``--init-from``'s weights, or from scratch; the record
    then says this invocation's processes and extends the recipe's history. Returns the step to continue from."""
    step = 0
    if (run.folder / STATE_FILE).is_file():
        meta = load_state(run.folder / STATE_FILE, run.modules, {"opt": run.opt})
        step, run.record = int(meta["step"]), json.loads(meta.get("record", "{}"))
        if run.dist.is_main:
            print(f"resumed {run.folder} at step {step}", flush=True)
    elif run.cfg.init_from:
        step, run.record = start_from_model(run)
    record = {**run.record, "world": run.dist.world, "device": str(run.device)}
    run.record = {**record, **recipe_history(record, run.cfg, step)}
    return step


def start_from_model(run: Run) -> tuple[int, dict]:
    """``--init-from``: the network and its EMA start from a model folder's weights (the preset's architecture), whose
    record and step carry on; the optimizer starts afresh. -> (step, record)."""
    cfg = run.cfg
    init_cfg, weights = load_model_dir(cfg.init_from)
    try:  # compare as configs: a JSON file holds lists where the dataclass holds tuples
        same = UNetConfig.from_dict(init_cfg["unet"]) == run.unet_cfg
    except (KeyError, TypeError, ValueError):
        same = False
    if not same:
        raise ValueError(f"--init-from {cfg.init_from}: its architecture differs from preset {cfg.preset!r}")
    run.model.load_state_dict(weights)
    run.ema.model.load_state_dict(weights)
    record = dict(init_cfg.get("record", run.record))
    step = int(record.get("step", 0))
    record["warmup_from"] = step  # a fresh optimizer warms its learning rate up again from here
    if run.dist.is_main:
        print(f"initialised from {cfg.init_from} (step {step}); optimizer state starts afresh", flush=True)
    return step, record


def recipe_history(record: dict, cfg: TrainConfig, step: int) -> dict:
    """The record's histories of the loss weighting and the learning-rate schedule, this invocation's from ``step``
    on, so a run whose recipe changed says so."""
    weighting = f"x-weight clamp(snr, {cfg.snr_floor}, {cfg.snr_gamma})"
    schedule = (f"cosine {cfg.lr:g} -> {cfg.lr_final:g} from step {cfg.decay_from} over {cfg.decay_steps}"
                if cfg.decay_from is not None else f"constant {cfg.lr:g}")
    return {"loss_weighting": extend_history(record.get("loss_weighting", []), "weighting", weighting, step,
                                             legacy="x-weight min(snr, 5.0)"),  # what runs before the history used
            "lr_schedule": extend_history(record.get("lr_schedule", []), "schedule", schedule, step,
                                          legacy=f"constant {cfg.lr:g} (assumed; not recorded then)")}


def data_parallel(model: UNet, dist: D.Dist, device: torch.device) -> torch.nn.Module:
    """The network as the steps call it: under DistributedDataParallel (gradients averaged across the processes in
    ``backward``) when there are several, else itself."""
    if dist.world <= 1:
        return model
    return torch.nn.parallel.DistributedDataParallel(
        model, device_ids=[device.index] if device.type == "cuda" else None)


def batch_stream(run: Run, pairs, step: int):
    """The batches of steps ``step``, ``step + 1``, ...: ``make_batch``, a pure function of (seed, step, rank), so a
    resumed run sees the same stream; with ``num_workers`` (GPU runs) prepared ahead in worker processes."""
    cfg, dist = run.cfg, run.dist
    masker = make_masker(cfg)
    if cfg.num_workers == 0:
        return (make_batch(pairs, s, cfg.seed, cfg.batch_size, masker, cfg.layout_drop, dist.rank, dist.world)
                for s in range(step, cfg.steps))
    return iter(torch.utils.data.DataLoader(
        StepBatches(pairs, cfg.seed, cfg.batch_size, masker, cfg.layout_drop, dist.rank, dist.world, cfg.steps),
        sampler=range(step, cfg.steps), batch_size=None, num_workers=cfg.num_workers,
        pin_memory=run.device.type == "cuda"))


def train_step(run: Run, net: torch.nn.Module, batch, step: int, autocast) -> torch.Tensor:
    """One optimizer step: the weighted v-loss (``diffusion_loss``) of ``batch`` at times and noise drawn from
    (seed, step, rank), AdamW at the scheduled learning rate, gradient clipping, the EMA. Returns this process's
    loss (detached)."""
    cfg, device = run.cfg, run.device
    x = batch.photos.to(device).contiguous(memory_format=torch.channels_last)  # (B, 3, H, W) in [-1, 1]
    layout = one_hot(batch.layouts.to(device), run.classset.num_channels).contiguous(  # (B, K+1, H, W)
        memory_format=torch.channels_last)
    gen = torch.Generator().manual_seed(cfg.seed * 1_000_003 + step * 101 + run.dist.rank)
    t = torch.rand(x.shape[0], generator=gen).to(device)
    noise = torch.randn(x.shape, generator=gen).to(device)
    for g in run.opt.param_groups:
        g["lr"] = learning_rate(step, cfg, int(run.record.get("warmup_from", 0)))
    with autocast:
        loss = diffusion_loss(lambda z, tt: net(z, tt, layout), x, t, noise, cfg.snr_gamma, cfg.snr_floor).mean()
    run.opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(run.model.parameters(), GRAD_CLIP)
    run.opt.step()
    run.ema.update(run.model, step)
    return loss.detach()


class LossLog:
    """The loss smoothed over steps, beside the progress bar; every 10 steps also a line of ``<run>/log.jsonl``
    (``path``; None on the other processes) with the images per second since the last line."""

    def __init__(self, path: Path | None):
        self.file = open(path, "a") if path is not None else None
        self.avg: float | None = None
        self.window_start, self.window_images = time.time(), 0

    @property
    def last(self) -> float:
        return float("nan") if self.avg is None else self.avg

    def step_done(self, loop: TrainingLoop, loss: float, images: int, images_seen: int) -> int:
        """Account a step of ``images`` at ``loss`` and advance ``loop``; returns the new step."""
        self.avg = loss if self.avg is None else 0.98 * self.avg + 0.02 * loss
        self.window_images += images
        step = loop.step + 1
        if step % 10 != 0 or self.file is None:
            return loop.advance()
        ips = self.window_images / max(1e-9, time.time() - self.window_start)
        loop.advance(loss=f"{self.avg:.4f}", img_s=f"{ips:.1f}")
        self.file.write(json.dumps({"step": step, "loss": loss, "loss_avg": self.avg, "img_s": ips,
                                    "images_seen": images_seen, "time": time.time()}) + "\n")
        self.file.flush()
        self.window_start, self.window_images = time.time(), 0
        return step

    def close(self) -> None:
        if self.file is not None:
            self.file.close()


def save_and_preview(run: Run, step: int, loss: float, eval_pairs) -> None:
    """After ``step``: every ``save_every`` steps the resumable state and the export (the other processes wait for
    them), every ``snapshot_every`` a kept copy of the EMA weights, every ``sample_every`` a grid of samples."""
    cfg, dist = run.cfg, run.dist
    if step % cfg.save_every == 0:
        run.record["loss"] = loss
        if dist.is_main:
            run.save(step)
        D.barrier(dist)
    if cfg.snapshot_every and step % cfg.snapshot_every == 0 and dist.is_main:
        run.export(step, run.folder / "snapshots" / f"images_{run.record['images_seen']:07d}")
    if step % cfg.sample_every == 0 and dist.is_main:
        sample_grid(run.ema.model, eval_pairs, run.classset, run.device, PREVIEW_STEPS,
                    run.folder / "samples" / f"step_{step:07d}.png")


def finish(run: Run, loop: TrainingLoop, log: LossLog) -> int:
    """However the loop stopped (its steps, its minutes, a signal, an error): the record says where, the main process
    saves and reports, all wait for it. Returns the step reached."""
    step, record = loop.step, run.record
    record["loss"] = log.last
    record["step"] = step
    if run.dist.world > 1:  # a cheap proof that DDP kept the replicas identical
        record["rank_checksums"] = D.weights_checksums(run.model, run.dist)
    if run.dist.is_main:
        run.save(step)
        log.close()
        print(f"saved {run.folder} at step {step} (loss {log.last:.4f}, {record['images_seen']} images seen, "
              f"{record['train_seconds'] / 3600:.2f} h of training)", flush=True)
    loop.close()
    D.barrier(run.dist)
    return step


def train(cfg: TrainConfig) -> dict:
    """Run (or resume) training; returns the record (step, images seen, wall time, last loss)."""
    set_threads(cfg.threads)
    device, dist = start_processes(cfg.device)
    pairs = load_split("train", cfg.image_size or preset(cfg.preset, 1).image_size, cfg.data, progress=dist.is_main)
    eval_pairs = load_split("eval", pairs.size, cfg.data, progress=dist.is_main) if dist.is_main else None
    classset = pairs.classset
    run = new_run(cfg, device, dist, classset, preset(cfg.preset, classset.num_channels, pairs.size))
    step = restore(run)
    net = data_parallel(run.model, dist, device)
    if dist.is_main:
        run.folder.mkdir(parents=True, exist_ok=True)
        save_json_atomic(run.folder / CONFIG_FILE, diffusion_config(run.unet_cfg, classset, cfg))
        print(f"model: {count_parameters(run.model) / 1e6:.2f}M parameters, {len(pairs)} training pairs at "
              f"{pairs.size}px, device {device}, {dist.world} process(es)", flush=True)
    batches = batch_stream(run, pairs, step)
    autocast = torch.autocast("cuda", dtype=torch.bfloat16) if device.type == "cuda" else mixed_precision(cfg.precision)
    loop = TrainingLoop(cfg.steps, step, "train", cfg.minutes, progress=dist.is_main)
    log = LossLog(run.folder / "log.jsonl" if dist.is_main else None)
    loop.start()
    try:
        while loop.running():
            t0, c0 = time.time(), time.process_time()
            loss = train_step(run, net, next(batches), loop.step, autocast)
            loss = float(D.all_mean(loss, dist))  # the mean over the processes
            count_images(run.record, cfg.precision if device.type == "cpu" else "bf16", cfg.batch_size)
            run.record["train_seconds"] = float(run.record.get("train_seconds", 0.0)) + (time.time() - t0)
            run.record["cpu_seconds"] = float(run.record.get("cpu_seconds", 0.0)) + (time.process_time() - c0)
            step = log.step_done(loop, loss, cfg.batch_size, run.record["images_seen"])
            save_and_preview(run, step, log.last, eval_pairs)
    finally:
        step = finish(run, loop, log)
        # release DDP (its reducer holds the process group) before the group goes, or gloo may abort at exit
        net = batches = None  # noqa: F841
        gc.collect()
        D.shutdown(dist)
    return {**run.record, "step": step}


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
    p = config_parser(TrainConfig, "python -m sparsesis.training.train", __doc__, names={"run": "--run-dir"}, skip=("mask",),
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
    a = p.parse_args(argv)
    if a.decay_from is not None and (a.decay_from < 0 or a.decay_steps < 1 or not 0 <= a.lr_final <= a.lr):
        p.error("the anneal needs --decay-from >= 0, --decay-steps >= 1 and 0 <= --lr-final <= --lr")
    return config_from_args(TrainConfig, a)


def main(argv=None) -> None:
    from ..data.sets import DataError

    try:
        train(parse_args(argv))
    except DataError as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
