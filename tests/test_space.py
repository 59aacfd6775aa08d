"""What a Hugging Face Space needs to run the demo from this repository as it is."""
import json
import re

import pytest

from conftest import REPO


def front_matter() -> dict:
    text = (REPO / "README.md").read_text()
    m = re.match(r"---\n(.*?)\n---\n", text, re.S)
    assert m, "README.md must open with the Space's YAML front matter"
    return dict(line.split(": ", 1) for line in m.group(1).splitlines() if ": " in line)


def requirements() -> dict:
    reqs = {}
    for line in (REPO / "requirements.txt").read_text().splitlines():
        line = line.split("#")[0].strip()
        if line:
            name = re.split(r"[<>=!~ ]", line, 1)[0].lower()
            reqs[name] = line
    return reqs


def test_front_matter_points_at_the_app_and_the_pinned_gradio():
    fm = front_matter()
    assert fm["sdk"] == "gradio" and (REPO / fm["app_file"]).is_file() and fm["app_file"] == "demo.py"
    assert requirements()["gradio"] == f"gradio=={fm['sdk_version']}"


def test_requirements_hold_what_the_app_needs_and_no_test_tools():
    reqs = requirements()
    for needed in ("torch", "numpy", "opencv-python-headless", "safetensors", "tqdm", "gradio"):
        assert needed in reqs, needed
    assert reqs["torch"] == "torch==2.13.0"
    for dev in ("pytest", "jupyter", "nbmake", "playwright", "nbclient"):
        assert dev not in reqs, f"{dev} belongs in requirements-dev.txt"


def test_every_file_the_app_loads_is_in_place():
    import demo as _  # noqa: F401  (the app module imports with what requirements.txt installs)
    from sparsesis.loader import find_models, load
    from sparsesis.pipeline import UPSAMPLER_DIR
    from sparsesis.models.segmenter import Segmenter
    from sparsesis.models.upsampler import Upsampler

    ckpt = REPO / "checkpoints"
    models = find_models(ckpt)
    assert {"ours64-student4", "ours64", "spade64", "oasis64", "sean64"} <= set(models)
    for folder in models.values():
        assert (folder / "model.safetensors").is_file() and (folder / "config.json").is_file()
        load(folder)
    Upsampler.from_pretrained(ckpt / UPSAMPLER_DIR).check_compatible(load(models["ours64-student4"]).classset)
    Segmenter.from_pretrained(ckpt / "seg64")
    json.loads((REPO / "results" / "segmenter.json").read_text())["real_held_out"]["miou"]
    sketches = sorted((REPO / "examples").glob("*_sketch.png"))
    assert sketches and all(p.with_name(p.name.replace("_sketch", "_photo")).is_file() for p in sketches)


def test_large_files_travel_as_the_readme_says():
    """The Hub refuses plain-git files over 10 MB: the README names the upload that stores them."""
    big = [p for p in (REPO / "checkpoints").rglob("*") if p.is_file() and p.stat().st_size > 10 * 2 ** 20]
    readme = (REPO / "README.md").read_text()
    if big:
        assert "hf upload" in readme and 'git lfs track "*.safetensors"' in readme


@pytest.mark.parametrize("name", ["README.md", "results/README.md", "checkpoints/README.md"])
def test_the_words_speak_of_the_project_not_the_process(name):
    text = (REPO / name).read_text()
    assert not re.search(r"\bsessions?\b[ -]?\d|\bissue ?#?\d+|shipped until", text, re.I)
