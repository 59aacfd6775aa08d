"""The one adversarial training loop: a generator and a discriminator take turns on batches that are a pure
function of (seed, step), with the learning-rate schedule, resume, logging and exports every adversarial
training here shares. What differs between trainings (the networks, the batch, the losses, what is exported)
is a *task* that plugs in:

    class Task:                                # see ``AdversarialTask``
        generator, discriminator               # nn.Modules the two optimizers train
        batch_size                             # images per step (for the budget counts)
        def state_modules(self) -> dict        # everything a resumed run needs (EMA copies too)
        def batch(self, step)                  # the step's data
        def generate(self, batch)              # the generator's output for it
        def d_loss(self, batch, fake, step)    # -> (loss, logs); fake is detached
        def g_loss(self, batch, fake, step)    # -> (loss, logs)
        def after_step(self, step)             # e.g. an EMA update
        def export(self, folder, record, snapshot)  # a model folder (the discriminator beside it unless a snapshot)
        def snapshot_name(self, record) -> str # optional: a snapshot's folder name (default step_<n>)

    record = train_adversarial(task, schedule, run_dir)

Each step: the discriminator on (real, detached fake), then the generator, both under the schedule's
learning-rate factor (``lr_scale``: a linear warm-up, a linear decay to zero, and ``d_first`` steps at the
start in which the generator holds still while a fresh discriminator learns its output). ``<run>/state``
holds both networks and optimizers, ``<run>/export`` the latest generator (with its discriminator, fp16, so a
run goes on where its folder is gone), ``<run>/snapshots/step_<n>`` one every ``snapshot_every`` steps,
``<run>/log.jsonl`` a line every ten steps.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Protocol

import torch

from ..models.checkpoint import STATE_FILE
from .loop import TrainingLoop, count_images, load_state, mixed_precision, save_state


@dataclass(frozen=True)
class AdversarialSchedule:
    """What every adversarial training sets the same way."""

    steps: int
    lr_g: float
    lr_d: float
    betas: tuple[float, float] = (0.0, 0.999)
    warmup: int = 0  # learning rates rise linearly over the run's first steps (after d_first for the generator)
    d_first: int = 0  # the generator holds still for this many first steps
    decay_from: int | None = None  # learning rates fall linearly to 0 from this step to `steps`
    save_every: int = 100
    snapshot_every: int = 500
    precision: str = "fp32"
    minutes: float | None = None


def lr_scale(step: int, steps: int, decay_from: int | None = None, warmup: int = 0, start: int = 0) -> float:
    """The learning-rate factor at ``step``: 0 before ``start``, then rising linearly over ``warmup`` steps
    (``(step - start + 1) / warmup``), 1 until ``decay_from``, then falling linearly to 0 at ``steps``."""
    if step < start:
        return 0.0
    rise = min(1.0, (step - start + 1) / warmup) if warmup > 0 else 1.0
    if decay_from is None or step < decay_from:
        return rise
    return rise * max(0.0, (steps - step) / max(1, steps - decay_from))


class AdversarialTask(Protocol):
    generator: torch.nn.Module
    discriminator: torch.nn.Module
    batch_size: int

    def state_modules(self) -> dict[str, torch.nn.Module]: ...
    def batch(self, step: int) -> Any: ...
    def generate(self, batch: Any) -> torch.Tensor: ...
    def d_loss(self, batch: Any, fake: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]: ...
    def g_loss(self, batch: Any, fake: torch.Tensor, step: int) -> tuple[torch.Tensor, dict]: ...
    def after_step(self, step: int) -> None: ...
    def export(self, folder: Path, record: dict, snapshot: bool = False) -> None: ...


def _set_lr(opt: torch.optim.Optimizer, lr: float) -> None:
    for group in opt.param_groups:
        group["lr"] = lr


def train_adversarial(task: AdversarialTask, schedule: AdversarialSchedule, run: str | Path,
                      record: dict | None = None, progress: bool = True, desc: str = "train",
                      start_step: int = 0) -> dict:
    """Run (or resume) ``task`` under ``schedule`` in the folder ``run``; returns the record (images seen,
    seconds, step, the last losses). A new run starts at ``start_step`` with ``record`` as its record (a run
    that goes on from an exported folder); a run folder with a state resumes from it instead. ``d_loss`` may
    return ``(None, logs)``: no discriminator step then (a generator-only phase)."""
    autocast = mixed_precision(schedule.precision)
    run = Path(run)
    run.mkdir(parents=True, exist_ok=True)
    opt_g = torch.optim.Adam(task.generator.parameters(), lr=schedule.lr_g, betas=schedule.betas)
    opt_d = torch.optim.Adam(task.discriminator.parameters(), lr=schedule.lr_d, betas=schedule.betas)
    modules, optimizers = task.state_modules(), {"opt_g": opt_g, "opt_d": opt_d}
    step, record = start_step, {"images_seen": 0, "train_seconds": 0.0, "device": "cpu", **(record or {})}
    if (run / STATE_FILE).is_file():
        meta = load_state(run / STATE_FILE, modules, optimizers)
        step, record = int(meta["step"]), json.loads(meta["record"])
    loop = TrainingLoop(schedule.steps, step, desc, schedule.minutes, progress)

    def save():
        save_state(run / STATE_FILE, modules, optimizers, step=str(loop.step), record=record)
        task.export(run / "export", {**record, "step": loop.step})

    with loop, open(run / "log.jsonl", "a") as log:
        try:
            while loop.running():
                t0, c0 = time.time(), time.process_time()
                scale_g = lr_scale(loop.step, schedule.steps, schedule.decay_from, schedule.warmup, schedule.d_first)
                _set_lr(opt_g, schedule.lr_g * scale_g)
                _set_lr(opt_d, schedule.lr_d * lr_scale(loop.step, schedule.steps, schedule.decay_from,
                                                        schedule.warmup))
                batch = task.batch(loop.step)
                with torch.set_grad_enabled(scale_g > 0), autocast:
                    fake = task.generate(batch)
                with autocast:
                    d_loss, logs = task.d_loss(batch, fake.detach(), loop.step)
                if d_loss is not None:
                    opt_d.zero_grad(set_to_none=True)
                    d_loss.backward()
                    opt_d.step()
                if scale_g > 0:  # held still while the discriminator goes first
                    with autocast:
                        g_loss, g_logs = task.g_loss(batch, fake, loop.step)
                    opt_g.zero_grad(set_to_none=True)
                    g_loss.backward()
                    opt_g.step()
                    logs = {**logs, **g_logs}
                task.after_step(loop.step)
                count_images(record, schedule.precision, task.batch_size)
                record["train_seconds"] += time.time() - t0
                record["cpu_seconds"] = record.get("cpu_seconds", 0.0) + (time.process_time() - c0)
                record["losses"] = logs
                step = loop.advance(**{k: f"{v:.3f}" for k, v in logs.items()})
                if step % 10 == 0:
                    log.write(json.dumps({"step": step, **logs, "time": round(time.time(), 1)}) + "\n")
                    log.flush()
                if step % schedule.save_every == 0:
                    save()
                if schedule.snapshot_every and step % schedule.snapshot_every == 0:
                    name = task.snapshot_name(record) if hasattr(task, "snapshot_name") else f"step_{step:06d}"
                    task.export(run / "snapshots" / name, {**record, "step": step}, snapshot=True)
        finally:
            save()
    return {**record, "step": loop.step}
