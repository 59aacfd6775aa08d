"""The package's shape a newcomer relies on: imports point one way (no cycle, counting imports inside
functions too), no module reaches into another's private names, and every generator the loader returns
satisfies the declared interface; a benchmark's result says the command that made it."""
import ast
import inspect
import json
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO

PACKAGE = REPO / "sparsesis"


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def imports_of(path: Path) -> list[tuple[str, list[str]]]:
    """(module imported, names taken from it) for every import in the file, resolved to absolute names."""
    here = module_name(path).split(".")
    package = here if path.name == "__init__.py" else here[:-1]
    out = []
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = package[: len(package) - node.level + 1] if node.level else []
            mod = ".".join(base + (node.module.split(".") if node.module else []))
            names = [a.name for a in node.names]
            out.append((mod, names))
            out.extend((f"{mod}.{n}", []) for n in names)  # "from . import x" imports the module x
        elif isinstance(node, ast.Import):
            out.extend((a.name, []) for a in node.names)
    return out


def package_graph() -> dict[str, set[str]]:
    modules = {module_name(p): p for p in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        graph[name] = {m for m, _ in imports_of(path) if m in modules and m != name}
    return graph


def test_the_import_graph_has_no_cycle():
    graph = package_graph()
    state, stack = {}, []

    def visit(n):
        state[n] = "open"
        stack.append(n)
        for m in sorted(graph[n]):
            if state.get(m) == "open":
                raise AssertionError("import cycle: " + " -> ".join(stack[stack.index(m):] + [m]))
            if m not in state:
                visit(m)
        stack.pop()
        state[n] = "done"

    for n in sorted(graph):
        if n not in state:
            visit(n)
    assert "sparsesis.evaluation.evaluate" in graph and len(graph) > 30  # the walk saw the package


def test_no_module_uses_another_modules_private_names():
    offenders = []
    files = list(PACKAGE.rglob("*.py")) + [REPO / "demo.py"] + list((REPO / "benchmarks").glob("*.py"))
    for path in files:
        for mod, names in imports_of(path):
            if mod.startswith("sparsesis"):
                offenders += [f"{path.relative_to(REPO)}: {mod}.{n}" for n in names if n.startswith("_")]
        # attribute access to a private member of something else: x._name where x is not self/cls
        for node in ast.walk(ast.parse(path.read_text())):
            if (isinstance(node, ast.Attribute) and node.attr.startswith("_") and not node.attr.startswith("__")
                    and not (isinstance(node.value, ast.Name) and node.value.id in ("self", "cls"))):
                offenders.append(f"{path.relative_to(REPO)}:{node.lineno}: .{node.attr}")
    allowed = {"._fields", "._replace", "._asdict"}  # NamedTuple's public API has underscores
    offenders = [o for o in offenders if not any(o.endswith(a) for a in allowed)]
    assert not offenders, offenders


def protocol_members(protocol) -> set[str]:
    """The names a protocol declares: its annotated attributes, properties and methods (``__call__`` included)."""
    names = set(vars(protocol).get("__annotations__", {}))
    names |= {n for n, v in vars(protocol).items() if isinstance(v, (property, classmethod)) or callable(v)}
    return {n for n in names if not n.startswith("_") or n == "__call__"}


def takes_what_the_protocol_passes(method, declared) -> None:
    """``method`` accepts every call the protocol's ``declared`` signature allows: its required arguments by
    position and each optional one by name (a TypeError otherwise)."""
    plain = (inspect.Parameter.POSITIONAL_ONLY, inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
    params = [p for p in inspect.signature(declared).parameters.values()
              if p.name not in ("self", "cls") and p.kind in plain]
    required = [p for p in params if p.default is p.empty]
    inspect.signature(method).bind(*range(len(required)), **{p.name: None for p in params if p not in required})


def test_diffusion_and_gan_generators_satisfy_the_interface(toy_root, tmp_path):
    from sparsesis.training.train_gan import GanTrainConfig, train_gan
    from sparsesis.interface import Generator
    from sparsesis.loader import load

    members = protocol_members(Generator)
    assert {"classset", "image_size", "guidance_kind", "cfg_scale_label", "from_pretrained", "__call__", "sdedit",
            "inpaint", "reroll", "edit", "info"} <= members  # the walk sees what Pipeline and the demo call
    student = REPO / "checkpoints" / "ours64-student4"
    train_gan(GanTrainConfig(method="spade", run=str(tmp_path / "g"), data=str(toy_root), image_size=32, steps=1,
                             batch_size=2, save_every=1), progress=False)
    folders = {True: student, False: tmp_path / "g" / "export"}
    for diffusion_kind, folder in folders.items():
        model = load(folder)
        assert isinstance(model, Generator)
        for name in members:
            assert hasattr(model, name), (type(model).__name__, name)
            declared = vars(Generator).get(name)  # None for an annotated attribute
            if callable(declared) or isinstance(declared, classmethod):
                takes_what_the_protocol_passes(getattr(model, name), getattr(Generator, name))
        assert type(type(model).from_pretrained(folder, device="cpu", precision="fp32")) is type(model)
        assert model.is_diffusion is diffusion_kind and model.default_steps >= 1
        assert model.classset.num_classes > 0 and isinstance(model.distilled, (dict, type(None)))
        s = model.image_size
        layout = np.full((s, s), 1)
        image = model(layout, seed=0)
        assert image.shape == (s, s, 3) and model.layout_ids(layout).shape == (1, s, s)
        assert set(model.info()) >= {"parameters", "images_seen", "train_hours"}
        region = np.zeros((s, s), bool)
        region[: s // 2] = True
        edited = layout.copy()
        edited[:4, :4] = 2
        if diffusion_kind:
            assert model.guidance_kind in ("autoguidance", "classifier-free") and model.cfg_scale_label >= 1.0
            assert model.guidance_label is not None
            np.testing.assert_array_equal(model.sdedit(layout, image, 0.0, seed=0), image)
            np.testing.assert_array_equal(model.inpaint(layout, image, np.ones((s, s), bool), seed=1), image)
            again = model.reroll(layout, image, region, seed=1)
            np.testing.assert_array_equal(again, model.inpaint(layout, image, ~region, seed=1))
            np.testing.assert_array_equal(again[~region], image[~region])
            assert model.edit(edited, image, layout, seed=1).shape == image.shape
        else:  # what a GAN cannot do: a clear one-line error
            assert model.guidance_label is None and model.guidance_kind is None and model.cfg_scale_label is None
            for refused in (lambda: model.sdedit(layout, image, 0.5), lambda: model.inpaint(layout, image, ~region),
                            lambda: model.reroll(layout, image, region), lambda: model.edit(edited, image, layout)):
                with pytest.raises(ValueError, match="needs a diffusion model") as err:
                    refused()
                assert "\n" not in str(err.value)


BENCHMARKS = sorted(p for p in (REPO / "benchmarks").glob("*.py") if p.name != "common.py")


def run_as_after_the_readme_install(script: Path, cwd: Path, *args: str):
    """``python script args`` as after the README's install (``pip install -r requirements...``): the package
    itself is not installed (the editable install's finder and any path to the repository are taken away)."""
    import os
    import subprocess
    import sys

    code = ("import sys, runpy\n"
            "sys.meta_path[:] = [f for f in sys.meta_path if 'editable' not in getattr(f, '__module__', '').lower()]\n"
            f"sys.path[:] = [p for p in sys.path if p not in ('', {str(REPO)!r})]\n"
            f"sys.path.insert(0, {str(script.parent)!r})\n"  # what `python script` puts first
            f"sys.argv = [{str(script)!r}, *{list(args)!r}]\n"
            f"runpy.run_path({str(script)!r}, run_name='__main__')\n")
    return subprocess.run([sys.executable, "-c", code], cwd=cwd, capture_output=True, text=True, timeout=300,
                          env={**os.environ, "PYTHONPATH": ""})


def test_a_script_without_the_shared_helper_would_not_find_the_package(tmp_path):
    """The check below can fail: a script that imports the package without ``benchmarks/common`` does."""
    script = tmp_path / "bare.py"
    script.write_text("import sparsesis\n")
    proc = run_as_after_the_readme_install(script, tmp_path)
    assert proc.returncode != 0 and "No module named 'sparsesis'" in proc.stderr


@pytest.mark.parametrize("script", BENCHMARKS, ids=lambda p: p.name)
def test_every_benchmark_script_runs_from_a_plain_checkout(script, tmp_path):
    proc = run_as_after_the_readme_install(script, tmp_path, "--help")
    assert proc.returncode == 0, proc.stderr[-2000:]
    assert "usage:" in proc.stdout


def test_a_benchmark_result_records_the_command_that_made_it(tmp_path, monkeypatch):
    """Every JSON a benchmark writes says how to make it again: the script, relative to the repository, and its
    arguments; a result that names its own command keeps it."""
    monkeypatch.syspath_prepend(str(REPO / "benchmarks"))
    import common

    monkeypatch.setattr(sys, "argv", [str(REPO / "benchmarks" / "bench_sampling.py"), "--steps", "4"])
    common.write_result(tmp_path / "a.json", {"x": 1})
    written = json.loads((tmp_path / "a.json").read_text())
    assert written == {"x": 1, "command": "python benchmarks/bench_sampling.py --steps 4"}
    script = REPO / "benchmarks" / "bench_sampling.py"  # a main(argv) called from elsewhere names itself
    assert common.command_line(script, ["--repeats", "3"]) == "python benchmarks/bench_sampling.py --repeats 3"
    common.write_result(tmp_path / "c.json", {"x": 1, "command": "python elsewhere.py"})
    assert json.loads((tmp_path / "c.json").read_text())["command"] == "python elsewhere.py"
