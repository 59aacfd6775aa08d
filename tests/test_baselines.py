"""GAN baselines: one training step on a tiny input, resume, export and reload."""
import pytest
import torch

from sparsesis.baselines.oasis import OasisConfig, OasisMethod
from sparsesis.baselines.sean import SeanConfig, SeanMethod
from sparsesis.baselines.spade import SpadeConfig, SpadeMethod
from sparsesis.baselines.models import METHODS, build_method, load_generator
from sparsesis.training.train_gan import GanTrainConfig, train_gan
from sparsesis.models.gan import balanced_ce

SMALL = dict(image_size=32, label_channels=5, base_channels=8, disc_channels=8, spade_hidden=8)
TINY_METHODS = {
    "spade": lambda: SpadeMethod(SpadeConfig(**SMALL, z_dim=16)),
    "oasis": lambda: OasisMethod(OasisConfig(**SMALL, z_dim=8)),
    "sean": lambda: SeanMethod(SeanConfig(**SMALL, style_dim=8)),
}


def tiny_batch(seed=0):
    g = torch.Generator().manual_seed(seed)
    x = torch.rand(2, 3, 32, 32, generator=g) * 2 - 1
    full = torch.randint(0, 4, (2, 32, 32), generator=g)
    sparse = full.clone()
    sparse[:, :, :16] = 4  # left half unknown
    return x, one_hot(sparse, 5), full


@pytest.mark.parametrize("name", sorted(TINY_METHODS))
def test_one_training_step_of_each_baseline(name):
    torch.manual_seed(0)
    m = TINY_METHODS[name]()
    x, lay, full = tiny_batch()
    g0 = [p.detach().clone() for p in m.generator.parameters()]
    d0 = [p.detach().clone() for p in m.discriminator.parameters()]
    opt_g = torch.optim.Adam(m.generator.parameters(), 1e-3)
    opt_d = torch.optim.Adam(m.discriminator.parameters(), 1e-3)
    fake = m.fake(x, lay, full, torch.Generator().manual_seed(0))
    d_loss, _ = m.d_loss(x, lay, fake.detach(), full, torch.Generator().manual_seed(0))
    opt_d.zero_grad(); d_loss.backward(); opt_d.step()
    g_loss, _ = m.g_loss(x, lay, fake, full)
    opt_g.zero_grad(); g_loss.backward(); opt_g.step()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss)
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, m.discriminator.parameters()))
    m.eval()
    out = m.generate(lay, [0, 1])
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1


def test_registry_has_the_three_baselines():
    assert set(METHODS) == {"spade", "oasis", "sean"}


def test_balanced_ce_weights_rare_classes_up():
    logits = torch.zeros(1, 3, 1, 10)
    logits[0, 0] = 5.0  # confident in class 0 everywhere
    target = torch.zeros(1, 1, 10, dtype=torch.long)
    target[0, 0, 0] = 1  # one pixel of a rare class
    plain = torch.nn.functional.cross_entropy(logits, target)
    assert balanced_ce(logits, target) > 2 * plain  # the one wrong pixel counts as much as the nine right ones


def test_oasis_generator_loss_on_unknown_pixels_only_asks_for_real():
    m = TINY_METHODS["oasis"]()
    x, _, full = tiny_batch()
    all_unknown = one_hot(torch.full((2, 32, 32), 4), 5)
    # make D say "fake" everywhere with certainty: the loss must be large; "real class 2": near zero
    with torch.no_grad():
        m.discriminator.out.weight.zero_()
        m.discriminator.out.bias.copy_(torch.tensor([0, 0, 0, 0, 20.0]))
    high, _ = m.g_loss(x, all_unknown, m.fake(x, all_unknown, full), full)
    with torch.no_grad():
        m.discriminator.out.bias.copy_(torch.tensor([0, 0, 20.0, 0, 0]))
    low, _ = m.g_loss(x, all_unknown, m.fake(x, all_unknown, full), full)
    assert high.item() > 10 and low.item() < 1e-3


def test_sean_uses_mean_training_codes_at_test_time():
    m = TINY_METHODS["sean"]()
    x, lay, full = tiny_batch()
    assert m.generator.codes_seen.sum() == 0
    m.g_loss(x, lay, m.fake(x, lay, full), full)
    assert (m.generator.codes_seen > 0).all() and m.generator.mean_codes.abs().sum() > 0
    m.eval()
    a, b = m.generate(lay, [0]), m.generate(lay, [1])
    torch.testing.assert_close(a, b)  # no noise input: the seed does not matter (documented)
from sparsesis.models.checkpoint import STATE_FILE, load_tensors
from sparsesis.data.classes import one_hot


def test_spade_generation_follows_seed():
    m = SpadeMethod(SpadeConfig(image_size=32, label_channels=5, base_channels=8, disc_channels=8, z_dim=16,
                                spade_hidden=8)).eval()
    lay = one_hot(torch.zeros(1, 32, 32, dtype=torch.long), 5)
    torch.testing.assert_close(m.generate(lay, [3]), m.generate(lay, [3]))
    assert not torch.allclose(m.generate(lay, [3]), m.generate(lay, [4]))


@pytest.mark.slow
@pytest.mark.parametrize("name", ["spade", "oasis", "sean"])
def test_gan_loop_resumes_and_exports(toy_root, tmp_path, name):
    cfg = GanTrainConfig(method=name, run=str(tmp_path / "g"), data=str(toy_root), image_size=32, batch_size=2,
                         steps=2, save_every=1, threads=2)
    train_gan(cfg, progress=False)
    rec = train_gan(GanTrainConfig(**{**cfg.__dict__, "steps": 3}), progress=False)
    assert rec["step"] == 3 and rec["images_seen"] == 6
    method, classset, config = load_generator(tmp_path / "g" / "export")
    assert classset.num_classes == 4 and config["method"] == name
    lay = one_hot(torch.full((1, 32, 32), 4), 5)
    assert method.generate(lay, [0]).shape == (1, 3, 32, 32)
    assert any(k.startswith("opt_d.") for k in load_tensors(tmp_path / "g" / STATE_FILE))


@pytest.mark.slow
def test_gan_snapshots_for_budget_curves(toy_root, tmp_path):
    train_gan(GanTrainConfig(method="spade", run=str(tmp_path / "g"), data=str(toy_root), image_size=32,
                             batch_size=2, steps=4, snapshot_every=2, threads=2), progress=False)
    snaps = sorted(p.name for p in (tmp_path / "g" / "snapshots").iterdir())
    assert snaps == ["images_0000004", "images_0000008"]
    method, _, config = load_generator(tmp_path / "g" / "snapshots" / "images_0000004")
    assert config["record"]["images_seen"] == 4 and config["record"]["step"] == 2


@pytest.mark.slow
def test_evaluation_accepts_a_gan_checkpoint(toy_root, tmp_path):
    import json

    from sparsesis.evaluation.evaluate import main

    train_gan(GanTrainConfig(run=str(tmp_path / "g"), data=str(toy_root), image_size=64, batch_size=2, steps=1,
                             threads=2), progress=False)
    out = tmp_path / "eval.json"
    main(["table", "--data", str(toy_root), "--method", f"spade={tmp_path / 'g' / 'export'}", "--kinds", "scribble",
          "--mask-seeds", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["methods"]["spade"]["scribble"]["n"] == 4
    assert res["info"]["spade"]["images_seen"] == 2


@pytest.mark.slow
def test_gan_training_in_bf16_resumes_exactly(toy_root, tmp_path):
    """Interrupted and resumed = uninterrupted, generator, discriminator and optimizers alike; the record says
    how many images each precision trained."""
    base = dict(method="spade", data=str(toy_root), image_size=32, batch_size=2, save_every=1, threads=2,
                precision="bf16")
    train_gan(GanTrainConfig(run=str(tmp_path / "a"), steps=3, **base), progress=False)
    train_gan(GanTrainConfig(run=str(tmp_path / "b"), steps=2, **base), progress=False)
    rec = train_gan(GanTrainConfig(run=str(tmp_path / "b"), steps=3, **base), progress=False)
    assert rec["step"] == 3 and rec["images_by_precision"] == {"fp32": 0, "bf16": 6}
    a, b = load_tensors(tmp_path / "a" / STATE_FILE), load_tensors(tmp_path / "b" / STATE_FILE)
    assert a.keys() == b.keys()
    for k in a:
        torch.testing.assert_close(a[k], b[k], rtol=0, atol=0, msg=k)


def test_gan_training_refuses_an_unknown_precision_before_any_work(tmp_path):
    with pytest.raises(ValueError, match="precision must be one of fp32, bf16"):
        train_gan(GanTrainConfig(run=str(tmp_path / "g"), data=str(tmp_path / "no-data"), precision="fp16"),
                  progress=False)
    assert not (tmp_path / "g").exists()


@pytest.mark.parametrize("name", ["oasis", "spade"])
def test_a_gan_goes_on_from_its_exported_folder_when_the_run_folder_is_gone(toy_root, tmp_path, name):
    """The committed fallback: generator and discriminator (fp16) from the export, step and record carried on,
    the optimizers fresh and the restart on record; a folder without a discriminator restarts a fresh one."""
    from sparsesis.models.checkpoint import DISCRIMINATOR_FILE

    base = dict(method=name, data=str(toy_root), image_size=32, batch_size=2, save_every=1, threads=2)
    train_gan(GanTrainConfig(run=str(tmp_path / "a"), steps=3, **base), progress=False)
    export = tmp_path / "a" / "export"
    assert (export / DISCRIMINATOR_FILE).is_file()
    saved_d = load_tensors(export / DISCRIMINATOR_FILE)
    rec = train_gan(GanTrainConfig(run=str(tmp_path / "b"), steps=3, init_from=str(export), **base), progress=False)
    assert rec["step"] == 3 and rec["images_seen"] == 6  # nothing left to train: the state is the folder's
    b_method = build_method(name, load_generator(export)[1], 32)
    b_method.discriminator.load_state_dict({k: v.float() for k, v in load_tensors(tmp_path / "b" / "export" /
                                                                                     DISCRIMINATOR_FILE).items()})
    for k, v in saved_d.items():
        torch.testing.assert_close(b_method.discriminator.state_dict()[k].half(), v)  # restored, not fresh
    rec = train_gan(GanTrainConfig(run=str(tmp_path / "c"), steps=5, init_from=str(export), **base), progress=False)
    assert rec["step"] == 5 and rec["images_seen"] == 10
    assert rec["restarts"] == [{"at_step": 3, "from": str(export), "discriminator": "restored", "optimizers": "fresh"}]
    (export / DISCRIMINATOR_FILE).unlink()
    rec = train_gan(GanTrainConfig(run=str(tmp_path / "d"), steps=4, init_from=str(export), **base), progress=False)
    assert rec["restarts"][-1]["discriminator"] == "fresh"
    with pytest.raises(Exception, match="a 'oasis' generator|a 'spade' generator"):
        other = "spade" if name == "oasis" else "oasis"
        train_gan(GanTrainConfig(run=str(tmp_path / "e"), steps=4, init_from=str(export), **{**base, "method": other}),
                  progress=False)


def test_the_shipped_gan_is_the_runs_best_on_training_layouts_and_keeps_the_runs_budget(toy_root, tmp_path):
    import json

    from sparsesis.baselines.ship import main as ship_main
    from sparsesis.baselines.ship import ship
    from sparsesis.loader import load

    run = tmp_path / "g"
    train_gan(GanTrainConfig(method="spade", run=str(run), data=str(toy_root), image_size=32, batch_size=2, steps=4,
                             snapshot_every=2, threads=2), progress=False)
    early, late = run / "snapshots" / "images_0000004", run / "snapshots" / "images_0000008"
    rows = [{"images_seen": 4, "fd": 120.0, "folder": str(early)}, {"images_seen": 8, "fd": 130.0, "folder": str(late)},
            {"images_seen": 2, "fd": 90.0, "folder": str(tmp_path / "gone")}]  # the best, but no longer on disk
    selection = {"input": "random_mask, 1 mask seed, the first 100 training layouts, seed 0",
                 "methods": {"spade": rows}}
    cfg = ship(selection, "spade", run, tmp_path / "out")
    assert (tmp_path / "out" / "model.safetensors").read_bytes() == (early / "model.safetensors").read_bytes()
    assert cfg["record"]["images_seen"] == 4 and cfg["record"]["run"]["images_seen"] == 8
    assert cfg["record"]["run"]["chosen_from"] == {"2": 90.0, "4": 120.0, "8": 130.0}
    info = load(tmp_path / "out").info()
    assert (info["images_seen"], info["run_images_seen"]) == (4, 8) and "training layouts" in info["chosen"]
    held_out = {**selection, "input": "random_mask, 1 mask seed, 100 held-out layouts, seed 0"}
    with pytest.raises(ValueError, match="training layouts"):  # the held-out set never picks a snapshot
        ship(held_out, "spade", run, tmp_path / "out2")
    with pytest.raises(ValueError, match="no scored generator of 'oasis'"):
        ship(selection, "oasis", run, tmp_path / "out2")
    path = tmp_path / "selection.json"
    path.write_text(json.dumps(held_out))
    for argv, message in ((["--selection", str(tmp_path / "none.json")], "none.json not found"),
                          (["--selection", str(path)], "training layouts")):
        with pytest.raises(SystemExit, match=message):
            ship_main(["--method", "spade", "--run-dir", str(run), "--out", str(tmp_path / "o"), *argv])
    assert not (tmp_path / "o").exists() and not (tmp_path / "out2").exists()
