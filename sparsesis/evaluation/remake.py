"""Re-make the current results files from the shipped checkpoints: each file's own command, run again.

    python -m sparsesis.evaluation.remake --list                  # every current file, its command, what it reads
    python -m sparsesis.evaluation.remake --only eval memorization   # these files (names without .json)
    python -m sparsesis.evaluation.remake --dry-run               # the commands, without running them
    python -m sparsesis.evaluation.remake                         # all of them (hours on 2 cores)

Every JSON directly in ``results/`` names the command that wrote it (``"command"``). ``remake`` runs each distinct
command once, from the repository root, then stamps every file it wrote with the commit it was made at and the
SHA-256 of the weights it measured (the folders of the file's ``"models"`` map, ``sparsesis.evaluation.provenance``). A
command that reads a training run (a path under ``runs/``) instead of shipped weights can only run where that run
is: remake names the missing paths and goes on with the other files. The README's figures are checked against the
files afterwards by ``python -m sparsesis.evaluation.report readme --check README.md``.
"""
from __future__ import annotations

import argparse
import json
import shlex
import subprocess
import sys
from pathlib import Path

from ..models.checkpoint import save_json_atomic
from .provenance import REPO, provenance

RESULTS = REPO / "results"


def current_files(results: Path = RESULTS) -> dict[str, dict]:
    """``{name: contents}`` of every JSON directly in ``results`` (name without ``.json``)."""
    return {p.stem: json.loads(p.read_text()) for p in sorted(results.glob("*.json"))}


def command_parts(command: str) -> list[list[str]]:
    """A stored command (``a && b``) as argument lists, ``python`` being this interpreter."""
    parts = []
    for text in command.split("&&"):
        argv = shlex.split(text)
        if argv and argv[0] in ("python", "python3"):
            argv[0] = sys.executable
        if argv:
            parts.append(argv)
    return parts


def missing_runs(command: str) -> list[str]:
    """The paths under ``runs/`` the command reads that are not here."""
    words = (w.split("=", 1)[-1] for part in command_parts(command) for w in part)
    return sorted({w for w in words if w.startswith("runs/") and not (REPO / w).exists()})


def plan(files: dict[str, dict], only: list[str] | None) -> dict[str, list[str]]:
    """``{command: [file names it writes]}`` for the chosen files, in file order."""
    unknown = sorted(set(only or []) - set(files))
    if unknown:
        raise SystemExit(f"error: no results/{unknown[0]}.json; python -m sparsesis.evaluation.remake --list names the files")
    out: dict[str, list[str]] = {}
    for name, data in files.items():
        if only is None or name in only:
            out.setdefault(data["command"], []).append(name)
    return out


def stamp(name: str, models: list[str], results: Path = RESULTS) -> None:
    """Write the commit and the weights' hashes into a re-made file."""
    path = results / f"{name}.json"
    data = json.loads(path.read_text())
    data.pop("uncommitted", None)
    save_json_atomic(path, {**data, **provenance(models)})


def run_command(command: str, names: list[str], files: dict[str, dict]) -> str:
    """Run one stored command; -> "done", or why it did not run."""
    missing = missing_runs(command)
    if missing:
        return f"skipped: needs {', '.join(missing)} (a training run; python -m sparsesis.training.reproduce makes them)"
    for argv in command_parts(command):
        if subprocess.run(argv, cwd=REPO).returncode:
            return f"failed: {' '.join(argv[1:4])} ..."
    for name in names:
        stamp(name, list(files[name].get("models", {})))
    return "done"


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.evaluation.remake", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--only", nargs="+", default=None, metavar="NAME", help="these files only (names without .json)")
    p.add_argument("--list", action="store_true", help="the current files and their commands")
    p.add_argument("--dry-run", action="store_true", help="print the commands without running them")
    a = p.parse_args(argv)
    files = current_files()
    todo = plan(files, a.only)
    if a.list or a.dry_run:
        for command, names in todo.items():
            missing = missing_runs(command)
            print(f"# {', '.join(n + '.json' for n in names)}" + (f"  (needs {', '.join(missing)})" if missing else ""))
            print(command if a.dry_run else command[:160] + ("..." if len(command) > 160 else ""))
        return
    from tqdm import tqdm

    report = {}
    for command, names in tqdm(todo.items(), desc="remake", unit="command"):
        report[", ".join(names)] = run_command(command, names, files)
    for names, outcome in report.items():
        print(f"{names}: {outcome}")
    if any(v.startswith("failed") for v in report.values()):
        sys.exit(1)


if __name__ == "__main__":
    main()
