"""Rebuild a shipped model from the recipe its folder carries.

    python -m sparsesis.training.reproduce --list                  # every shipped folder with a recipe
    python -m sparsesis.training.reproduce ours64-student4 --dry-run   # the chain of commands, budgets, hours it took
    python -m sparsesis.training.reproduce ours64-student4             # run it (resumable: run it again after a stop)
    python -m sparsesis.training.reproduce --smoke                 # every chain at toy size, each stage checked

A recipe is data in the folder's ``config.json`` under ``"recipe"``:

    {"run": "students",                 # the run folder's name (recipes sharing a training share it)
     "needs": ["ours64", "ours64/guide"],  # shipped folders its stages read ("@ours64" in an argument)
     "stages": [{"name", "module", "args", "smoke", "budget"}, ..., {"name": "ship", "from": ..., "config": {...}}],
     "made": "how the shipped weights were actually made, where that differs from the clean chain"}

A training stage runs ``python -m <module>`` with ``args`` as flags (``{run}`` is the run folder, ``{data}`` the
data folder); a stage with ``"select"`` chooses on *training* layouts or photos (a script of ``benchmarks/``); the
``ship`` stage copies the chosen weights into the output folder with the recipe and the config's inference
settings. Each trainer resumes from its run folder, and a stage that finished leaves ``{run}/.done_<stage>``, so
running a recipe again goes on where it stopped. Upstream folders are the shipped ones (a student is rebuilt
from the shipped teacher); ``--smoke`` builds every chain on a generated toy data set instead, upstream first,
with each stage's ``smoke`` overrides (tiny models, a few steps), and loads every folder it makes.
"""
from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ..models.checkpoint import CONFIG_FILE, MODEL_FILE, CheckpointError, copy_model_dir

CHECKPOINTS = Path(__file__).resolve().parents[2] / "checkpoints"


class RecipeError(ValueError):
    """A recipe that cannot run as written."""


def find_recipes(root: str | Path = CHECKPOINTS) -> dict[str, dict]:
    """``{name: recipe}`` for every shipped folder under ``root`` (one level down, and a teacher's ``guide/``) whose
    config carries one. ``resume/`` holds where trainings stopped, not shipped models."""
    root, found = Path(root), {}
    for cfg in sorted(root.glob("*/config.json")) + sorted(root.glob("*/guide/config.json")):
        name = str(cfg.parent.relative_to(root))
        if name.startswith("resume"):
            continue
        recipe = json.loads(cfg.read_text()).get("recipe")
        if recipe is not None:
            found[name] = recipe
    return found


def order(recipes: dict[str, dict], names: list[str]) -> list[str]:
    """``names`` and what they need, upstream first."""
    out: list[str] = []

    def visit(name, path=()):
        if name in out:
            return
        if name in path:
            raise RecipeError(f"recipes need each other in a circle: {' -> '.join(path + (name,))}")
        if name not in recipes:
            raise RecipeError(f"no recipe named {name!r}; python -m sparsesis.training.reproduce --list shows them")
        for dep in recipes[name].get("needs", []):
            visit(dep, path + (name,))
        out.append(name)

    for n in names:
        visit(n)
    return out


def _value(v, places: dict[str, str]):
    if isinstance(v, str):
        if v.startswith("@"):
            return places[v[1:]]
        return v.format(**places) if "{" in v else v
    return v


def flags(args: dict, places: dict[str, str]) -> list[str]:
    """A stage's arguments as command-line flags: ``None`` leaves a flag out, booleans are ``--x``/``--no-x``, a
    list gives one flag with several values, ``{"repeat": [...]}`` the flag once per value (a ``*`` in a value is
    expanded to the files it matches, sorted)."""
    import glob

    argv = []
    for key, v in args.items():
        flag = "--" + key.replace("_", "-")
        if v is None:
            continue
        if isinstance(v, dict):
            values = v["repeat"] if isinstance(v["repeat"], list) else [v["repeat"]]
            for x in (str(_value(x, places)) for x in values):
                for item in (sorted(glob.glob(x)) or [x]) if "*" in x else [x]:
                    argv += [flag, item]
        elif isinstance(v, bool):
            argv.append(flag if v else "--no-" + key.replace("_", "-"))
        elif isinstance(v, (list, tuple)):
            argv += [flag, *(str(_value(x, places)) for x in v)]
        else:
            argv += [flag, str(_value(v, places))]
    return argv


def stage_command(stage: dict, places: dict[str, str], smoke: bool = False) -> list[str]:
    args = {**stage.get("args", {}), **(stage.get("smoke", {}) if smoke else {})}
    if "module" in stage:
        return [sys.executable, "-m", stage["module"], *flags(args, places)]
    if "script" in stage:
        return [sys.executable, stage["script"], *flags(args, places)]
    raise RecipeError(f"stage {stage.get('name')!r} has neither a module nor a script to run")


def describe(name: str, recipe: dict, places: dict[str, str]) -> str:
    """The chain of commands with their budgets, as ``--dry-run`` prints it."""
    lines = [f"# {name}: " + recipe.get("what", ""), f"# run folder: {places['run']}"]
    for st in recipe["stages"]:
        budget = st.get("budget", {})
        spent = ", ".join(f"{k} {v:,}" if isinstance(v, int) else f"{k} {v}" for k, v in budget.items())
        lines.append(f"## {st['name']}" + (f" ({spent})" if spent else ""))
        if st["name"] == "ship":
            lines.append(f"copy {_value(st['from'], places)} -> {places['out']}"
                         + (f" with {json.dumps(st['config'])}" if st.get("config") else ""))
        else:
            lines.append("python " + " ".join(stage_command(st, places)[1:]))
    if recipe.get("made"):
        lines.append(f"# how the shipped weights were made: {recipe['made']}")
    return "\n".join(lines)


def ship_stage(recipe: dict, stage: dict, places: dict[str, str]) -> Path:
    """Copy the chosen weights to ``places["out"]`` with the config's inference settings and the recipe."""
    source = Path(_value(stage["from"], places))
    if not (source / MODEL_FILE).is_file():
        raise CheckpointError(f"the ship stage's source {source} holds no {MODEL_FILE}: run the stages before it")
    config = json.loads((source / CONFIG_FILE).read_text())
    for key, patch in stage.get("config", {}).items():
        config[key] = {**config.get(key, {}), **patch} if isinstance(patch, dict) else patch
    config["recipe"] = recipe
    copy_model_dir(source, places["out"], config)
    for sub, folder in stage.get("include", {}).items():  # a folder a model names inside its own (a guide)
        inner = Path(_value(folder, places))
        copy_model_dir(inner, Path(places["out"]) / sub, json.loads((inner / CONFIG_FILE).read_text()))
    return Path(places["out"])


def run_in_subprocess(cmd: list[str]) -> str | None:
    """Run a stage as its own process (a real training); -> None, or the last line it printed on failure."""
    result = subprocess.run(cmd, stderr=subprocess.PIPE, text=True)
    if result.returncode:
        return (result.stderr.strip().splitlines()[-1:] or ["(no message)"])[0]
    return None


def run_in_process(cmd: list[str]) -> str | None:
    """Run a toy-size stage's module in this process, its output silenced (seconds instead of a fresh interpreter
    each); -> None, or why it failed."""
    import contextlib
    import io
    import runpy

    module = cmd[2] if cmd[1] == "-m" else None
    argv = cmd[3:] if module else cmd[2:]
    import torch

    saved, threads = sys.argv, torch.get_num_threads()
    sys.argv = [module or cmd[1], *argv]
    try:
        with contextlib.redirect_stdout(io.StringIO()), contextlib.redirect_stderr(io.StringIO()):
            if module:
                runpy.run_module(module, run_name="__main__", alter_sys=True)
            else:
                runpy.run_path(cmd[1], run_name="__main__")
    except SystemExit as stop:
        if stop.code not in (None, 0):
            return str(stop.code)
    except Exception as err:  # noqa: BLE001  (reported as the stage's failure, with its words)
        return f"{type(err).__name__}: {err}"
    finally:
        sys.argv = saved
        torch.set_num_threads(threads)  # a stage's --threads is its own
    return None


def run_recipe(name: str, recipe: dict, places: dict[str, str], smoke: bool = False, log=print) -> Path:
    """Run every stage not yet done; -> the output folder."""
    run = Path(places["run"])
    run.mkdir(parents=True, exist_ok=True)
    for st in recipe["stages"]:
        done = run / f".done_{name.replace('/', '_')}_{st['name']}"
        if st["name"] == "ship":
            return ship_stage(recipe, st, places)
        if done.is_file():
            log(f"{name}: {st['name']} done before")
            continue
        if smoke and st.get("select"):
            log(f"{name}: {st['name']} skipped at toy size (it chooses on training data; the ship stage's "
                "smoke source is the run's export)")
            continue
        cmd = stage_command(st, places, smoke)
        log(f"{name}: {st['name']}: python " + " ".join(cmd[1:]))
        t0 = time.time()
        failed = run_in_process(cmd) if smoke else run_in_subprocess(cmd)
        if failed:
            raise RecipeError(f"{name}: stage {st['name']} failed ({failed}); run the same command again after "
                              "fixing it: finished stages are not repeated")
        done.write_text(json.dumps({"seconds": round(time.time() - t0, 1)}) + "\n")
    raise RecipeError(f"recipe {name!r} has no ship stage")


def check_loads(folder: Path) -> str:
    """Load a built folder the way its users do; -> its kind."""
    from ..loader import checkpoint_kind, load
    from ..models.schema import SEGMENTER_KIND, UPSAMPLER_KIND

    kind = checkpoint_kind(folder)
    if kind == UPSAMPLER_KIND:
        from ..models.upsampler import Upsampler
        Upsampler.from_pretrained(folder)
    elif kind == SEGMENTER_KIND:
        from ..models.segmenter import Segmenter
        Segmenter.from_pretrained(folder)
    else:
        load(folder)
    return kind


def smoke(recipes: dict[str, dict], root: Path, log=print) -> dict[str, str]:
    """Every chain at toy size on a generated data set, upstream first; -> ``{name: kind}`` of what loaded."""
    from ..data.toydata import make_toy_dataset

    data = make_toy_dataset(root / "data")
    built = {}
    places = {"data": str(data)}
    for name in order(recipes, sorted(recipes)):
        recipe = recipes[name]
        out = root / "models" / name
        here = {**places, "run": str(root / "runs" / recipe.get("run", name)), "out": str(out),
                **{dep: str(root / "models" / dep) for dep in recipe.get("needs", [])}}
        stages = [{**st, "from": st.get("smoke_from", st["from"])} if st["name"] == "ship" else st
                  for st in recipe["stages"]]
        run_recipe(name, {**recipe, "stages": stages}, here, smoke=True, log=log)
        built[name] = check_loads(out)
        log(f"{name}: {built[name]} folder at {out} loads")
    return built


def _as_typed(path: Path) -> str:
    """A path relative to the working folder where it lies under it (as a person would type it)."""
    try:
        return str(path.relative_to(Path.cwd()))
    except ValueError:
        return str(path)


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.training.reproduce", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("name", nargs="?", help="a shipped folder's name under checkpoints/ (see --list)")
    p.add_argument("--list", action="store_true", help="name every shipped folder with a recipe")
    p.add_argument("--dry-run", action="store_true", help="print the chain of commands and budgets, run nothing")
    p.add_argument("--smoke", action="store_true", help="every chain at toy size in a temporary folder")
    p.add_argument("--data", default=None, help="the data folder (default $SPARSESIS_DATA)")
    p.add_argument("--runs", default="runs/reproduce", help="where the run folders go")
    p.add_argument("--out", default=None, help="the rebuilt folder (default <runs>/<name>/model; never checkpoints/)")
    a = p.parse_args(argv)
    recipes = find_recipes()
    try:
        if a.list:
            for name, r in recipes.items():
                print(f"{name:18s} {r.get('what', '')}")
            return
        if a.smoke:
            with tempfile.TemporaryDirectory(prefix="sparsesis-smoke-") as tmp:
                built = smoke(recipes, Path(tmp))
            print(f"smoke: {len(built)} folders built and loaded: {', '.join(built)}")
            return
        if not a.name:
            p.error("name a shipped folder, or pass --list or --smoke")
        if a.name not in recipes:
            raise RecipeError(f"no recipe named {a.name!r}; python -m sparsesis.training.reproduce --list shows them")
        recipe = recipes[a.name]
        import os

        data = a.data or os.environ.get("SPARSESIS_DATA") or "data/labelmefacade"
        places = {"data": data, "run": str(Path(a.runs) / recipe.get("run", a.name)),
                  "out": a.out or str(Path(a.runs) / a.name / "model"),
                  **{dep: _as_typed(CHECKPOINTS / dep) for dep in recipe.get("needs", [])}}
        if a.dry_run:
            print(describe(a.name, recipe, places))
            return
        print(f"built {run_recipe(a.name, recipe, places)}")
    except (RecipeError, CheckpointError) as err:
        sys.exit(f"error: {err}")


if __name__ == "__main__":
    main()
