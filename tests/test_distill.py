import json

import numpy as np
import pytest
import torch

from conftest import tiny_teacher

from sparsesis import Synthesizer
from sparsesis.models.checkpoint import STATE_FILE, read_metadata
from sparsesis.models.diffusion import q_sample, v_from_x
from sparsesis.training.distill import (DistillConfig, distill, distill_loss, distillation_target, parse_config,
                               stage_iterations, stage_plan, student_dir, student_times)


def test_stage_plan_halves():
    assert stage_plan(64, 4) == [32, 16, 8, 4]
    assert stage_plan(256, 1) == [128, 64, 32, 16, 8, 4, 2, 1]
    for bad in [(48, 4), (64, 3), (4, 4)]:
        with pytest.raises(ValueError):
            stage_plan(*bad)


def test_stage_iterations_one_count_or_one_per_stage():
    plan = stage_plan(32, 4)
    assert stage_iterations(100, plan) == {16: 100, 8: 100, 4: 100}
    assert stage_iterations((7,), plan) == {16: 7, 8: 7, 4: 7}
    assert stage_iterations((1, 2, 3), plan) == {16: 1, 8: 2, 4: 3}
    for bad in [(1, 2), (1, 2, 3, 4), (5, 0, 5), 0]:
        with pytest.raises(ValueError, match="one per stage"):
            stage_iterations(bad, plan)


def test_default_config_is_the_shipped_recipe_and_parses():
    d = DistillConfig()
    assert (d.teacher_steps, d.final_steps, d.guidance, d.cfg_scale) == (8, 2, 1.5, 2.0)
    assert d.guide == "checkpoints/ours64/guide"
    assert stage_iterations(d.iters_per_stage, stage_plan(d.teacher_steps, d.final_steps)) == {4: 3600, 2: 800}
    assert parse_config([]) == d  # the command line without options is the same recipe
    assert parse_config(["--teacher-steps", "16", "--iters-per-stage", "5"]).iters_per_stage == (5,)
    with pytest.raises(SystemExit):  # 6 counts for the 2 stages of 16 -> 4: a usage error, not a traceback
        parse_config(["--teacher-steps", "16"])


def test_stage_lr_decays_linearly_to_zero():
    from sparsesis.training.distill import stage_lr

    lrs = [stage_lr(1e-4, i, 4) for i in range(4)]
    assert lrs == pytest.approx([1e-4, 7.5e-5, 5e-5, 2.5e-5])


def test_target_of_an_exact_teacher_is_the_data():
    """With a teacher that knows x, two DDIM steps land where one step with x would: the target is x."""
    g = torch.Generator().manual_seed(0)
    x = torch.rand(3, 3, 8, 8, generator=g) * 2 - 1
    t = student_times(4, 3, g)
    z = q_sample(x, t, torch.randn(3, 3, 8, 8, generator=g))
    target = distillation_target(lambda zz, tt: v_from_x(zz, x, tt), z, t, 4)
    torch.testing.assert_close(target, x, atol=1e-4, rtol=0)


def test_student_learns_two_teacher_steps_in_one():
    """One stage on a tiny problem: the student's one-step error against two teacher steps falls."""
    torch.manual_seed(0)
    g = torch.Generator().manual_seed(1)
    x = torch.rand(8, 3, 8, 8, generator=g) * 2 - 1
    teacher = torch.nn.Conv2d(3, 3, 3, padding=1)
    student = torch.nn.Conv2d(3, 3, 3, padding=1)
    teacher_fn = lambda z, t: teacher(z) * (1 - t[:, None, None, None])  # noqa: E731
    student_fn = lambda z, t: student(z) * (1 - t[:, None, None, None])  # noqa: E731
    opt = torch.optim.Adam(student.parameters(), lr=1e-2)

    def eval_loss():
        gg = torch.Generator().manual_seed(99)
        with torch.no_grad():
            return distill_loss(student_fn, teacher_fn, x, torch.randn(x.shape, generator=gg),
                                student_times(2, 8, gg), 2).mean().item()

    before = eval_loss()
    for i in range(200):
        loss = distill_loss(student_fn, teacher_fn, x, torch.randn(x.shape, generator=g), student_times(2, 8, g), 2)
        opt.zero_grad()
        loss.mean().backward()
        opt.step()
    assert eval_loss() < 0.5 * before


@pytest.mark.slow
def test_distill_stages_resume_and_name_checkpoints(toy_root, tmp_path):
    tiny_teacher(toy_root, tmp_path / "teacher", steps=4)
    cfg = DistillConfig(teacher=str(tmp_path / "teacher" / "export"), run=str(tmp_path / "d"), data=str(toy_root),
                        teacher_steps=8, final_steps=2, iters_per_stage=4, batch_size=2, save_every=2, threads=2,
                        guidance=4.0, guide=None, cfg_scale=1.0)
    # stop inside the first stage: run a plan that ends after it, with fewer iterations, then resume
    distill(DistillConfig(**{**cfg.__dict__, "final_steps": 4, "iters_per_stage": 2}), progress=False)
    assert (student_dir(tmp_path / "d", 4) / "model.safetensors").is_file()
    summary = distill(cfg, progress=False)
    assert summary["plan"] == [4, 2] and list(summary["stages"]) == [2]  # stage 4 was done: not redone
    assert not (tmp_path / "d" / STATE_FILE).exists()  # no half stage left behind
    s = Synthesizer.from_pretrained(student_dir(tmp_path / "d", 2))
    assert s.default_steps == 2 and s.distilled["guidance"] == s.guidance_label
    # the budget adds up across stages: 2 iterations of stage 4, then 4 of stage 2, batch 2
    assert s.distilled["stage"]["images"] == 8 and s.distilled["total"]["images"] == 4 + 8
    assert s.distilled["total"]["seconds"] >= s.distilled["stage"]["seconds"] > 0
    from sparsesis.evaluation.generators import ModelGenerator

    teacher_images = Synthesizer.from_pretrained(cfg.teacher).config["record"]["images_seen"]
    assert ModelGenerator(s).info()["images_seen"] == teacher_images + 12
    lay = np.full((32, 32), 4)
    lay[:10] = 2
    img = s(lay, seed=0)
    assert img.shape == (32, 32, 3)
    with pytest.raises(ValueError, match="built in"):
        s(lay, guidance=s.guidance_label + 1)


@pytest.mark.slow
def test_distill_resumes_mid_stage(toy_root, tmp_path):
    tiny_teacher(toy_root, tmp_path / "teacher")
    base = dict(teacher=str(tmp_path / "teacher" / "export"), run=str(tmp_path / "d"), data=str(toy_root),
                teacher_steps=4, final_steps=2, batch_size=2, save_every=2, threads=2, guidance=4.0, guide=None,
                cfg_scale=1.0)
    import sparsesis.training.distill as D

    # simulate an interruption: a state file for stage 2 at iteration 2
    orig = D.save_model_dir
    D.save_model_dir = lambda *a, **k: (_ for _ in ()).throw(KeyboardInterrupt())
    try:
        with pytest.raises(KeyboardInterrupt):
            distill(DistillConfig(**base, iters_per_stage=2), progress=False)
    finally:
        D.save_model_dir = orig
    meta = read_metadata(tmp_path / "d" / STATE_FILE)
    assert meta["stage"] == "2" and meta["iteration"] == "2"
    distill(DistillConfig(**base, iters_per_stage=3), progress=False)
    assert (student_dir(tmp_path / "d", 2) / "config.json").is_file()
    cfg = json.loads((student_dir(tmp_path / "d", 2) / "config.json").read_text())
    assert cfg["distillation"]["steps"] == 2 and cfg["sampling"]["steps"] == 2


def test_the_first_stage_distils_the_sampler_asked_for():
    """Classifier-free, autoguided or interval-guided: the target sampler is the one the flags name."""
    from sparsesis.training.distill import guided_teacher

    class Net(torch.nn.Module):  # v depends on the layout: all UNKNOWN gives a different answer
        def __init__(self, gain):
            super().__init__()
            self.gain = gain

        def forward(self, z, t, lay):
            return self.gain * z + lay[:, :1]

    z, t = torch.ones(1, 1, 2, 2), torch.full((1,), 0.5)
    lay, uncond = torch.ones(1, 1, 2, 2), torch.zeros(1, 1, 2, 2)
    teacher, guide = Net(2.0), Net(0.5)
    cfg = guided_teacher(teacher, lay, uncond, 3.0)(z, t)  # v_u + 3 (v_c - v_u) = 2 + 3 * 1
    torch.testing.assert_close(cfg, torch.full_like(z, 5.0))
    auto = guided_teacher(teacher, lay, uncond, 3.0, guide=guide)(z, t)  # v_g + 3 (v_m - v_g) = 1.5 + 3 * 1.5
    torch.testing.assert_close(auto, torch.full_like(z, 6.0))
    outside = guided_teacher(teacher, lay, uncond, 3.0, interval=(0.6, 1.0))(z, t)  # t = 0.5: unguided
    torch.testing.assert_close(outside, torch.full_like(z, 3.0))
    # classifier-free on top of autoguidance: v_c + (3 - 1)(v_c - v_g) + (2 - 1)(v_c - v_u) = 3 + 3 + 1
    both = guided_teacher(teacher, lay, uncond, 3.0, guide=guide, cfg_scale=2.0)(z, t)
    torch.testing.assert_close(both, torch.full_like(z, 7.0))
    # autoguidance at 1 leaves classifier-free guidance alone
    torch.testing.assert_close(guided_teacher(teacher, lay, uncond, 1.0, guide=guide, cfg_scale=2.0)(z, t),
                               guided_teacher(teacher, lay, uncond, 2.0)(z, t))


@pytest.mark.slow
def test_an_autoguided_distillation_records_its_guide(toy_root, tmp_path):
    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    distill(DistillConfig(teacher=teacher, run=str(tmp_path / "d"), data=str(toy_root), teacher_steps=4,
                          final_steps=2, iters_per_stage=1, batch_size=2, threads=2, guide=teacher,
                          interval=(0.2, 0.8)), progress=False)
    s = Synthesizer.from_pretrained(student_dir(tmp_path / "d", 2))
    assert s.distilled["guide"] == teacher and s.distilled["interval"] == [0.2, 0.8]
    with pytest.raises(ValueError, match="undistilled model"):
        distill(DistillConfig(teacher=teacher, run=str(tmp_path / "e"), data=str(toy_root), teacher_steps=4,
                              final_steps=2, iters_per_stage=1, batch_size=2, guide=str(student_dir(tmp_path / "d", 2))),
                progress=False)


@pytest.mark.slow
def test_a_distillation_with_both_guidances_warm_started_from_a_student(toy_root, tmp_path):
    """--cfg-scale adds classifier-free guidance to the autoguided sampler; --student-init starts the first stage
    from an earlier student, whose budget the new student's record carries."""
    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    common = dict(teacher=teacher, data=str(toy_root), teacher_steps=4, final_steps=2, batch_size=2, threads=2)
    distill(DistillConfig(run=str(tmp_path / "a"), iters_per_stage=2, guide=teacher, cfg_scale=1.0, **common),
            progress=False)
    first = Synthesizer.from_pretrained(student_dir(tmp_path / "a", 2))
    distill(DistillConfig(run=str(tmp_path / "b"), iters_per_stage=1, guide=teacher, cfg_scale=2.0,
                          student_init=str(student_dir(tmp_path / "a", 2)), **common), progress=False)
    s = Synthesizer.from_pretrained(student_dir(tmp_path / "b", 2))
    assert s.distilled["cfg_scale"] == 2.0 and s.distilled["student_init"] == str(student_dir(tmp_path / "a", 2))
    assert s.distilled["total"]["images"] == first.distilled["total"]["images"] + 2  # 2 + one iteration of 2
    assert s.guidance_kind == "autoguidance"
    lay = np.full((32, 32), s.classset.unknown_id)
    np.testing.assert_array_equal(s(lay, seed=1, cfg_scale=2.0), s(lay, seed=1))  # its own scale is accepted
    with pytest.raises(ValueError, match="cfg_scale 2 built in"):
        s(lay, seed=1, cfg_scale=3.0)
    with pytest.raises(ValueError, match="needs --guide"):
        distill(DistillConfig(run=str(tmp_path / "c"), iters_per_stage=1, cfg_scale=2.0, guide=None, **common),
                progress=False)
    with pytest.raises(ValueError, match="distilled 4-step student"):
        distill(DistillConfig(run=str(tmp_path / "d"), iters_per_stage=1, guide=teacher,
                              student_init=teacher, **{**common, "teacher_steps": 8}), progress=False)


def test_a_bf16_distillation_records_its_precision_and_unknown_ones_are_refused(toy_root, tmp_path):
    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    common = dict(teacher=teacher, data=str(toy_root), teacher_steps=4, final_steps=2, iters_per_stage=1,
                  batch_size=2, threads=2, guide=None, cfg_scale=1.0)
    distill(DistillConfig(run=str(tmp_path / "d"), precision="bf16", **common), progress=False)
    s = Synthesizer.from_pretrained(student_dir(tmp_path / "d", 2))
    assert s.distilled["precision"] == "bf16"
    assert np.isfinite(s.distilled["final_loss"])
    with pytest.raises(ValueError, match="precision must be one of"):
        distill(DistillConfig(run=str(tmp_path / "e"), precision="fp8", **common), progress=False)
    with pytest.raises(SystemExit):  # the command line refuses it before any work
        parse_config(["--precision", "fp16"])
