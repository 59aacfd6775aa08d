"""results/ describes what ships now: every JSON directly in it names the command that wrote it, the commit it was
made at and the SHA-256 of every shipped model folder's weights it measured; whatever measured other weights lives
in results/history/, each file named in its README (results/README.md, "What a results file carries")."""
import hashlib
import json
import re
from functools import lru_cache

import pytest

from conftest import REPO
from sparsesis.evaluation.provenance import GIT_SPEC, ProvenanceError, model_folder

RESULTS = REPO / "results"
HISTORY = RESULTS / "history"
CURRENT = sorted(RESULTS.glob("*.json"))


@lru_cache(maxsize=None)
def weights_sha256(folder: str) -> str:
    """SHA-256 of ``folder/model.safetensors`` (a path relative to the repository), computed once per folder."""
    digest = hashlib.sha256()
    with open(REPO / folder / "model.safetensors", "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def test_results_holds_current_files():
    assert CURRENT, "results/ holds no JSON"


@pytest.mark.parametrize("path", CURRENT, ids=lambda p: p.name)
def test_a_result_names_its_command_commit_and_weights(path):
    result = json.loads(path.read_text())
    assert isinstance(result.get("command"), str) and result["command"].strip(), f"{path.name}: no command"
    assert re.fullmatch(r"[0-9a-f]{7,40}", str(result.get("commit", ""))), f"{path.name}: no commit hash"
    models = result.get("models")
    assert isinstance(models, dict) and models, f"{path.name}: no models map"
    for folder, sha in models.items():
        if GIT_SPEC.fullmatch(folder):  # a folder as an earlier commit held it (a model of the budget curves)
            try:
                held = weights_sha256(str(model_folder(folder).resolve()))  # (an absolute path joins as itself)
            except ProvenanceError as err:
                pytest.skip(f"git history not available here: {err}")
            assert sha == held, f"{path.name}: {folder} does not hold the weights it names"
            continue
        assert folder.startswith("checkpoints/") and (REPO / folder / "model.safetensors").is_file(), \
            f"{path.name}: {folder} is not a model folder under checkpoints/"
        assert sha == weights_sha256(folder), (
            f"{path.name} measured other weights than {folder} holds now: re-measure it, or move it to "
            f"results/history/ with a line in results/history/README.md")


def test_the_results_readme_is_an_index_of_every_file():
    text = (RESULTS / "README.md").read_text()
    assert len(text.splitlines()) <= 250, "results/README.md is an index and the protocols: the record goes to history/"
    unlisted = [p.name for p in RESULTS.iterdir() if p.is_file() and p.name != "README.md" and f"`{p.name}`" not in text]
    assert not unlisted, f"results/README.md does not index {unlisted}"


def test_the_history_readme_names_every_file_in_history():
    text = (HISTORY / "README.md").read_text()
    unnamed = [p.name for p in sorted(HISTORY.iterdir()) if p.name != "README.md" and p.name not in text]
    assert not unnamed, f"results/history/README.md does not name {unnamed}"
