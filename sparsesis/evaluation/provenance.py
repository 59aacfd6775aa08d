"""Where a result comes from: the commit it was made at, the weights it measured, and model folders as they were
at an earlier commit.

A model folder may be named as ``COMMIT:checkpoints/ours64`` (any commit git knows): the folder as that commit
held it, copied once into ``$SPARSESIS_CACHE/git/`` (``model_folder``). A results file names what it measured in
its ``"models"`` map, folder (or ``COMMIT:folder``) -> the SHA-256 of its weights (``provenance``).
"""
from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

from ..models.checkpoint import CONFIG_FILE, MODEL_FILE, weights_sha256

REPO = Path(__file__).resolve().parents[2]
GIT_SPEC = re.compile(r"(?P<commit>[0-9a-f]{7,40}):(?P<folder>[^:]+)")


class ProvenanceError(ValueError):
    """A commit or folder git cannot give."""


def _git(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(["git", *args], cwd=REPO, capture_output=True)


def git_commit() -> str:
    """HEAD's short hash ("unknown" outside a git checkout)."""
    return _git("rev-parse", "--short", "HEAD").stdout.decode().strip() or "unknown"


def git_dirty() -> list[str]:
    """The tracked files that differ from HEAD (a result made there says which)."""
    out = _git("status", "--porcelain", "-uno").stdout.decode()
    return [line[3:] for line in out.splitlines() if line.strip()]


def git_versions(folder: str) -> list[str]:
    """Commits (oldest first) that added or changed ``folder``'s weights, skipping reverted ones."""
    out = _git("log", "--diff-filter=AM", "--format=%H %s", "--", f"{folder}/{MODEL_FILE}").stdout.decode()
    commits, reverted = [], set()
    for line in out.splitlines():
        sha, subject = line.split(" ", 1)
        if subject.startswith('Revert "'):
            reverted.add(subject[len('Revert "'):].rstrip('"'))
        elif subject not in reverted:
            commits.append(sha)
    return commits[::-1]


def extract_folder(commit: str, folder: str, dest: Path) -> Path:
    """``folder``'s weights and config as ``commit`` held them, written into ``dest``."""
    dest.mkdir(parents=True, exist_ok=True)
    for name in (MODEL_FILE, CONFIG_FILE):
        done = _git("show", f"{commit}:{folder}/{name}")
        if done.returncode:
            raise ProvenanceError(f"git has no {folder}/{name} at {commit}: name a commit that holds it "
                                  f"(git log -- {folder})")
        (dest / name).write_bytes(done.stdout)
    return dest


def model_folder(spec: str | Path) -> Path:
    """A model folder path as it is, or ``COMMIT:folder`` copied out of git once (cached by commit)."""
    m = GIT_SPEC.fullmatch(str(spec))
    if m is None:
        return Path(spec)
    cache = Path(os.environ.get("SPARSESIS_CACHE", Path.home() / ".cache" / "sparsesis"))
    dest = cache / "git" / m["commit"] / m["folder"]
    if not (dest / MODEL_FILE).is_file():
        extract_folder(m["commit"], m["folder"], dest)
    return dest


def provenance(folders) -> dict:
    """``{"commit", "models"}`` (and ``"uncommitted"``: the tracked files that differed from that commit, where
    any did): where a result was made and the SHA-256 of the weights of every model folder it measured."""
    out = {"commit": git_commit(), "models": {str(f): weights_sha256(model_folder(f)) for f in folders}}
    dirty = git_dirty()
    return {**out, "uncommitted": dirty} if dirty else out
