"""One loader for every generator; the config schema's defaults; the training skeleton's shared parts."""
import json
import shutil
from dataclasses import dataclass

import numpy as np
import pytest
import torch

from conftest import REPO
from sparsesis import Synthesizer
from sparsesis.baselines.generator import GanSynthesizer
from sparsesis.models.checkpoint import CheckpointError, save_model_dir
from sparsesis.data.classes import LABELMEFACADE
from sparsesis.models.configs import preset
from sparsesis.loader import find_models, load
from sparsesis.models.schema import DEFAULT_GUIDANCE, diffusion_config
from sparsesis.training.loop import TrainingLoop, config_from_args, config_parser
from sparsesis.models.unet import UNet


def diffusion_folder(folder, **extra):
    torch.manual_seed(0)
    cfg = preset("tiny", LABELMEFACADE.num_channels, 32)
    return save_model_dir(folder, UNet(cfg).state_dict(), diffusion_config(cfg, LABELMEFACADE, **extra))


def gan_folder(folder):
    from sparsesis.baselines.models import build_method
    from sparsesis.models.schema import gan_config

    torch.manual_seed(0)
    m = build_method("spade", LABELMEFACADE, 32, {"base_channels": 8, "disc_channels": 8, "z_dim": 16, "spade_hidden": 8})
    return save_model_dir(folder, m.generator.state_dict(),
                          gan_config(m, LABELMEFACADE, {"images_seen": 32, "train_seconds": 36.0, "parameters_g": 7}))


def test_one_interface_for_diffusion_models_and_gans(tmp_path):
    lay = np.full((32, 32), LABELMEFACADE.unknown_id)
    lay[:10] = 6
    diff, gan = load(diffusion_folder(tmp_path / "d")), load(gan_folder(tmp_path / "g"))
    assert isinstance(diff, Synthesizer) and isinstance(gan, GanSynthesizer)
    for m in (diff, gan):
        one = m(lay, seed=3)
        assert one.shape == (32, 32, 3) and one.dtype == np.uint8
        batch = m(np.stack([lay, lay]), seed=3)
        assert batch.shape == (2, 32, 32, 3) and np.array_equal(batch[0], one)  # image i uses seed + i
        assert not np.array_equal(batch[0], batch[1])
        assert m.image_size == 32 and m.classset.num_classes == 9
        assert {"parameters", "images_seen", "train_hours"} <= set(m.info())
    assert gan.info()["images_seen"] == 32 and gan.info()["train_hours"] == 0.01
    assert gan.guidance_label is None and diff.guidance_label == DEFAULT_GUIDANCE
    image, traj = gan(lay, return_trajectory=True)
    assert traj is None and image.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="no guidance"):
        gan(lay, guidance=2.0)


def test_default_guidance_has_one_home(tmp_path):
    folder = diffusion_folder(tmp_path / "d")
    cfg = json.loads((folder / "config.json").read_text())
    assert cfg["sampling"]["guidance"] == DEFAULT_GUIDANCE
    del cfg["sampling"]  # a config without sampling defaults falls back to the same value
    (folder / "config.json").write_text(json.dumps(cfg))
    assert Synthesizer.from_pretrained(folder).default_guidance == DEFAULT_GUIDANCE


def test_loader_errors_are_clear(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        load(tmp_path / "missing")
    seg = tmp_path / "seg"
    seg.mkdir()
    (seg / "config.json").write_text(json.dumps({"kind": "sparsesis-segmenter"}))
    with pytest.raises(CheckpointError, match="not a generator"):
        load(seg)
    g = gan_folder(tmp_path / "g")
    cfg = json.loads((g / "config.json").read_text())
    cfg["model"]["base_channels"] = 16  # weights no longer fit
    (g / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):
        load(g)


def test_find_models_orders_preferred_then_diffusion_then_gans(tmp_path):
    gan_folder(tmp_path / "a_gan")
    diffusion_folder(tmp_path / "b_teacher")
    diffusion_folder(tmp_path / "c_student")
    (tmp_path / "notes").mkdir()
    assert list(find_models(tmp_path, preferred=("c_student",))) == ["c_student", "b_teacher", "a_gan"]


def test_inference_code_imports_no_training_module():
    import subprocess
    import sys

    code = ("import sys, sparsesis.loader, sparsesis.baselines.models, sparsesis.evaluation.evaluate, sparsesis.models.upsampler; "
            "bad = [m for m in sys.modules if m.startswith('sparsesis') and "
            "m.split('.')[-1] in ('train', 'distill', 'training', 'train_upsampler')]; print(bad)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout.strip()
    assert out == "[]"


@dataclass(frozen=True)
class _Cfg:
    run: str = "runs/x"
    steps: int = 10
    lr: float = 1e-3
    guidance: float | None = None
    counts: int | tuple[int, ...] = (1, 2)
    masking: str = "classwise"
    verbose: bool = False


def test_config_flags_come_from_the_dataclass():
    p = config_parser(_Cfg, "prog", names={"run": "--run-dir"}, choices={"masking": ["classwise", "none"]})
    assert config_from_args(_Cfg, p.parse_args([])) == _Cfg()
    cfg = config_from_args(_Cfg, p.parse_args(["--run-dir", "r", "--steps", "3", "--guidance", "4", "--counts", "5",
                                               "--verbose"]))
    assert cfg == _Cfg(run="r", steps=3, guidance=4.0, counts=(5,), verbose=True)
    with pytest.raises(SystemExit):
        p.parse_args(["--masking", "sometimes"])


def test_training_loop_stops_at_total_deadline_or_signal():
    import os
    import signal

    with TrainingLoop(5, step=2, progress=False) as loop:
        while loop.running():
            loop.advance()
    assert loop.step == 5
    with TrainingLoop(100, progress=False) as loop:
        while loop.running():
            if loop.advance() == 3:
                os.kill(os.getpid(), signal.SIGTERM)  # handled: the loop ends, the process does not
    assert loop.step == 3 and loop.stopped
    with TrainingLoop(100, minutes=1e-9, progress=False) as loop:
        assert not loop.running()


def test_training_state_round_trips_and_reads_the_earlier_layout(tmp_path):
    from sparsesis.models.checkpoint import flatten_optimizer, save_tensors_atomic
    from sparsesis.training.loop import load_state, save_state

    torch.manual_seed(0)
    net = torch.nn.Linear(3, 2)
    opt = torch.optim.AdamW(net.parameters(), lr=1e-3)
    net(torch.randn(4, 3)).sum().backward()
    opt.step()
    save_state(tmp_path / "s.safetensors", {"model": net}, {"opt": opt}, step="7", record={"images_seen": 112})
    net2 = torch.nn.Linear(3, 2)
    opt2 = torch.optim.AdamW(net2.parameters(), lr=1e-3)
    meta = load_state(tmp_path / "s.safetensors", {"model": net2}, {"opt": opt2})
    assert meta["step"] == "7" and json.loads(meta["record"]) == {"images_seen": 112}
    torch.testing.assert_close(net2.weight, net.weight)
    torch.testing.assert_close(opt2.state_dict()["state"][0]["exp_avg"], opt.state_dict()["state"][0]["exp_avg"])
    # a run folder written by the earlier trainers kept the param groups under "param_groups"
    tensors, groups = flatten_optimizer(opt.state_dict())
    tensors.update({f"model.{k}": v for k, v in net.state_dict().items()})
    save_tensors_atomic(tmp_path / "old.safetensors", tensors, {"step": "7", "param_groups": groups})
    assert load_state(tmp_path / "old.safetensors", {"model": net2}, {"opt": opt2})["step"] == "7"


def test_autoguidance_and_interval_guidance_in_the_synthesizer(tmp_path):
    """A guide folder (an earlier model) steers the sampler: the same seed, a different picture than
    classifier-free guidance; the folder's config can name its default guide; a student cannot guide."""
    import json

    from sparsesis import Synthesizer

    main = Synthesizer.from_pretrained(REPO / "checkpoints" / "ours64")
    guide = Synthesizer.from_pretrained(REPO / "checkpoints" / "ours64-student4")
    layout = np.full((64, 64), main.classset.unknown_id)
    layout[:20] = main.classset.names.index("sky")
    layout[30:] = main.classset.names.index("building")
    cfg = main(layout, steps=3, seed=1, guidance=2.0, guide="cfg")
    with pytest.raises(ValueError, match="distilled student cannot guide"):
        main(layout, steps=3, seed=1, guidance=2.0, guide=guide)
    folder = tmp_path / "main"
    shutil.copytree(REPO / "checkpoints" / "ours64", folder, ignore=shutil.ignore_patterns("guide"))
    shutil.copytree(REPO / "checkpoints" / "ours64", tmp_path / "guide", ignore=shutil.ignore_patterns("guide"))
    with torch.no_grad():  # a weaker, different guide
        weak = Synthesizer.from_pretrained(tmp_path / "guide")
        for p in weak.model.parameters():
            p.mul_(0.9)
    auto = main(layout, steps=3, seed=1, guidance=2.0, guide=weak, cfg_scale=1.0)  # not the folder's default 2
    assert not np.array_equal(auto, cfg)
    # classifier-free guidance on top of autoguidance: neither alone; at autoguidance 1 it is classifier-free alone
    both = main(layout, steps=3, seed=1, guidance=2.0, guide=weak, cfg_scale=2.0)
    assert not np.array_equal(both, auto) and not np.array_equal(both, cfg)
    np.testing.assert_array_equal(main(layout, steps=3, seed=1, guidance=1.0, guide=weak, cfg_scale=2.0), cfg)
    with pytest.raises(ValueError, match="no guide here"):
        main(layout, steps=3, seed=1, guidance=2.0, guide="cfg", cfg_scale=2.0)
    with pytest.raises(ValueError, match="cfg_scale must be"):
        main(layout, steps=3, seed=1, guide=weak, cfg_scale=-1)
    np.testing.assert_array_equal(main(layout, steps=3, seed=1, guidance=1.0, guide=weak),
                                  main(layout, steps=3, seed=1, guidance=1.0, guide="cfg"))  # scale 1: no guide at all
    # guidance only at the first step (t = 1 down to 2/3) is neither the guided nor the plain sampler
    early = main(layout, steps=3, seed=1, guidance=2.0, guide="cfg", interval=(0.9, 1.0))
    assert not np.array_equal(early, cfg)
    assert not np.array_equal(early, main(layout, steps=3, seed=1, guidance=1.0))
    np.testing.assert_array_equal(main(layout, steps=3, seed=1, guidance=2.0, guide="cfg", interval=(0.0, 1.0)), cfg)
    # the shipped teacher's default sampler: autoguidance by its guide/ folder with classifier-free guidance on top
    np.testing.assert_array_equal(main(layout, steps=3, seed=1),
                                  main(layout, steps=3, seed=1, guidance=main.default_guidance, cfg_scale=main.cfg_scale_label,
                                       guide=REPO / "checkpoints" / "ours64" / "guide"))
    assert main.guidance_kind == "autoguidance" and main.cfg_scale_label > 1
    config = json.loads((folder / "config.json").read_text())
    config["sampling"]["guide"] = "guide"  # a folder that is not there
    (folder / "config.json").write_text(json.dumps(config))
    with pytest.raises(CheckpointError, match="names the guide 'guide'.*guide='cfg'"):
        Synthesizer.from_pretrained(folder)(layout, steps=3, seed=1, guidance=2.0)
    config["sampling"]["guide"] = "../guide"
    (folder / "config.json").write_text(json.dumps(config))
    np.testing.assert_array_equal(Synthesizer.from_pretrained(folder)(layout, steps=3, seed=1, guidance=2.0),
                                  main(layout, steps=3, seed=1, guidance=2.0, guide=tmp_path / "guide"))
    np.testing.assert_array_equal(Synthesizer.from_pretrained(folder)(layout, steps=3, seed=1, guidance=2.0,
                                                                      guide="cfg"), cfg)
