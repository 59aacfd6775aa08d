"""What every training loop here shares, so that each training module holds only what is particular to it.

    loop = TrainingLoop(total=cfg.steps, step=start, desc="train", minutes=cfg.minutes)
    with loop:                           # Ctrl-C / SIGTERM end the loop cleanly; a deadline too
        while loop.running():
            ...one optimisation step...
            loop.advance(loss=f"{loss:.4f}")
    save_state(run / STATE_FILE, {"model": model}, {"opt": opt}, step=loop.step)

A training state is one safetensors file: each module's weights under ``<name>.``, each optimizer's moments
under ``<name>.`` with its param groups in the metadata, plus string metadata (step, record, ...).
``config_parser`` turns a frozen config dataclass into a command line, one ``--flag`` per simple field.
"""
from __future__ import annotations

import argparse
import copy
import json
import signal
import sys
import time
import types
import typing
import warnings
from dataclasses import fields
from pathlib import Path

import torch

from ..models.checkpoint import flatten_optimizer, load_tensors, prefixed, read_metadata, save_tensors_atomic, unflatten_optimizer
from ..precision import cpu_bf16_speedup, native_bf16


PRECISIONS = ("fp32", "bf16")


def check_precision(precision: str) -> None:
    """An unknown training precision fails here, before any work."""
    if precision not in PRECISIONS:
        raise ValueError(f"precision must be one of {', '.join(PRECISIONS)}, got {precision!r}")


def mixed_precision(precision: str):
    """The forward passes' autocast context: ``"bf16"`` runs matrix products and convolutions in bfloat16
    (parameters and optimizer state stay fp32; faster only on some CPUs: ``results/README.md``, "bf16 on CPUs"),
    ``"fp32"`` changes nothing."""
    check_precision(precision)
    if precision == "bf16" and not native_bf16("cpu"):
        warnings.warn("this CPU has no native bf16 (AVX-512 BF16 or AMX): bf16 training runs several times slower "
                      "than fp32 here; --precision fp32 is faster", stacklevel=2)
    elif precision == "bf16" and cpu_bf16_speedup(torch.get_num_threads()) < 1.0:
        warnings.warn("bf16 convolutions measured slower than fp32 on this CPU (it reports native bf16, but does not "
                      "gain from it): --precision fp32 is likely faster", stacklevel=2)
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=precision == "bf16")


def count_images(record: dict, precision: str, n: int) -> None:
    """Add ``n`` trained images to ``record["images_seen"]`` and to the count of their precision in
    ``record["images_by_precision"]`` (a run may change precision when resumed; a record written before
    precisions were counted trained them all in fp32)."""
    by_precision = record.setdefault("images_by_precision", {"fp32": record["images_seen"]})
    by_precision[precision] = by_precision.get(precision, 0) + n
    record["images_seen"] += n


class EMA:
    """Exponential moving average of a model's weights (``.model``), with the usual warm-up of the decay:
    ``min(decay, (1 + step) / (10 + step))``."""

    def __init__(self, model: torch.nn.Module, decay: float):
        self.decay = decay
        self.model = copy.deepcopy(model).eval().requires_grad_(False)

    @torch.no_grad()
    def update(self, model: torch.nn.Module, step: int) -> None:
        d = min(self.decay, (1 + step) / (10 + step))
        for e, p in zip(self.model.parameters(), model.parameters()):
            e.lerp_(p.detach(), 1 - d)


def set_threads(threads: int | None) -> None:
    """CPU threads for torch (``None``: torch's default). One thread trains about as fast as two here, so two
    runs can share a 2-core machine."""
    if threads:
        torch.set_num_threads(int(threads))


class TrainingLoop:
    """Step counting with a progress bar, a wall-clock deadline and clean stops on SIGINT/SIGTERM.

    ``running()`` is false once ``step`` reaches ``total``, the ``minutes`` of this invocation are spent, or a
    stop signal arrived; the caller then saves its state, so an interrupted run resumes where it stopped.
    """

    def __init__(self, total: int, step: int = 0, desc: str = "train", minutes: float | None = None,
                 progress: bool = True, unit: str = "step"):
        self.total, self.step, self.desc, self.unit = int(total), int(step), desc, unit
        self.deadline = time.time() + 60 * minutes if minutes else None
        self.progress = progress
        self.stopped = False
        self.bar = None
        self._old_handlers = []

    def __enter__(self) -> "TrainingLoop":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.close()

    def start(self) -> "TrainingLoop":
        """Install the signal handlers and show the bar (``with loop:`` does this and ``close``)."""
        from tqdm.auto import tqdm

        def on_signal(signum, frame):
            self.stopped = True

        self._old_handlers = [(s, signal.signal(s, on_signal)) for s in (signal.SIGINT, signal.SIGTERM)]
        self.bar = tqdm(total=self.total, initial=self.step, desc=self.desc, unit=self.unit, disable=not self.progress,
                        dynamic_ncols=True, mininterval=5.0, file=sys.stderr)
        return self

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        for s, h in self._old_handlers:
            signal.signal(s, h)
        self._old_handlers = []

    def running(self) -> bool:
        return self.step < self.total and not self.stopped and not (self.deadline and time.time() > self.deadline)

    def advance(self, **postfix) -> int:
        """One step done; ``postfix`` values are shown beside the bar. Returns the new step."""
        self.step += 1
        if self.bar is not None:
            self.bar.update(1)
            if postfix:
                self.bar.set_postfix(postfix, refresh=False)
        return self.step


def save_state(path: str | Path, modules: dict, optimizers: dict, **meta) -> None:
    """Write modules (``{name: nn.Module or state_dict}``), optimizers and string metadata atomically."""
    tensors, metadata = {}, {k: v if isinstance(v, str) else json.dumps(v) for k, v in meta.items()}
    for name, m in modules.items():
        sd = m.state_dict() if hasattr(m, "state_dict") else m
        tensors.update({f"{name}.{k}": v for k, v in sd.items()})
    for name, opt in optimizers.items():
        t, groups = flatten_optimizer(opt.state_dict(), name)
        tensors.update(t)
        metadata[f"groups.{name}"] = groups
    save_tensors_atomic(path, tensors, metadata)


def load_state(path: str | Path, modules: dict, optimizers: dict) -> dict[str, str]:
    """Load what ``save_state`` wrote into the given modules and optimizers; returns the metadata."""
    tensors, meta = load_tensors(path), read_metadata(path)
    for name, m in modules.items():
        m.load_state_dict(prefixed(tensors, name))
    for name, opt in optimizers.items():
        groups = meta.get(f"groups.{name}") or meta[LEGACY_GROUP_KEYS[name]]
        opt.load_state_dict(unflatten_optimizer(tensors, groups, name))
    return meta


# where run folders written before this module kept each optimizer's param groups
LEGACY_GROUP_KEYS = {"opt": "param_groups", "opt_g": "groups_g", "opt_d": "groups_d"}


def _flag_type(tp):
    """(argparse type, nargs) for a dataclass field's annotation; None for fields without a flag."""
    if isinstance(tp, str):
        tp = eval(tp, {"tuple": tuple, "int": int, "float": float, "str": str, "bool": bool, "None": None})
    args = typing.get_args(tp)
    if typing.get_origin(tp) in (typing.Union, types.UnionType):  # X | None
        inner = [a for a in args if a is not type(None)]
        tuples = [a for a in inner if typing.get_origin(a) is tuple]  # "int | tuple[int, ...]": take the tuple
        return _flag_type(tuples[0] if tuples else inner[0]) if len(inner) == 1 or tuples else (None, None)
    if typing.get_origin(tp) is tuple:
        return (args[0], "+") if args and args[0] in (int, float, str) else (None, None)
    return (tp, None) if tp in (int, float, str, bool) else (None, None)


def config_parser(cls, prog: str, description: str | None = None, names: dict[str, str] | None = None,
                  helps: dict[str, str] | None = None, choices: dict[str, list] | None = None,
                  skip: tuple[str, ...] = ()) -> argparse.ArgumentParser:
    """A parser with one ``--field-name`` flag per simple field of the dataclass ``cls`` (int, float, str, bool,
    optional ones, tuples of numbers). ``names`` renames flags (``{"run": "--run-dir"}``), ``choices`` restricts
    values; ``skip`` leaves fields out (the caller adds its own flags for them)."""
    p = argparse.ArgumentParser(prog=prog, description=description,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    hints = typing.get_type_hints(cls)
    default = cls()
    for f in fields(cls):
        if f.name in skip:
            continue
        tp, nargs = _flag_type(hints[f.name])
        if tp is None:
            continue
        flag = (names or {}).get(f.name, "--" + f.name.replace("_", "-"))
        value = getattr(default, f.name)
        help_text = (helps or {}).get(f.name, "")
        if tp is bool:
            p.add_argument(flag, dest=f.name, action=argparse.BooleanOptionalAction, default=value, help=help_text)
            continue
        if nargs and value is not None and not isinstance(value, (tuple, list)):
            value = (value,)
        p.add_argument(flag, dest=f.name, type=tp, nargs=nargs, default=value, choices=(choices or {}).get(f.name),
                       help=f"{help_text} (default: {value})".strip())
    return p


def config_from_args(cls, ns: argparse.Namespace, **overrides):
    """The dataclass ``cls`` from parsed flags (lists become tuples); ``overrides`` set the other fields."""
    kw = {f.name: getattr(ns, f.name) for f in fields(cls) if hasattr(ns, f.name)}
    kw = {k: tuple(v) if isinstance(v, list) else v for k, v in kw.items()}
    return cls(**{**kw, **overrides})
