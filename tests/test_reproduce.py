"""Every shipped folder carries the recipe that made it, and ``python -m sparsesis.training.reproduce`` rebuilds it."""
import importlib
import json

import pytest

from sparsesis.training.reproduce import CHECKPOINTS, RecipeError, find_recipes, flags, main, order

# what a recipe may set differently from its trainer's defaults: where it runs, on which data and machine, and
# the length of a stage that stops a longer training early (the teacher's guide)
RUN_SPECIFIC = {"run_dir", "data", "threads", "precision", "minutes", "method", "steps", "init_from", "seed",
                "save_every", "snapshot_every", "sample_every"}
CONFIGS = {"sparsesis.training.train": ("sparsesis.training.train", "TrainConfig"), "sparsesis.training.distill": ("sparsesis.training.distill", "DistillConfig"),
           "sparsesis.training.train_upsampler": ("sparsesis.training.train_upsampler", "UpsamplerTrainConfig"),
           "sparsesis.training.train_gan": ("sparsesis.training.train_gan", "GanTrainConfig"),
           "sparsesis.training.onestep": ("sparsesis.training.onestep", "OneStepConfig")}


def shipped_folders() -> set[str]:
    found = {str(p.parent.relative_to(CHECKPOINTS)) for p in CHECKPOINTS.glob("*/model.safetensors")}
    return found | {str(p.parent.relative_to(CHECKPOINTS)) for p in CHECKPOINTS.glob("*/guide/model.safetensors")}


def test_every_shipped_folder_has_a_recipe():
    assert set(find_recipes()) == shipped_folders()


def test_list_and_dry_run_name_every_folder_with_its_chain(capsys):
    main(["--list"])
    listed = {line.split()[0] for line in capsys.readouterr().out.splitlines()}
    assert listed == shipped_folders()
    for name in sorted(listed):
        main([name, "--dry-run"])
        out = capsys.readouterr().out
        assert "python -m sparsesis." in out and "images" in out and f"-> runs/reproduce/{name}/model" in out


def test_the_trainers_defaults_are_the_shipped_recipes():
    """The last training stage of each recipe with a given trainer uses that trainer's defaults."""
    checked = 0
    for name, recipe in find_recipes().items():
        last = {st["module"]: st for st in recipe["stages"] if st.get("module") in CONFIGS}
        for module, stage in last.items():
            mod, cls = CONFIGS[module]
            default = getattr(importlib.import_module(mod), cls)()
            for key, value in stage["args"].items():
                if key in RUN_SPECIFIC:
                    continue
                field = "run" if key == "run_dir" else key
                want = getattr(default, field)
                if isinstance(want, tuple):
                    want = list(want)
                assert value == (str(want).replace("checkpoints/", "@") if isinstance(value, str) and value.startswith("@") else want), \
                    f"{name}: {module} --{key.replace('_', '-')} is {value!r} in the recipe, {want!r} by default"
                checked += 1
    assert checked > 30


def test_flags_and_order():
    places = {"run": "r", "ours64": "checkpoints/ours64"}
    assert flags({"teacher": "@ours64", "out": "{run}/x", "steps": [8, 16], "diffaug": True, "level_input": False,
                  "guide": None, "gan": {"repeat": ["a={run}", "b"]}}, places) == [
        "--teacher", "checkpoints/ours64", "--out", "r/x", "--steps", "8", "16", "--diffaug", "--no-level-input",
        "--gan", "a=r", "--gan", "b"]
    recipes = {"a": {"needs": ["b"]}, "b": {"needs": []}, "c": {"needs": ["c"]}}
    assert order(recipes, ["a"]) == ["b", "a"]
    with pytest.raises(RecipeError, match="circle"):
        order(recipes, ["c"])
    with pytest.raises(RecipeError, match="no recipe named 'x'"):
        order(recipes, ["x"])


def test_an_unknown_name_gets_one_line(capsys):
    with pytest.raises(SystemExit, match="no recipe named 'ours256'"):
        main(["ours256", "--dry-run"])


@pytest.mark.slow
def test_every_chain_builds_at_toy_size_and_loads(tmp_path):
    from sparsesis.training.reproduce import smoke

    built = smoke(find_recipes(), tmp_path, log=lambda *_: None)
    assert set(built) == shipped_folders()
    assert json.loads((tmp_path / "models" / "ours64" / "guide" / "config.json").read_text())["kind"]
    assert json.loads((tmp_path / "models" / "ours64" / "config.json").read_text())["sampling"]["guide"] == "guide"
    assert json.loads((tmp_path / "models" / "upsampler4x" / "config.json").read_text())["defaults"]["detail_scale"] == 0.8
