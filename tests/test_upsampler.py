"""The 4x upsampler: shapes, determinism, training resume, clear checkpoint errors, and that it adds detail
without repainting the scene."""
import json

import cv2
import numpy as np
import pytest
import torch

from conftest import FOUR_CLASSES, REPO, benchmark_module, tiny_teacher
from sparsesis.models.checkpoint import CheckpointError, save_model_dir
from sparsesis.data.classes import LABELMEFACADE, ClassSet
from sparsesis.editing import changed_region
from sparsesis.pipeline import Pipeline
from sparsesis.models.schema import DEFAULT_UPSAMPLER_LEVEL, upsampler_config
from sparsesis.training.train_upsampler import (SegmentationAdversary, UpsamplerTrainConfig, init_weights, restore_discriminator,
                                       train_upsampler)
from sparsesis.training.adversarial import lr_scale
from sparsesis.models.upsampler import Upsampler, UpsamplerConfig, UpsamplerNet, area_down, back_project

SHIPPED = REPO / "checkpoints" / "upsampler4x"


def tiny(folder, classset=LABELMEFACADE, noise_input=False):
    torch.manual_seed(0)
    net = UpsamplerNet(UpsamplerConfig(classset.num_channels, channels=8, blocks=1, noise_input=noise_input))
    if noise_input:
        torch.nn.init.normal_(net.mix2[0].weight, std=0.5)  # as if trained: the noise planes matter
    return save_model_dir(folder, net.state_dict(), upsampler_config(net, classset, {"step": 0}))


def test_shapes_dtypes_and_layout_checks(tmp_path):
    up = Upsampler.from_pretrained(tiny(tmp_path / "u"))
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    out = up(img)
    assert out.shape == (64, 64, 3) and out.dtype == np.uint8
    batch = up(np.stack([img, img]), np.full((2, 64, 64), 2))
    assert batch.shape == (2, 64, 64, 3)
    with pytest.raises(ValueError, match="output size"):
        up(img, np.zeros((16, 16), np.int64))
    with pytest.raises(ValueError, match="uint8"):
        up(img.astype(np.float32))


def test_missing_or_mismatched_checkpoints_get_clear_errors(tmp_path):
    with pytest.raises(CheckpointError, match="not found"):
        Upsampler.from_pretrained(tmp_path / "nothing")
    folder = tiny(tmp_path / "u")
    cfg = json.loads((folder / "config.json").read_text())
    cfg["model"]["channels"] = 16
    (folder / "config.json").write_text(json.dumps(cfg))
    with pytest.raises(CheckpointError, match="do not fit"):
        Upsampler.from_pretrained(folder)
    from sparsesis.data.classes import ClassSet

    other = ClassSet("two", ("a", "b"), ((1, 2, 3), (4, 5, 6)))
    with pytest.raises(CheckpointError, match="class set"):
        Upsampler.from_pretrained(tiny(tmp_path / "v", other)).check_compatible(LABELMEFACADE)
    with pytest.raises(CheckpointError, match="not found"):
        Pipeline.from_pretrained(REPO / "checkpoints" / "ours64-student4", upsampler=tmp_path / "nothing")


@pytest.mark.slow
def test_training_resumes_exactly(toy_root, tmp_path):
    base = dict(data=str(toy_root), size=32, patch=16, channels=8, blocks=1, batch_size=2, adv_from=2, save_every=1,
                snapshot_every=3, threads=2)
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "a"), steps=4, **base), progress=False)
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=2, **base), progress=False)
    rec = train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=4, **base), progress=False)
    assert rec["step"] == 4 and rec["images_seen"] == 8
    a = Upsampler.from_pretrained(tmp_path / "a" / "export").net.state_dict()
    b = Upsampler.from_pretrained(tmp_path / "b" / "export").net.state_dict()
    for k in a:
        torch.testing.assert_close(a[k], b[k])  # interrupted and resumed = uninterrupted
    assert (tmp_path / "a" / "snapshots" / "step_000003" / "model.safetensors").is_file()


def test_level_input_is_used_defaulted_and_checked(tmp_path):
    """Older folders with a degradation-level input: the folder's level is the default, another can be set."""
    torch.manual_seed(0)
    net = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1, level_input=True))
    config = upsampler_config(net, LABELMEFACADE, {"step": 0})
    assert config["defaults"] == {"level": DEFAULT_UPSAMPLER_LEVEL}
    folder = save_model_dir(tmp_path / "u", net.state_dict(), {**config, "defaults": {"level": 0.3}})
    up = Upsampler.from_pretrained(folder)
    assert up.level == 0.3
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(up(img), up.with_settings(level=0.0).with_settings(level=0.3)(img))
    clean, degraded = up.with_settings(level=0.0), up.with_settings(level=1.0)
    assert (clean.level, degraded.level, up.level) == (0.0, 1.0, 0.3)  # a copy each; the original keeps its own
    assert not np.array_equal(clean(img), degraded(img))
    assert np.array_equal(Upsampler.from_pretrained(folder, level=1.0)(img), degraded(img))
    assert up.with_settings(level=0.0).with_settings(level=None).level == 0.3  # None: the folder's default
    for bad in (1.5, -0.1, "clean"):
        with pytest.raises(ValueError, match="level must be between 0"):
            up.with_settings(level=bad)
    with pytest.raises(ValueError, match="level must be between 0"):
        Upsampler.from_pretrained(folder, level=2)
    with pytest.raises(ValueError, match="degradation level"):
        net(torch.zeros(1, 3, 16, 16), torch.zeros(1, 10, 64, 64))
    plain = Upsampler.from_pretrained(tiny(tmp_path / "old"))
    assert plain.level is None  # folders without a level input
    with pytest.raises(ValueError, match="no degradation-level input"):
        plain.with_settings(level=0.0)
    with pytest.raises(TypeError, match="unknown upsampler setting.*levels"):
        plain.with_settings(levels=0.0)


def continued(tmp_path, **option):
    """(a tiny trained upsampler's folder, its network, a network with ``option`` started from it, an input)."""
    old_folder = tiny(tmp_path / "old")
    old = Upsampler.from_pretrained(old_folder).net
    net = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1, **option))
    init_weights(net, str(old_folder), LABELMEFACADE)
    return old_folder, old, net, (torch.rand(2, 3, 16, 16) * 2 - 1, torch.rand(2, 10, 64, 64))


def test_init_weights_refuses_a_level_input_folder_and_another_width(tmp_path):
    old_folder = tiny(tmp_path / "old")
    wider = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=16, blocks=1))
    with pytest.raises(ValueError, match="pass --channels and --blocks"):
        init_weights(wider, str(old_folder), LABELMEFACADE)
    torch.manual_seed(0)
    leveled = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1, level_input=True))
    folder = save_model_dir(tmp_path / "lv", leveled.state_dict(), upsampler_config(leveled, LABELMEFACADE, {}))
    net = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1))
    with pytest.raises(ValueError, match=r"^--init-from .*: it has a degradation-level input, and the trainer makes "
                                         r"networks without one \(git history holds the trainer that made them\)$"):
        init_weights(net, str(folder), LABELMEFACADE)


def test_fine_blocks_start_as_the_identity_and_a_trained_network_keeps_them(tmp_path):
    _, old, net, (x, lay) = continued(tmp_path, fine_blocks=2)
    torch.testing.assert_close(net(x, lay), old(x, lay))  # added blocks leave the output as it was
    torch.nn.init.normal_(net.fine[1].body[2].weight, std=0.1)  # as if trained: now the blocks matter
    assert (net(x, lay) - old(x, lay)).abs().max() > 1e-3
    folder = save_model_dir(tmp_path / "fine", net.state_dict(), upsampler_config(net, LABELMEFACADE, {}))
    again = Upsampler.from_pretrained(folder).net
    torch.testing.assert_close(again(x, lay), net(x, lay), atol=2e-3, rtol=0)  # fp16 on disk
    fewer = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1, fine_blocks=1))
    with pytest.raises(ValueError, match="2 fine blocks, pass --fine-blocks 2"):
        init_weights(fewer, str(folder), LABELMEFACADE)


def test_back_projection_pulls_the_output_towards_its_input(tmp_path):
    """Each round shrinks what the output's area-downsample misses of the input; 0 rounds change nothing; the
    model folder's defaults.back_projection sets the rounds an Upsampler runs."""
    x = torch.rand(2, 3, 8, 8) * 2 - 1
    y = torch.nn.functional.interpolate(x, scale_factor=4, mode="bicubic") + 0.3 * torch.randn(2, 3, 32, 32) + 0.2
    gaps = [(area_down(back_project(y, x, r)) - x).abs().mean().item() for r in range(4)]
    assert torch.equal(back_project(y, x, 0), y)
    assert gaps[0] > 0.15 and all(b < 0.5 * a for a, b in zip(gaps, gaps[1:])), gaps
    folder = tiny(tmp_path / "u")
    cfg = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**cfg, "defaults": {"back_projection": 2}}))
    img = np.random.default_rng(1).integers(0, 256, (2, 8, 8, 3), dtype=np.uint8)
    plain, projected = Upsampler.from_pretrained(tiny(tmp_path / "v")), Upsampler.from_pretrained(folder)
    assert plain.back_projection == 0 and projected.back_projection == 2
    back = lambda out: np.stack([cv2.resize(o, (8, 8), interpolation=cv2.INTER_AREA) for o in out]).astype(float)  # noqa: E731
    assert np.abs(back(projected(img)) - img).mean() < 0.5 * np.abs(back(plain(img)) - img).mean()
    # the same rounds set at load or on a copy: the same pictures; 0 rounds: the network's own output
    np.testing.assert_array_equal(plain.with_settings(back_projection=2)(img), projected(img))
    np.testing.assert_array_equal(Upsampler.from_pretrained(tiny(tmp_path / "w"), back_projection=2)(img),
                                  projected(img))
    np.testing.assert_array_equal(projected.with_settings(back_projection=0)(img), plain(img))
    for bad in (-1, 1.5, "two"):
        with pytest.raises(ValueError, match="back_projection must be a whole number of rounds >= 0"):
            plain.with_settings(back_projection=bad)


def test_learning_rate_schedule_holds_then_falls_linearly_to_zero():
    assert lr_scale(900, 1000, None) == 1.0
    assert [lr_scale(s, 1000, 600) for s in (0, 599, 600, 800, 1000)] == [1.0, 1.0, 1.0, 0.5, 0.0]


def test_a_warmup_rises_linearly_to_the_learning_rate_and_multiplies_the_decay():
    assert [lr_scale(s, 1000, None, 100) for s in (0, 49, 99, 500)] == [0.01, 0.5, 1.0, 1.0]
    assert lr_scale(49, 100, 40, 100) == pytest.approx(0.5 * 51 / 60)  # both at once: the product
    assert lr_scale(0, 1000, None, 0) == 1.0
    assert [lr_scale(s, 1000, None, 100, start=300) for s in (0, 299, 300, 349)] == [0.0, 0.0, 0.01, 0.5]


def test_settings_that_do_not_go_together_are_refused_before_any_work(toy_root, tmp_path):
    for bad, message in ((dict(patch=24), "multiple of 16"), (dict(patch=64), "at most size"),
                         (dict(precision="fp16"), "precision")):
        with pytest.raises(ValueError, match=message):
            train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "r"), data=str(toy_root), size=32, **bad),
                            progress=False)
    assert not (tmp_path / "r").exists()  # refused before any work


def test_the_flags_of_experiments_that_did_not_ship_are_refused(capsys):
    from sparsesis.training.train_upsampler import main

    for flags in (["--disc", "patch"], ["--level-input"], ["--r1-weight", "1"], ["--no-diffaug"]):
        with pytest.raises(SystemExit):
            main(flags)
        assert "unrecognized arguments: " + flags[0] in capsys.readouterr().err


def test_an_exported_discriminator_is_restored_only_when_it_is_a_segmentation_one(tmp_path):
    from sparsesis.models.checkpoint import save_discriminator

    torch.manual_seed(0)
    exported = SegmentationAdversary(LABELMEFACADE, channels=4).disc
    fresh = SegmentationAdversary(LABELMEFACADE, channels=4).disc
    assert restore_discriminator(fresh, tmp_path / "none") == "fresh"  # nothing exported there
    save_discriminator(tmp_path / "patch", exported, disc="patch")
    assert restore_discriminator(fresh, tmp_path / "patch") == "fresh"  # another kind: not loaded
    save_discriminator(tmp_path / "seg", exported, disc="segmentation")
    assert restore_discriminator(SegmentationAdversary(LABELMEFACADE, channels=8).disc, tmp_path / "seg") == "fresh"
    assert restore_discriminator(fresh, tmp_path / "seg") == "restored"
    for k, v in exported.state_dict().items():
        torch.testing.assert_close(fresh.state_dict()[k], v, atol=1e-2, rtol=1e-2)  # fp16 on disk


@pytest.mark.slow
def test_training_in_bf16_continues_an_upsampler_and_resumes_exactly(toy_root, tmp_path):
    from sparsesis.data.sets import dataset_info

    old = tiny(tmp_path / "old", dataset_info(toy_root)[0])
    base = dict(data=str(toy_root), size=32, patch=16, channels=8, blocks=1, batch_size=2, adv_from=1, save_every=1,
                threads=2, precision="bf16", init_from=str(old))
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "a"), steps=3, **base), progress=False)
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=1, **base), progress=False)
    rec = train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=3, **base), progress=False)
    assert rec["step"] == 3 and rec["images_by_precision"] == {"fp32": 0, "bf16": 6}
    assert rec["started_from"] == {"folder": str(old), "step": 0, "discriminator": "fresh"}  # the start's record stays
    a, b = (Upsampler.from_pretrained(tmp_path / r / "export") for r in "ab")
    assert a.net.cfg.noise_input and a.net.cfg.fine_blocks == 2 and a.level is None
    for k, v in a.net.state_dict().items():
        torch.testing.assert_close(v, b.net.state_dict()[k])
    start = Upsampler.from_pretrained(old).net.state_dict()
    assert not torch.equal(a.net.state_dict()["body.0.body.0.weight"], start["body.0.body.0.weight"])  # it trained


needs_shipped = pytest.mark.skipif(not (SHIPPED / "config.json").is_file(), reason="no shipped upsampler")


@needs_shipped
def test_shipped_upsampler_adds_detail_and_keeps_the_scene():
    """Held-out photos (the examples, 64 px): the output, area-downsampled back to 64, is its input within 30 dB."""
    up = Upsampler.from_pretrained(SHIPPED, precision="auto")  # as the demo runs
    photos = np.stack([cv2.cvtColor(cv2.imread(str(p)), cv2.COLOR_BGR2RGB)
                       for p in sorted((REPO / "examples").glob("*_photo.png"))])
    out = up(photos)
    back = np.stack([cv2.resize(o, (64, 64), interpolation=cv2.INTER_AREA) for o in out]).astype(float)
    psnr = 10 * np.log10(255 ** 2 / np.mean((back - photos) ** 2))
    assert psnr >= 30, psnr
    bicubic = np.stack([cv2.resize(p, (256, 256), interpolation=cv2.INTER_CUBIC) for p in photos])
    lap = lambda x: np.mean([np.abs(cv2.Laplacian(cv2.cvtColor(i, cv2.COLOR_RGB2GRAY), cv2.CV_32F)).mean() for i in x])  # noqa: E731
    assert lap(out) > 1.2 * lap(bicubic)  # sharper than bicubic


@needs_shipped
def test_pipeline_same_seed_same_image_and_64_stays_available():
    pipe = Pipeline.from_pretrained(REPO / "checkpoints" / "ours64-student4")
    assert pipe.upsampler is not None and pipe.output_size == 256
    lay = np.full((256, 256), LABELMEFACADE.unknown_id)
    lay[:60] = 6
    lay[90:220, 30:220] = 1
    a, b = pipe(lay, seed=4), pipe(lay, seed=4)
    assert a.shape == (256, 256, 3) and np.array_equal(a, b) and not np.array_equal(a, pipe(lay, seed=5))
    small = pipe(lay, seed=4, upscale=None)
    assert small.shape == (64, 64, 3)
    assert np.array_equal(small, pipe.generator(pipe.layouts(lay)[0][0], seed=4))


@needs_shipped
def test_an_added_stroke_edits_locally_at_256():
    """The edit-locality test of tests/test_editing.py, through the upsampler at 256."""
    pipe = Pipeline.from_pretrained(REPO / "checkpoints" / "ours64-student4")
    names, u = pipe.classset.names, pipe.classset.unknown_id
    lay = np.full((64, 64), u)
    lay[:12, 4:60] = names.index("sky")
    lay[18:44, 10:54:6] = names.index("building")
    lay[54:, 4:60] = names.index("road")
    edited = lay.copy()
    edited[24:34, 24:34] = names.index("window")
    near = np.zeros((256, 256), bool)
    near[80:152, 80:152] = True  # the stroke and a 4-pixel margin at 64, times 4
    for seed in range(3):
        before = pipe(lay, seed=seed)
        change = np.abs(pipe(edited, seed=seed).astype(float) - before).mean(-1)
        reseed = np.abs(pipe(lay, seed=seed + 100).astype(float) - before).mean(-1)
        # regenerated with the same seed: the change concentrates at the stroke, and the rest moves far less
        # than a new draw moves it (the bounds of the 64 px test; the upsampler sharpens both a little)
        assert change[near].mean() > 2 * change[~near].mean(), seed
        assert change[~near].mean() < 0.45 * reseed[~near].mean() and change[~near].mean() < 17, seed
        # with "keep the rest" the rest does not move at all
        kept = np.abs(pipe.edit(edited, before, lay, seed=seed).astype(float) - before).mean(-1)
        redrawn = np.kron(changed_region(lay, edited, 8), np.ones((4, 4))).astype(np.uint8)  # the default radius
        redrawn = cv2.dilate(redrawn, np.ones((17, 17), np.uint8)) > 0  # and the upsampler's footprint
        assert kept[~redrawn].max() == 0 and kept[near].mean() > 5, seed


def test_noise_input_draws_texture_per_seed_and_starts_as_the_network_it_continues(tmp_path):
    _, old, net, (x, lay) = continued(tmp_path, noise_input=True)
    torch.testing.assert_close(net(x, lay, noise=torch.randn(2, 1, 64, 64)), old(x, lay))  # zero weights on noise
    with pytest.raises(ValueError, match="it has a noise input, the network has none"):
        init_weights(UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1)),
                     str(save_model_dir(tmp_path / "n", net.state_dict(), upsampler_config(net, LABELMEFACADE, {}))),
                     LABELMEFACADE)
    torch.nn.init.normal_(net.mix2[0].weight)  # as if trained: the noise plane now matters
    up = Upsampler(net, LABELMEFACADE, upsampler_config(net, LABELMEFACADE, {}))
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert np.array_equal(up(img, seed=3), up(img, seed=3))
    assert not np.array_equal(up(img, seed=3), up(img, seed=4))


def test_the_noise_scale_trades_texture_per_seed_for_the_mean_texture(tmp_path):
    folder = tiny(tmp_path / "u", noise_input=True)
    up = Upsampler.from_pretrained(folder)
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert up.noise_scale == 1.0  # a folder without the default: the training's unit normals
    np.testing.assert_array_equal(up(img, seed=3), up.with_settings(noise_scale=1)(img, seed=3))
    at = lambda s: up.with_settings(noise_scale=s)  # noqa: E731
    mean = at(0)(img, seed=3)
    np.testing.assert_array_equal(mean, at(0)(img, seed=4))  # no noise: every seed the same picture
    half, full = (at(s)(img, seed=3).astype(float) for s in (0.5, 1.0))
    assert 0 < np.abs(half - mean).mean() < np.abs(full - mean).mean()
    assert up.noise_scale == 1.0 and at(0.5).noise_scale == 0.5  # a copy: the original keeps its setting
    np.testing.assert_array_equal(Upsampler.from_pretrained(folder, noise_scale=0.5)(img, seed=3), half)
    # the folder's default is what an upsampler loaded without the setting uses
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "defaults": {"noise_scale": 0}}))
    up0 = Upsampler.from_pretrained(folder)
    assert up0.noise_scale == 0.0
    np.testing.assert_array_equal(up0(img, seed=3), mean)
    for bad in (-1, float("nan"), "loud"):
        with pytest.raises(ValueError, match="noise_scale must be a number >= 0"):
            up.with_settings(noise_scale=bad)
        with pytest.raises(ValueError, match="noise_scale must be a number >= 0"):
            Upsampler.from_pretrained(folder, noise_scale=bad)
    (folder / "config.json").write_text(json.dumps({**config, "defaults": {"noise_scale": -2}}))
    with pytest.raises(ValueError, match="noise_scale must be a number >= 0"):
        Upsampler.from_pretrained(folder)  # a broken folder default: refused when loaded


def test_the_detail_scale_goes_from_bicubic_through_the_network_to_more_detail(tmp_path):
    import torch.nn.functional as F

    from sparsesis.data.sets import photo_to_tensor, tensor_to_photo

    folder = tiny(tmp_path / "u")
    up = Upsampler.from_pretrained(folder)
    img = np.random.default_rng(0).integers(0, 256, (16, 16, 3), dtype=np.uint8)
    assert up.detail_scale == 1.0  # a folder without the default: the network's own output
    own = up(img)
    at = lambda d: up.with_settings(detail_scale=d)  # noqa: E731
    np.testing.assert_array_equal(own, at(1)(img))
    bicubic = tensor_to_photo(F.interpolate(photo_to_tensor(img), scale_factor=4, mode="bicubic"))[0]
    np.testing.assert_array_equal(at(0)(img), bicubic)
    gaps = [np.abs(at(d)(img).astype(float) - bicubic).mean() for d in (0.5, 1.0, 1.5)]
    assert 0 < gaps[0] < gaps[1] < gaps[2]  # more of the network's detail over bicubic, step by step
    half = at(0.5)(img).astype(float)
    inside = (own > 0) & (own < 255) & (bicubic > 0) & (bicubic < 255)  # where neither was clipped to uint8
    assert inside.mean() > 0.5
    assert np.abs(half - (bicubic.astype(float) + own) / 2)[inside].max() <= 1.0  # halfway, to uint8 rounding
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "defaults": {"detail_scale": 0.5}}))
    up_half = Upsampler.from_pretrained(folder)
    assert up_half.detail_scale == 0.5
    np.testing.assert_array_equal(up_half(img), at(0.5)(img))  # the folder's default is used
    np.testing.assert_array_equal(Upsampler.from_pretrained(folder, detail_scale=1)(img), own)  # ... unless named
    np.testing.assert_array_equal(up_half.with_settings(detail_scale=None)(img), up_half(img))  # None: the folder's
    for bad in (-0.1, float("inf"), "crisp"):
        with pytest.raises(ValueError, match="detail_scale must be a number >= 0"):
            up.with_settings(detail_scale=bad)


@pytest.mark.slow
def test_segmentation_discriminator_training_resumes_exactly_and_goes_on_against_the_export(toy_root, tmp_path):
    base = dict(data=str(toy_root), size=32, patch=16, channels=8, blocks=1, batch_size=2, adv_from=1, save_every=1,
                threads=2)
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "a"), steps=3, **base), progress=False)
    train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=2, **base), progress=False)
    rec = train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "b"), steps=3, **base), progress=False)
    assert rec["step"] == 3
    a, b = (Upsampler.from_pretrained(tmp_path / r / "export") for r in "ab")
    assert a.net.cfg.noise_input
    for k, v in a.net.state_dict().items():
        torch.testing.assert_close(v, b.net.state_dict()[k])
    # where the run folder is gone: a new run from the export goes on against the exported discriminator
    export = str(tmp_path / "a" / "export")
    rec = train_upsampler(UpsamplerTrainConfig(run=str(tmp_path / "d"), steps=1, init_from=export, **base),
                          progress=False)
    assert rec["started_from"]["discriminator"] == "restored" and rec["started_from"]["step"] == 3


def test_a_noise_input_upsampler_keeps_the_editing_guarantees(tmp_path):
    """Through a noise-input upsampler the picture follows the seed, and a reroll under another seed still
    leaves every pixel beyond the upsampler's footprint exactly as it was."""
    from sparsesis.loader import load

    torch.manual_seed(0)
    net = UpsamplerNet(UpsamplerConfig(LABELMEFACADE.num_channels, channels=8, blocks=1, noise_input=True))
    torch.nn.init.normal_(net.mix2[0].weight, std=0.5)  # the noise plane matters
    up = Upsampler(net, LABELMEFACADE, upsampler_config(net, LABELMEFACADE, {}))
    pipe = Pipeline(load(REPO / "checkpoints" / "ours64-student4"), up)
    layout = np.full((256, 256), LABELMEFACADE.unknown_id)
    layout[:80] = LABELMEFACADE.names.index("sky")
    layout[100:] = LABELMEFACADE.names.index("building")
    photo = pipe(layout, seed=0)
    np.testing.assert_array_equal(photo, pipe(layout, seed=0))
    base = pipe(layout, seed=0, upscale=None)
    assert not np.array_equal(photo, pipe.upscale(base[None], layout[None], "learned", seed=1)[0])  # texture per seed
    region = np.zeros((256, 256), bool)
    region[96:160, 96:160] = True
    again = pipe.reroll(layout, photo, region, seed=5)
    far = ~cv2.dilate(region.astype(np.uint8), np.ones((2 * 12 + 1,) * 2, np.uint8)).astype(bool)
    np.testing.assert_array_equal(again[far], photo[far])
    assert not np.array_equal(again[region], photo[region])


def _texture_figure_module():
    import importlib.util

    spec = importlib.util.spec_from_file_location("make_texture_figure", REPO / "examples" / "make_texture_figure.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_texture_figure_crops_the_most_detailed_window_of_every_column():
    fig = _texture_figure_module()
    rng = np.random.default_rng(0)
    image = np.full((64, 64, 3), 128, np.uint8)
    image[32:48, 16:32] = rng.integers(0, 256, (16, 16, 3))  # the only detail
    y, x = fig.detail_window(image, 16)
    assert (y, x) == (32, 16)
    with pytest.raises(ValueError, match="larger than the picture"):
        fig.detail_window(image, 80)
    small = cv2.resize(image, (16, 16), interpolation=cv2.INTER_AREA)
    other = image[::-1].copy()
    row = fig.crop_row(small, [image, other], image, crop=16, tile=32)
    assert len(row) == 4 and all(t.shape == (32, 32, 3) for t in row)
    zoom = lambda im: cv2.resize(im, (32, 32), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    np.testing.assert_array_equal(row[0], zoom(small[8:12, 4:8]))  # the same window at the input's scale
    np.testing.assert_array_equal(row[2], zoom(other[32:48, 16:32]))
    np.testing.assert_array_equal(row[3], zoom(image[32:48, 16:32]))
    assert fig.crop_row(small, [image], None, 16, 32)[-1] is None  # no photo: the window comes from column 1


def test_texture_figure_end_to_end_on_toy_photos_and_an_example_sketch(toy_root, tmp_path):
    fig = _texture_figure_module()
    up = tiny(tmp_path / "u")
    out = tmp_path / "texture.jpg"
    figure = fig.main(["--data", str(toy_root), "--upsampler", f"a={up}", "--upsampler", f"b={up}",
                       "--photos", "0", "1", "--sketches", "1", "--crop", "64", "--tile", "64", "--out", str(out)])
    assert figure.shape == (3 * (64 + 6), 5 * (64 + 6), 3)  # 3 rows; input, bicubic, a, b, photo
    assert cv2.imread(str(out)).shape == figure.shape
    assert (figure[-64 - 3:-3, -64 - 3:-3] == 255).all()  # the sketch row has no photo
    generated = fig.main(["--upsampler", f"a={up}", "--photos", "--sketches", "2", "--crop", "64", "--tile", "64",
                          "--out", str(out)])
    assert generated.shape == (2 * (64 + 6), 3 * (64 + 6), 3)  # input, bicubic, a: no (blank) photo column
    with pytest.raises(SystemExit, match="NAME=FOLDER"):
        fig.main(["--upsampler", str(up), "--out", str(out)])
    with pytest.raises(SystemExit, match="held-out split has 4 photos"):
        fig.main(["--data", str(toy_root), "--upsampler", f"a={up}", "--photos", "9", "--sketches", "0",
                  "--out", str(out)])


@pytest.mark.slow
def test_the_upsampler_evaluation_scores_both_inputs_against_bicubic_with_the_folders_defaults(toy_root, tmp_path):
    from sparsesis.evaluation.evaluate import main

    generator = tiny_teacher(toy_root, tmp_path / "g")
    folder = tiny(tmp_path / "u", ClassSet.from_dict(FOUR_CLASSES), noise_input=True)
    config = json.loads((folder / "config.json").read_text())
    (folder / "config.json").write_text(json.dumps({**config, "defaults": {"back_projection": 1,
                                                                           "noise_scale": 0.5}}))
    out = tmp_path / "upsampler.json"
    main(["upsampler", "--data", str(toy_root), "--upsampler", str(folder), "--generator", generator, "--size", "128",
          "--repeats", "1", "--precision", "fp32", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["metric"] == "FD-EffNetL0" and res["n_real"] == 4 and len(res["patch_positions"]) == 4
    for name in ("real", "generated"):
        bicubic, learned = res[name]["bicubic"], res[name]["learned"]
        assert bicubic["n"] == learned["n"] == 4
        assert all(np.isfinite(row[k]) for row in (bicubic, learned) for k in ("patch_fd", "fd", "kid"))
        assert learned["patch_fd"] != bicubic["patch_fd"] and 0 < learned["psnr_back"] < 100
        assert 0 < bicubic["psnr_back"] < 100
    assert res["real"]["bicubic"]["psnr_back"] > 30  # bicubic nearly keeps a smooth photo
    assert res["upsampler"]["noise_scale"] == 0.5 and res["upsampler"]["back_projection"] == 1
    assert res["upsampler"]["detail_scale"] == 1.0
    assert res["floor"]["n"] == 4 and all(v > 0 for v in res["latency_s"].values())


@pytest.mark.slow
def test_the_selection_keeps_every_score_it_made_when_a_later_folder_fails(toy_root, tmp_path):
    from sparsesis.training.train import TrainConfig, train

    train(TrainConfig(run=str(tmp_path / "g"), data=str(toy_root), preset="tiny", image_size=64, batch_size=2,
                      steps=1, sample_every=10 ** 9, threads=2))
    good, broken = tiny(tmp_path / "a"), tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text("{not json")
    out = tmp_path / "selection.json"
    select = benchmark_module("select_upsampler")
    args = ["--generator", str(tmp_path / "g" / "export"), "--data", str(toy_root), "--n", "2", "--precision", "fp32",
            "--out", str(out)]
    with pytest.raises(CheckpointError):
        select.main([*args, "--folder", str(good), "--folder", str(broken)])
    res = json.loads(out.read_text())
    assert [r["folder"] for r in res["rows"]] == [str(good)] and np.isfinite(res["rows"][0]["real"])
    assert res["bicubic"]["real"] > 0 and len(res["commands"]) == 1
    # a later part adds its rows to the same file and lists its command
    select.main([*args, "--folder", str(good), "--back-projection", "0"])
    res2 = json.loads(out.read_text())
    assert len(res2["rows"]) == 1 and res2["rows"][0]["back_projection"] == 0 and len(res2["commands"]) == 2
    # a noise-input network at several noise scales: one row each, beside the rows already there
    noisy = tiny(tmp_path / "noisy", noise_input=True)
    select.main([*args, "--folder", str(noisy), "--noise-scales", "0", "1"])
    rows = [r for r in json.loads(out.read_text())["rows"] if r["folder"] == str(noisy)]
    assert [r["noise_scale"] for r in rows] == [0.0, 1.0] and rows[0]["real"] != rows[1]["real"]
    assert "noise_scale" not in json.loads(out.read_text())["rows"][0]  # no noise planes, no noise scale
    # only a scored row ships, with the settings it was scored at as the folder's defaults
    from sparsesis.training import ship_upsampler as ship
    shipped = tmp_path / "shipped"
    ship.main(["--selection", str(out), "--folder", str(noisy), "--noise-scale", "0", "--out", str(shipped)])
    up = Upsampler.from_pretrained(shipped)
    assert (up.noise_scale, up.back_projection) == (0.0, rows[0]["back_projection"])
    assert up.config["record"]["chosen"]["real"] == rows[0]["real"]
    for k, v in Upsampler.from_pretrained(noisy).net.state_dict().items():
        torch.testing.assert_close(v, up.net.state_dict()[k])
    assert all(r["psnr_back"]["real"] > 0 and r["psnr_back"]["generated"]["-"] > 0 for r in rows)
    with pytest.raises(SystemExit, match="0 rows .* at noise scale 0.5.*detail: 0.0/0/1.0, 1.0/0/1.0"):
        ship.main(["--selection", str(out), "--folder", str(noisy), "--noise-scale", "0.5", "--out", str(shipped)])
    assert Upsampler.from_pretrained(shipped).noise_scale == 0.0  # a refused ship leaves the folder as it was
    # detail scales: one row each beside the others, and the one named ships as the folder's default
    select.main([*args, "--folder", str(noisy), "--noise-scales", "0", "--detail-scales", "0.5", "0"])
    rows = {r.get("detail_scale"): r for r in json.loads(out.read_text())["rows"]
            if r["folder"] == str(noisy) and r["noise_scale"] == 0}
    assert sorted(rows) == [0.0, 0.5, 1.0] and rows[0.0]["real"] == json.loads(out.read_text())["bicubic"]["real"]
    with pytest.raises(SystemExit, match="3 rows"):  # three detail scales at noise 0: name one
        ship.main(["--selection", str(out), "--folder", str(noisy), "--noise-scale", "0", "--out", str(shipped)])
    ship.main(["--selection", str(out), "--folder", str(noisy), "--noise-scale", "0", "--detail-scale", "0.5",
               "--out", str(shipped)])
    up = Upsampler.from_pretrained(shipped)
    assert up.detail_scale == 0.5 and up.config["record"]["chosen"]["real"] == rows[0.5]["real"]
