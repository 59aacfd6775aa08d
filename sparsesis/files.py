"""Files written whole or not at all: a write goes to a temporary file beside the target, then replaces it
(so a stopped run never leaves half a state, result or cache behind)."""
from __future__ import annotations

import contextlib
import json
import os
import tempfile
from pathlib import Path

import numpy as np


@contextlib.contextmanager
def atomic_path(path: str | Path):
    """Yield a temporary path beside ``path``; when the block finishes, it replaces ``path`` in one step, so a
    crash leaves either the old file or the new one, never half. On an error the temporary file is removed."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    os.close(fd)
    os.chmod(tmp, 0o644)  # mkstemp makes 0600; checkpoints are meant to be shared
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def save_json_atomic(path: str | Path, obj) -> None:
    with atomic_path(path) as tmp, open(tmp, "w") as f:
        json.dump(obj, f, indent=2)
        f.write("\n")


def save_npz_atomic(path: str | Path, arrays: dict[str, np.ndarray], compressed: bool = False) -> None:
    """Write numpy arrays as one ``.npz`` so that a crash leaves either the old file or the new one."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would add ".npz" to a temp name
        (np.savez_compressed if compressed else np.savez)(f, **arrays)
