"""The one-step generator's adversarial tuning (``sparsesis.training.onestep``) on the toy data."""
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from conftest import tiny_teacher
from sparsesis.models.checkpoint import STATE_FILE, load_tensors
from sparsesis.training.onestep import OneStepConfig, OneStepTask, train_onestep


@pytest.fixture
def teacher(toy_root, tmp_path):
    return tiny_teacher(toy_root, tmp_path / "teacher", steps=2)


def config(toy_root, teacher, run, **kw):
    base = dict(run=str(run), data=str(toy_root), init=teacher, target=teacher, batch_size=2, bank=2, adv_from=2,
                adv_ramp=1, steps=4, threads=1)
    return OneStepConfig(**{**base, **kw})


def test_the_export_samples_in_one_step_with_the_guidance_of_its_start(toy_root, teacher, tmp_path):
    from sparsesis.synthesizer import Synthesizer

    rec = train_onestep(config(toy_root, teacher, tmp_path / "run"), progress=False)
    assert rec["step"] == 4 and rec["images_seen"] == 8 and "adv" in rec["losses"]
    folder = tmp_path / "run" / "export"
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["sampling"]["steps"] == 1 and cfg["distillation"]["steps"] == 1
    assert cfg["distillation"]["stage"]["images"] == 8 and cfg["onestep"]["train"]["adv_from"] == 2
    assert (folder / "discriminator.safetensors").is_file()
    assert len(list((tmp_path / "run" / "bank").glob("*.safetensors"))) == 2  # two batches, reused after
    synth = Synthesizer.from_pretrained(folder)
    assert synth.default_steps == 1 and synth.distilled
    ids = np.zeros((32, 32), np.int64)
    a, b = synth(ids, seed=3), synth(ids, seed=3)
    np.testing.assert_array_equal(a, b)


def test_a_resumed_run_ends_where_an_uninterrupted_one_does(toy_root, teacher, tmp_path):
    train_onestep(config(toy_root, teacher, tmp_path / "a"), progress=False)
    train_onestep(config(toy_root, teacher, tmp_path / "b", steps=3), progress=False)
    train_onestep(config(toy_root, teacher, tmp_path / "b"), progress=False)
    a, b = load_tensors(tmp_path / "a" / STATE_FILE), load_tensors(tmp_path / "b" / STATE_FILE)
    for k in a:
        if k.startswith(("gen.", "disc.")):
            torch.testing.assert_close(a[k], b[k], rtol=1e-4, atol=1e-5, msg=k)


def test_the_adversarial_term_waits_then_rises(toy_root, teacher, tmp_path):
    from sparsesis.data.sets import load_split

    task = OneStepTask(config(toy_root, teacher, tmp_path / "r", adv_from=10, adv_ramp=4, adv_weight=0.2),
                       load_split("train", 32, toy_root, progress=False))
    assert [task.adv_weight(s) for s in (0, 9, 10, 11, 13, 100)] == pytest.approx([0, 0, 0.05, 0.1, 0.2, 0.2])


def test_unlabelled_pixels_teach_the_discriminator_nothing():
    from sparsesis.models.gan import IGNORE, unlabelled_to_ignore

    ids = torch.tensor([[0, 3, 1, 3]])
    assert unlabelled_to_ignore(ids, 3).tolist() == [[0, IGNORE, 1, IGNORE]]


def test_a_run_goes_on_from_its_export_when_its_folder_is_gone(toy_root, teacher, tmp_path):
    import shutil

    train_onestep(config(toy_root, teacher, tmp_path / "a", steps=3), progress=False)
    export = tmp_path / "kept"
    shutil.copytree(tmp_path / "a" / "export", export)
    rec = train_onestep(config(toy_root, teacher, tmp_path / "b", init=str(export), steps=5), progress=False)
    assert rec["step"] == 5 and rec["images_seen"] == 10  # 3 steps before, 2 after, batch 2
    assert rec["restarts"] == [{"at_step": 3, "from": str(export), "discriminator": "restored", "optimizers": "fresh"}]
    cfg = json.loads((tmp_path / "b" / "export" / "config.json").read_text())
    assert cfg["distillation"]["init"] == teacher and cfg["distillation"]["stage"]["images"] == 10
    base = json.loads((Path(teacher) / "config.json").read_text()).get("distillation", {}).get("total", {"images": 0})
    assert cfg["distillation"]["total"]["images"] == base["images"] + 10
