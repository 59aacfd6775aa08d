"""The rules that keep the package readable, checked on the code as it is: a trainer's own options fit on a
screen (the run's bookkeeping aside), no function runs past 80 lines, a module-level name means one thing, and
nothing under benchmarks/ writes into checkpoints/ (shipping is the package's job)."""
import ast
import re
import subprocess
import sys
from collections import defaultdict

import pytest

from conftest import REPO

TRAINERS = ["sparsesis.training.train", "sparsesis.training.distill", "sparsesis.training.train_upsampler", "sparsesis.training.onestep",
            "sparsesis.training.train_gan"]
# what every trainer has, being a resumable run on a data folder: not the trainer's own knobs
SHARED = {"--run-dir", "--data", "--threads", "--precision", "--seed", "--steps", "--minutes", "--save-every",
          "--snapshot-every", "--device", "--num-workers", "--init-from", "--help"}
SOURCES = sorted((REPO / "sparsesis").rglob("*.py")) + [REPO / "demo.py"]


def options_of(module: str) -> set[str]:
    text = subprocess.run([sys.executable, "-m", module, "--help"], cwd=REPO, capture_output=True, text=True,
                          check=True).stdout
    return set(re.findall(r"(?m)^\s{2}(--[a-z0-9-]+)", text))


@pytest.mark.parametrize("module", TRAINERS)
def test_a_trainer_has_at_most_15_options_of_its_own(module):
    own = options_of(module) - SHARED
    assert own, f"{module} --help lists no options: the check reads nothing"
    assert len(own) <= 15, f"{module} has {len(own)} options of its own: {sorted(own)}"


def test_no_function_is_over_80_lines():
    long = [f"{p.relative_to(REPO)}:{n.name} ({n.end_lineno - n.lineno + 1} lines)"
            for p in SOURCES for n in ast.walk(ast.parse(p.read_text()))
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef)) and n.end_lineno - n.lineno + 1 > 80]
    assert not long, f"functions over 80 lines: {long}"


def test_a_module_level_name_is_defined_in_one_module():
    where = defaultdict(list)
    for p in SOURCES:
        for n in ast.parse(p.read_text()).body:
            if isinstance(n, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                where[n.name].append(str(p.relative_to(REPO)))
    twice = {name: files for name, files in where.items() if len(files) > 1 and name not in ("main", "parse_args")}
    assert not twice, f"names defined in more than one module: {twice}"


WRITERS = {"save_model_dir", "copy_model_dir", "save_discriminator", "ship"}


def test_nothing_under_benchmarks_writes_into_checkpoints():
    for p in sorted((REPO / "benchmarks").glob("*.py")):
        tree = ast.parse(p.read_text())
        imported = {a.asname or a.name for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) for a in n.names}
        assert not imported & WRITERS, f"{p.name} imports {imported & WRITERS}: shipping belongs to the package"
        for n in ast.walk(tree):  # no --out / --dest defaulting into checkpoints/
            if isinstance(n, ast.Call) and getattr(n.func, "attr", "") == "add_argument":
                flags = [a.value for a in n.args if isinstance(a, ast.Constant)]
                default = next((k.value.value for k in n.keywords if k.arg == "default"
                                and isinstance(k.value, ast.Constant)), None)
                if any(f in ("--out", "--dest") for f in flags) and isinstance(default, str):
                    assert not default.startswith("checkpoints"), f"{p.name}: {flags} defaults into {default}"
