"""Checkpoints: safetensors weights + ``config.json`` beside them, written atomically.

A *model folder* (what ships in ``checkpoints/<name>/``) holds ``model.safetensors`` and
``config.json``; the config rebuilds the model on its own (architecture, class set, sampling defaults,
training record). A *training state* (``state.safetensors`` in a run folder) adds the raw weights,
the optimizer moments and the step so that a run resumes exactly.
"""
from __future__ import annotations

import json
from pathlib import Path

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from ..files import atomic_path, save_json_atomic, save_npz_atomic  # noqa: F401  (what model folders write with)

MODEL_FILE = "model.safetensors"
CONFIG_FILE = "config.json"
STATE_FILE = "state.safetensors"


class CheckpointError(RuntimeError):
    """A checkpoint is missing, incomplete or corrupt."""


def save_tensors_atomic(path: str | Path, tensors: dict[str, torch.Tensor], metadata: dict[str, str] | None = None) -> None:
    """Write a safetensors file so that a crash leaves either the old file or the new one, never half."""
    with atomic_path(path) as tmp:
        save_file({k: v.detach().contiguous().cpu() for k, v in tensors.items()}, tmp, metadata=metadata)


def load_tensors(path: str | Path) -> dict[str, torch.Tensor]:
    path = Path(path)
    if not path.is_file():
        raise CheckpointError(f"checkpoint file {path} not found")
    try:
        return load_file(str(path))
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint file {path} is corrupt or not safetensors ({err}); "
                              "re-download it or retrain") from err


def read_metadata(path: str | Path) -> dict[str, str]:
    from safetensors import safe_open

    try:
        with safe_open(str(path), framework="pt") as f:
            return f.metadata() or {}
    except (SafetensorError, OSError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"checkpoint file {path} is corrupt ({err})") from err


def cast_floats(state_dict: dict[str, torch.Tensor], dtype: torch.dtype | None) -> dict[str, torch.Tensor]:
    """The floating tensors of ``state_dict`` cast to ``dtype`` (None: as they are), the others unchanged."""
    return {k: (v.detach().to(dtype).contiguous() if dtype is not None and v.is_floating_point() else v)
            for k, v in state_dict.items()}


# a GAN's (or the upsampler's) discriminator, exported in fp16 beside its generator's model folder
DISCRIMINATOR_FILE = "discriminator.safetensors"


def save_discriminator(folder: str | Path, module: torch.nn.Module, **metadata: str) -> None:
    save_tensors_atomic(Path(folder) / DISCRIMINATOR_FILE, cast_floats(module.state_dict(), torch.float16), metadata)


def load_discriminator(folder: str | Path) -> tuple[dict[str, torch.Tensor], dict[str, str]] | None:
    """(fp32 weights, metadata) of the discriminator exported beside ``folder``'s model, or None if there is none."""
    path = Path(folder) / DISCRIMINATOR_FILE
    if not path.is_file():
        return None
    return cast_floats(load_tensors(path), torch.float32), read_metadata(path)


def save_model_dir(folder: str | Path, state_dict: dict[str, torch.Tensor], config: dict,
                   dtype: torch.dtype | None = torch.float16) -> Path:
    """Write ``model.safetensors`` (floating tensors cast to ``dtype``) and ``config.json``."""
    folder = Path(folder)
    tensors = cast_floats(state_dict, dtype)
    save_tensors_atomic(folder / MODEL_FILE, tensors)
    save_json_atomic(folder / CONFIG_FILE, config)
    return folder


def copy_model_dir(source: str | Path, out: str | Path, config: dict) -> None:
    """Write ``source``'s weights to the model folder ``out`` with ``config`` (a shipped copy of a chosen snapshot):
    the weights through ``atomic_path`` (an interrupted copy leaves the old ones, never half; none when ``out`` is
    ``source``), then the config."""
    import shutil

    source, out = Path(source), Path(out)
    out.mkdir(parents=True, exist_ok=True)
    if source.resolve() != out.resolve():
        with atomic_path(out / MODEL_FILE) as tmp:
            shutil.copyfile(source / MODEL_FILE, tmp)
    save_json_atomic(out / CONFIG_FILE, config)


def weights_sha256(folder: str | Path) -> str:
    """The SHA-256 of a model folder's weights file: what a results file names as the model it measured."""
    import hashlib

    h = hashlib.sha256()
    with open(Path(folder) / MODEL_FILE, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def load_model_dir(folder: str | Path) -> tuple[dict, dict[str, torch.Tensor]]:
    """-> (config, state_dict in float32), with clear errors for a missing or broken folder."""
    folder = Path(folder)
    if not folder.is_dir():
        raise CheckpointError(f"checkpoint folder {folder} not found (expected {MODEL_FILE} and {CONFIG_FILE} in it)")
    cfg_path = folder / CONFIG_FILE
    if not cfg_path.is_file():
        raise CheckpointError(f"{cfg_path} is missing: the folder is not a sparsesis checkpoint")
    try:
        config = json.loads(cfg_path.read_text())
    except json.JSONDecodeError as err:
        raise CheckpointError(f"{cfg_path} is corrupt ({err})") from err
    tensors = load_tensors(folder / MODEL_FILE)
    return config, {k: (v.float() if v.is_floating_point() else v) for k, v in tensors.items()}


def load_model(folder: str | Path, kind: str, build, what: str):
    """-> (config, module): a model folder of ``kind``, rebuilt by ``build(config) -> nn.Module`` and loaded with
    its weights; a clear ``CheckpointError`` for another kind (``what`` names the expected one) or a config and
    weights that do not fit together."""
    config, weights = load_model_dir(folder)
    if config.get("kind") != kind:
        raise CheckpointError(f"{folder} holds a {config.get('kind')!r} model, not {what}")
    try:
        module = build(config)
        module.load_state_dict(weights)
    except (KeyError, TypeError, ValueError, RuntimeError) as err:
        raise CheckpointError(f"{folder}: config and weights do not fit together ({err})") from err
    return config, module


def load_classes(config: dict, folder: str | Path):
    """The ``ClassSet`` a model folder's config names, or a clear ``CheckpointError``."""
    from ..data.classes import ClassSet

    try:
        return ClassSet.from_dict(config["classes"])
    except (KeyError, TypeError, ValueError) as err:
        raise CheckpointError(f"{folder}: its class set is missing or malformed ({err})") from err


# ---- optimizer state <-> flat tensors (so training state is safetensors too) ------------------
def flatten_optimizer(state: dict, prefix: str = "opt") -> tuple[dict[str, torch.Tensor], str]:
    tensors = {}
    for idx, s in state["state"].items():
        for k, v in s.items():
            tensors[f"{prefix}.{idx}.{k}"] = v if torch.is_tensor(v) else torch.tensor(v)
    return tensors, json.dumps(state["param_groups"])


def unflatten_optimizer(tensors: dict[str, torch.Tensor], param_groups_json: str, prefix: str = "opt") -> dict:
    state: dict[int, dict] = {}
    for name, v in tensors.items():
        if name.startswith(prefix + "."):
            _, idx, k = name.split(".", 2)
            state.setdefault(int(idx), {})[k] = v
    return {"state": state, "param_groups": json.loads(param_groups_json)}


def prefixed(tensors: dict[str, torch.Tensor], prefix: str) -> dict[str, torch.Tensor]:
    """The entries under ``prefix.`` with the prefix stripped."""
    n = len(prefix) + 1
    return {k[n:]: v for k, v in tensors.items() if k.startswith(prefix + ".")}
