"""GAN baselines: one training step on a tiny input, resume, export and reload."""
import numpy as np
import pytest
import torch

from sparsesis.baselines.spade import SpadeConfig, SpadeMethod
from sparsesis.baselines.train import GanTrainConfig, load_generator, train_gan
from sparsesis.checkpoint import STATE_FILE, load_tensors
from sparsesis.classes import one_hot


def test_spade_one_step_updates_both_networks():
    torch.manual_seed(0)
    m = SpadeMethod(SpadeConfig(image_size=32, label_channels=5, base_channels=8, disc_channels=8, z_dim=16,
                                spade_hidden=8))
    x = torch.rand(2, 3, 32, 32) * 2 - 1
    lay = one_hot(torch.randint(0, 5, (2, 32, 32)), 5)
    g0 = [p.detach().clone() for p in m.generator.parameters()]
    d0 = [p.detach().clone() for p in m.discriminator.parameters()]
    opt_g = torch.optim.Adam(m.generator.parameters(), 1e-3)
    opt_d = torch.optim.Adam(m.discriminator.parameters(), 1e-3)
    d_loss, _ = m.d_loss(x, lay)
    opt_d.zero_grad(); d_loss.backward(); opt_d.step()
    g_loss, logs = m.g_loss(x, lay)
    opt_g.zero_grad(); g_loss.backward(); opt_g.step()
    assert torch.isfinite(d_loss) and torch.isfinite(g_loss) and set(logs) == {"g", "fm"}
    assert any(not torch.equal(a, b) for a, b in zip(g0, m.generator.parameters()))
    assert any(not torch.equal(a, b) for a, b in zip(d0, m.discriminator.parameters()))
    out = m.generate(lay, [0, 1])
    assert out.shape == (2, 3, 32, 32) and out.abs().max() <= 1


def test_spade_generation_follows_seed():
    m = SpadeMethod(SpadeConfig(image_size=32, label_channels=5, base_channels=8, disc_channels=8, z_dim=16,
                                spade_hidden=8)).eval()
    lay = one_hot(torch.zeros(1, 32, 32, dtype=torch.long), 5)
    torch.testing.assert_close(m.generate(lay, [3]), m.generate(lay, [3]))
    assert not torch.allclose(m.generate(lay, [3]), m.generate(lay, [4]))


@pytest.mark.slow
def test_gan_loop_resumes_and_exports(toy_root, tmp_path):
    cfg = GanTrainConfig(run=str(tmp_path / "g"), data=str(toy_root), image_size=32, batch_size=2, steps=2,
                         save_every=1, threads=2)
    train_gan(cfg, progress=False)
    rec = train_gan(GanTrainConfig(**{**cfg.__dict__, "steps": 3}), progress=False)
    assert rec["step"] == 3 and rec["images_seen"] == 6
    method, classset, config = load_generator(tmp_path / "g" / "export")
    assert classset.num_classes == 4 and config["method"] == "spade"
    lay = one_hot(torch.full((1, 32, 32), 4), 5)
    assert method.generate(lay, [0]).shape == (1, 3, 32, 32)
    assert any(k.startswith("opt_d.") for k in load_tensors(tmp_path / "g" / STATE_FILE))


@pytest.mark.slow
def test_evaluation_accepts_a_gan_checkpoint(toy_root, tmp_path):
    import json

    from sparsesis.evaluate import main

    train_gan(GanTrainConfig(run=str(tmp_path / "g"), data=str(toy_root), image_size=64, batch_size=2, steps=1,
                             threads=2), progress=False)
    out = tmp_path / "eval.json"
    main(["table", "--data", str(toy_root), "--method", f"spade={tmp_path / 'g' / 'export'}", "--kinds", "scribble",
          "--mask-seeds", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["methods"]["spade"]["scribble"]["n"] == 4
    assert res["info"]["spade"]["images_seen"] == 2
