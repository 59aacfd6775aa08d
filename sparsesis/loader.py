"""One loader for every generator that ships: ``load(path)`` reads the folder's ``kind`` and returns a model
with one interface (``sparsesis.interface.Generator``), whether it is a diffusion teacher, a distilled student or
a GAN baseline (``sparsesis.baselines.generator``):

    model = load("checkpoints/ours64-student4")
    image = model(layout, seed=0)            # (H, W, 3) uint8; a batch of layouts -> (B, H, W, 3)
    model.classset, model.image_size, model.default_steps, model.is_diffusion, model.info()
"""
from __future__ import annotations

import json
from pathlib import Path

from .models.checkpoint import CONFIG_FILE, CheckpointError
from .interface import Generator
from .models.schema import DIFFUSION_KIND, GAN_KIND, GENERATOR_KINDS
from .synthesizer import Synthesizer


def checkpoint_kind(path: str | Path) -> str | None:
    """The ``kind`` a model folder's config states, or None when it has no readable config."""
    try:
        return json.loads((Path(path) / CONFIG_FILE).read_text()).get("kind")
    except (OSError, json.JSONDecodeError, AttributeError):
        return None


def load(path: str | Path, device: str = "cpu", precision: str = "fp32") -> Generator:
    """A ``Synthesizer`` (diffusion model or student) or a ``GanSynthesizer``, by the folder's kind.
    ``precision`` (fp32, bf16 or auto: bf16 where the CPU has it natively) applies to diffusion models."""
    path = Path(path)
    kind = checkpoint_kind(path)
    if kind == GAN_KIND:  # imported here: nothing on the diffusion path imports the baselines
        from .baselines.generator import GanSynthesizer

        return GanSynthesizer.from_pretrained(path, device, precision)
    if kind == DIFFUSION_KIND:
        return Synthesizer.from_pretrained(path, device=device, precision=precision)
    if kind is None:
        Synthesizer.from_pretrained(path)  # raises the precise error: no folder, no config, corrupt config
    raise CheckpointError(f"{path} holds a {kind!r} model, not a generator (expected one of {GENERATOR_KINDS})")


def find_models(root: str | Path, preferred: tuple[str, ...] = ()) -> dict[str, Path]:
    """``{name: folder}`` for every generator checkpoint directly under ``root``: the ``preferred`` names first
    (in that order), then diffusion models, then GAN baselines, each alphabetically."""
    root, found = Path(root), {}
    if root.is_dir():
        for cfg in sorted(root.glob(f"*/{CONFIG_FILE}")):
            kind = checkpoint_kind(cfg.parent)
            if kind in GENERATOR_KINDS:
                found[cfg.parent.name] = (GENERATOR_KINDS.index(kind), cfg.parent)
    order = [n for n in preferred if n in found]
    order += sorted((n for n in found if n not in preferred), key=lambda n: (found[n][0], n))
    return {n: found[n][1] for n in order}
