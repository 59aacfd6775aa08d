import json
from dataclasses import replace

import numpy as np
import pytest
import torch

from sparsesis import Synthesizer
from sparsesis.models.checkpoint import (CheckpointError, load_model_dir, load_tensors, save_model_dir, save_npz_atomic,
                                  save_tensors_atomic)
from sparsesis.data.classes import one_hot
from sparsesis.models.configs import preset
from sparsesis.models.diffusion import diffusion_loss
from sparsesis.data.layouts import LayoutError
from sparsesis.training.train import TrainConfig, learning_rate, parse_args, train
from sparsesis.models.unet import UNet

TINY = preset("tiny", label_channels=5)


def test_unet_shapes_and_layout_check():
    m = UNet(TINY)
    x, t = torch.randn(2, 3, 32, 32), torch.rand(2)
    lay = one_hot(torch.randint(0, 5, (2, 32, 32)), 5)
    assert m(x, t, lay).shape == (2, 3, 32, 32)
    with pytest.raises(ValueError, match="layout must be"):
        m(x, t, lay[:, :4])
    assert preset("64", 10).image_size == 64
    with pytest.raises(ValueError, match="unknown model preset"):
        preset("huge", 10)


def test_layout_changes_the_output():
    torch.manual_seed(0)
    m = UNet(TINY)
    for p in m.parameters():  # zero-initialised output layers would hide the dependence
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(1, 3, 32, 32), torch.rand(1)
    a = m(x, t, one_hot(torch.zeros(1, 32, 32, dtype=torch.long), 5))
    b = m(x, t, one_hot(torch.full((1, 32, 32), 4), 5))
    assert (a - b).abs().mean() > 0.05 * a.abs().mean()


def test_cached_layout_branch_gives_the_same_output():
    """UNet.condition evaluates the layout branch once; forward on it must equal forward on the layout."""
    torch.manual_seed(0)
    m = UNet(TINY).eval()
    for p in m.parameters():
        if p.abs().sum() == 0:
            torch.nn.init.normal_(p, std=0.05)
    x, t = torch.randn(3, 3, 32, 32), torch.rand(3)
    lay = one_hot(torch.randint(0, 5, (3, 32, 32)), 5)
    with torch.no_grad():
        direct = m(x, t, lay)
        cond = m.condition(lay)
        assert cond.batch_size == 3
        assert torch.equal(m(x, t, cond), direct)
        with pytest.raises(ValueError, match="batch size"):
            m(x[:2], t[:2], cond)
        with pytest.raises(ValueError, match="layout must be"):
            m.condition(lay[:, :, :16])


def test_tiny_model_overfits_one_batch():
    torch.manual_seed(0)
    m = UNet(TINY)
    g = torch.Generator().manual_seed(0)
    x = torch.rand(4, 3, 32, 32, generator=g) * 2 - 1
    lay = one_hot(torch.randint(0, 5, (4, 32, 32), generator=g), 5)
    t, noise = torch.rand(4, generator=g), torch.randn(4, 3, 32, 32, generator=g)
    opt = torch.optim.AdamW(m.parameters(), lr=2e-3)
    losses = []
    for _ in range(150):
        loss = diffusion_loss(lambda z, tt: m(z, tt, lay), x, t, noise, snr_gamma=None).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        losses.append(loss.item())
    assert losses[-1] < 0.2 * losses[0]


def test_checkpoint_round_trip_exact(tmp_path):
    m = UNet(TINY)
    sd = {k: v + 0.01 * torch.randn_like(v) for k, v in m.state_dict().items()}
    save_model_dir(tmp_path / "ck", sd, {"kind": "x"}, dtype=None)
    cfg, back = load_model_dir(tmp_path / "ck")
    assert cfg == {"kind": "x"}
    for k in sd:
        assert torch.equal(sd[k], back[k])
    # fp16 export: exact for values that fp16 represents
    save_model_dir(tmp_path / "half", sd, {"kind": "x"})
    _, half = load_model_dir(tmp_path / "half")
    for k in sd:
        assert torch.equal(sd[k].half().float(), half[k])


def test_missing_and_corrupt_checkpoints(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Synthesizer.from_pretrained(tmp_path / "nothing")
    (tmp_path / "ck").mkdir()
    with pytest.raises(CheckpointError, match="config.json is missing"):
        Synthesizer.from_pretrained(tmp_path / "ck")
    (tmp_path / "ck" / "config.json").write_text(json.dumps({"kind": "sparsesis-diffusion"}))
    (tmp_path / "ck" / "model.safetensors").write_bytes(b"\x00garbage" * 10)
    with pytest.raises(CheckpointError, match="corrupt"):
        Synthesizer.from_pretrained(tmp_path / "ck")


def test_atomic_write_leaves_old_file_on_failure(tmp_path):
    path = tmp_path / "a.safetensors"
    save_tensors_atomic(path, {"w": torch.ones(3)})
    with pytest.raises(Exception):
        save_tensors_atomic(path, {"w": "not a tensor"})
    assert torch.equal(load_tensors(path)["w"], torch.ones(3))
    assert [p.name for p in tmp_path.iterdir()] == ["a.safetensors"]  # no temp files left


def test_atomic_npz_keeps_its_name_and_the_old_file_on_failure(tmp_path):
    path = tmp_path / "b.npz"
    save_npz_atomic(path, {"x": np.arange(3)}, compressed=True)
    class Unconvertible:
        def __array__(self, *args, **kwargs):
            raise ValueError("cannot be an array")

    with pytest.raises(ValueError, match="cannot be an array"):
        save_npz_atomic(path, {"x": np.arange(3), "bad": Unconvertible()})
    with np.load(path) as f:
        np.testing.assert_array_equal(f["x"], np.arange(3))
    assert [p.name for p in tmp_path.iterdir()] == ["b.npz"]  # no temp file, no "b.npz.npz"


def _cfg(toy_root, run, steps):
    return TrainConfig(run=str(run), data=str(toy_root), preset="tiny", image_size=32, batch_size=4, steps=steps,
                       save_every=2, sample_every=10 ** 9, warmup_steps=2, lr=1e-3, threads=2)


def _state(run):
    return load_tensors(run / "state.safetensors")


def test_resume_continues_exactly(toy_root, tmp_path):
    straight = train(_cfg(toy_root, tmp_path / "a", 6))
    train(_cfg(toy_root, tmp_path / "b", 3))
    resumed = train(_cfg(toy_root, tmp_path / "b", 6))
    assert straight["step"] == resumed["step"] == 6
    assert resumed["images_seen"] == 6 * 4
    a, b = _state(tmp_path / "a"), _state(tmp_path / "b")
    for k in a:
        if k.startswith(("model.", "ema.")):
            torch.testing.assert_close(a[k], b[k], rtol=0, atol=1e-6)


def test_snapshots_keep_the_ema_weights_at_their_step(toy_root, tmp_path):
    """--snapshot-every keeps loadable model folders named by images seen; the last one is the export."""
    record = train(replace(_cfg(toy_root, tmp_path / "a", 4), snapshot_every=2))
    snaps = sorted(p.name for p in (tmp_path / "a" / "snapshots").iterdir())
    assert snaps == ["images_0000008", "images_0000016"] and record["images_seen"] == 16
    first, last = (Synthesizer.from_pretrained(tmp_path / "a" / "snapshots" / n) for n in snaps)
    assert (first.config["record"]["step"], last.config["record"]["step"]) == (2, 4)
    export = Synthesizer.from_pretrained(tmp_path / "a" / "export")
    for a, b in zip(last.model.state_dict().values(), export.model.state_dict().values()):
        torch.testing.assert_close(a, b, rtol=0, atol=0)
    assert any((x != y).any() for x, y in zip(first.model.state_dict().values(), last.model.state_dict().values()))
    assert parse_args(["--snapshot-every", "500"]).snapshot_every == 500


def test_learning_rate_warms_up_holds_then_anneals():
    constant = TrainConfig(lr=2e-4, warmup_steps=100)
    assert learning_rate(0, constant) == pytest.approx(2e-6)
    assert learning_rate(99, constant) == learning_rate(10_000, constant) == pytest.approx(2e-4)
    cfg = parse_args(["--decay-from", "1000", "--decay-steps", "400", "--lr-final", "1e-5"])
    assert (cfg.decay_from, cfg.decay_steps, cfg.lr_final) == (1000, 400, 1e-5)
    rates = [learning_rate(s, cfg) for s in range(1000, 1401, 50)]
    assert rates[0] == pytest.approx(cfg.lr)
    assert rates[4] == pytest.approx((cfg.lr + 1e-5) / 2)  # the cosine's midpoint
    assert all(a > b for a, b in zip(rates, rates[1:]))
    assert rates[-1] == learning_rate(5000, cfg) == pytest.approx(1e-5)
    with pytest.raises(SystemExit):  # a usage error, not an optimizer traceback
        parse_args(["--decay-from", "10", "--lr-final", "-1e-5"])


def test_anneal_is_recorded_in_the_run(toy_root, tmp_path):
    train(_cfg(toy_root, tmp_path / "a", 3))
    record = train(replace(_cfg(toy_root, tmp_path / "a", 5), decay_from=3, decay_steps=2))
    assert [h["from_step"] for h in record["lr_schedule"]] == [0, 3]
    assert record["lr_schedule"][1]["schedule"].startswith("cosine")


def test_init_from_a_shipped_model_folder(toy_root, tmp_path):
    """--init-from starts a fresh run from an exported model (a JSON config: lists, not tuples), keeps its
    step count and budget, and refuses a model of another architecture."""
    first = train(_cfg(toy_root, tmp_path / "a", 3))
    export = tmp_path / "a" / "export"
    cont = train(replace(_cfg(toy_root, tmp_path / "b", 5), init_from=str(export)))
    assert cont["step"] == 5 and cont["images_seen"] == first["images_seen"] + 2 * 4
    with pytest.raises(ValueError, match="architecture differs"):
        train(replace(_cfg(toy_root, tmp_path / "c", 5), image_size=16, init_from=str(export)))


def test_trained_run_exports_a_loadable_model_on_another_class_set(toy_root, tmp_path):
    """A 4-class data set end to end: train a few steps, sample, reload."""
    train(_cfg(toy_root, tmp_path / "r", 4))
    synth = Synthesizer.from_pretrained(tmp_path / "r" / "export")
    assert synth.classset.num_classes == 4 and synth.image_size == 32
    lay = np.full((32, 32), 4)
    lay[:10] = 2
    a = synth(lay, steps=3, seed=0)
    assert a.shape == (32, 32, 3) and a.dtype == np.uint8
    np.testing.assert_array_equal(a, synth(lay, steps=3, seed=0))
    with pytest.raises(LayoutError, match="0..4"):
        synth(np.full((32, 32), 7), steps=1)


def test_synthesizer_inputs_and_errors(toy_root, tmp_path):
    train(_cfg(toy_root, tmp_path / "r", 2))
    synth = Synthesizer.from_pretrained(tmp_path / "r" / "export")
    ids = np.full((32, 32), 4)
    ids[20:] = 0
    colour = synth.classset.ids_to_colors(ids)
    oh = one_hot(torch.from_numpy(ids)[None], 5)
    a = synth(ids, steps=2, seed=3)
    np.testing.assert_array_equal(a, synth(colour, steps=2, seed=3))
    np.testing.assert_array_equal(a, synth(oh, steps=2, seed=3)[0])
    batch = synth(np.stack([ids, ids]), steps=2, seed=3)
    assert batch.shape == (2, 32, 32, 3)
    np.testing.assert_array_equal(batch[0], a)  # image i uses seed + i, independent of batch size
    assert not np.array_equal(batch[0], batch[1])
    bad = colour.copy()
    bad[0, 0] = (1, 2, 3)
    with pytest.raises(ValueError, match=r"RGB\(1, 2, 3\)"):
        synth(bad, steps=1)
    with pytest.raises(LayoutError, match="64x64"):
        synth(np.zeros((64, 64), int), steps=1)
    with pytest.raises(ValueError, match="steps"):
        synth(ids, steps=0)
    with pytest.raises(ValueError, match="guidance"):
        synth(ids, steps=1, guidance=float("nan"))
    img, traj = synth(ids, steps=3, seed=1, return_trajectory=True)
    assert len(traj.x0) == 3 and traj.t[0] == 1.0
    np.testing.assert_array_equal(traj.x0[-1], img)


def test_worker_batches_equal_inline_batches(toy_root, tmp_path):
    train(_cfg(toy_root, tmp_path / "inline", 3))
    train(replace(_cfg(toy_root, tmp_path / "workers", 3), num_workers=2))
    a, b = _state(tmp_path / "inline"), _state(tmp_path / "workers")
    for k in a:
        if k.startswith("model."):
            assert torch.equal(a[k], b[k])


def test_the_synthesizer_distillation_and_training_grids_guide_alike():
    """Guidance is composed in one place (``diffusion.guided_model``): for the same network, layouts and inputs, the
    Synthesizer's model function equals the distillation's target sampler, and both equal the training grids' under
    classifier-free guidance; likewise autoguidance with classifier-free guidance on top within an interval."""
    from sparsesis.data.classes import LABELMEFACADE as classes
    from sparsesis.training.distill import guided_teacher
    from sparsesis.models.schema import DEFAULT_GUIDANCE
    from sparsesis.training.train import grid_model_fn

    def network(seed):
        torch.manual_seed(seed)
        m = UNet(preset("tiny", classes.num_channels))
        for p in m.parameters():  # zero-initialised output layers would make every guidance the same
            if p.abs().sum() == 0:
                torch.nn.init.normal_(p, std=0.05)
        return m

    main, weak = Synthesizer(network(0), classes, {}), Synthesizer(network(1), classes, {})
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, classes.num_channels, (2, 32, 32), generator=g)
    cond = one_hot(ids, classes.num_channels)
    uncond = one_hot(torch.full_like(ids, classes.unknown_id), classes.num_channels)
    z = torch.randn(2, 3, 32, 32, generator=g)
    with torch.no_grad():
        for time in (0.5, 0.95):  # inside and outside the interval
            t = torch.full((2,), time)
            plain = main.conditional(cond)(z, t)
            cfg = main._model_fn(cond, ids, DEFAULT_GUIDANCE, "cfg", None)(z, t)
            assert (cfg - plain).abs().max() > 1e-3  # the guidance changes the prediction
            exact = dict(rtol=0, atol=0)  # the same arithmetic, not merely close
            torch.testing.assert_close(guided_teacher(main.model, cond, uncond, DEFAULT_GUIDANCE)(z, t), cfg, **exact)
            torch.testing.assert_close(grid_model_fn(main.model, ids, classes)(z, t), cfg, **exact)
            both = main._model_fn(cond, ids, 2.0, weak, (0.2, 0.9), 3.0)(z, t)
            torch.testing.assert_close(guided_teacher(main.model, cond, uncond, 2.0, weak.model, (0.2, 0.9), 3.0)(z, t),
                                       both, **exact)
            assert ((both - plain).abs().max() > 1e-3) == (time == 0.5)  # guided inside the interval only
