"""The evaluation entry point on a tiny set, single- and multi-process."""
import json
import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from conftest import REPO, tiny_teacher

from sparsesis.evaluation.evaluate import main, markdown_table, shard
from sparsesis.data.inputs import held_out_inputs
from sparsesis.data.inputs import KINDS, make_input
from sparsesis.data.sets import load_split

U = 4


def test_input_kinds_are_deterministic_and_only_hide_or_keep(toy_root):
    pairs = load_split("eval", 32, toy_root, progress=False)
    _, full = pairs.centre(0)
    for kind in KINDS + ("share:0.25", "strokes:2"):
        a, b = make_input(kind, full, U, 3), make_input(kind, full, U, 3)
        np.testing.assert_array_equal(a, b)
        if kind != "downsampled":  # downsampling may move a boundary; every other kind only hides labels
            lab = a != U
            np.testing.assert_array_equal(a[lab], full[lab])
    assert (make_input("random_unknown", full, U, 0) == U).mean() == pytest.approx(0.1, abs=0.05)
    assert (make_input("dense", full, U, 0) == full).all()
    with pytest.raises(ValueError, match="unknown input kind"):
        make_input("nope", full, U, 0)


def test_held_out_inputs_same_for_every_call(toy_root):
    pairs = load_split("eval", 32, toy_root, progress=False)
    a, ia = held_out_inputs(pairs, "random_mask", 2)
    b, _ = held_out_inputs(pairs, "random_mask", 2)
    np.testing.assert_array_equal(a, b)
    assert len(a) == 2 * len(pairs) and list(ia[:4]) == [0, 1, 2, 3]


def test_shard_covers_everything_once():
    for n, w in [(10, 3), (3, 4), (100, 2)]:
        blocks = [shard(n, r, w) for r in range(w)]
        covered = [i for lo, hi in blocks for i in range(lo, hi)]
        assert covered == list(range(n))


@pytest.mark.slow
def test_table_entry_point_on_tiny_set(toy_root, tmp_path):
    out = tmp_path / "eval.json"
    main(["table", "--data", str(toy_root), "--method", "trivial", "--kinds", "random_mask", "dense",
          "--mask-seeds", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["metric"] == "FD-EffNetL0"
    t = res["methods"]["trivial"]
    assert t["random_mask"]["n"] == 8 and t["dense"]["n"] == 4
    assert t["dense"]["fd"] > 0 and np.isfinite(t["random_mask"]["kid"])
    # dense layouts give the trivial baseline strictly more information than masked ones
    assert t["dense"]["labelled_share"] == 1.0 > t["random_mask"]["labelled_share"]
    # the markdown table beside the JSON carries the same figures
    md = out.with_suffix(".md").read_text()
    row = next(line for line in md.splitlines() if line.startswith("| trivial"))
    assert f"{t['random_mask']['fd']:.1f}" in row and f"{t['dense']['kid']:.3f}" in row
    assert "random_mask FD-EffNetL0" in md and res["command"] in md


def test_markdown_table_marks_the_best_method_per_kind():
    res = {"metric": "FD-X", "n_real": 10, "mask_seeds": 1,
           "methods": {"a": {"k": {"fd": 10.0, "kid": 0.5}}, "b": {"k": {"fd": 20.0, "kid": 0.1}}},
           "info": {"a": {"parameters": 2_500_000, "images_seen": 1000, "train_hours": 0.5}, "b": {}}}
    rows = {line.split("|")[1].strip(): line for line in markdown_table(res).splitlines() if line.startswith("| ")}
    assert "**10.0**" in rows["a"] and "0.500" in rows["a"] and "**0.500**" not in rows["a"]
    assert "**0.100**" in rows["b"] and "**20.0**" not in rows["b"]
    assert "2.5 M" in rows["a"] and "1,000" in rows["a"]
    # a generator chosen from a longer run shows the run's budget beside its own
    res["info"]["b"] = {"parameters": 1e6, "images_seen": 144000, "train_hours": 3.78, "run_images_seen": 150000,
                        "run_train_hours": 3.99}
    rows = {line.split("|")[1].strip(): line for line in markdown_table(res).splitlines() if line.startswith("| ")}
    assert "144,000 (run: 150,000)" in rows["b"] and "3.78 (run: 3.99)" in rows["b"]


@pytest.mark.slow
def test_two_process_evaluation_matches_one(toy_root, tmp_path):
    one, two = tmp_path / "one.json", tmp_path / "two.json"
    args = ["table", "--data", str(toy_root), "--method", "trivial", "--kinds", "random_mask", "--mask-seeds", "2"]
    main(args + ["--out", str(one)])
    env = dict(os.environ, OMP_NUM_THREADS="1")
    r = subprocess.run([sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
                        "-m", "sparsesis.evaluation.evaluate", *args, "--out", str(two)], capture_output=True, text=True,
                       timeout=600, env=env)
    assert r.returncode == 0, r.stderr[-3000:]
    a, b = json.loads(one.read_text()), json.loads(two.read_text())
    assert a["methods"]["trivial"]["random_mask"]["fd"] == pytest.approx(b["methods"]["trivial"]["random_mask"]["fd"], rel=1e-6)
    assert a["methods"]["trivial"]["random_mask"]["n"] == b["methods"]["trivial"]["random_mask"]["n"] == 8


@pytest.mark.slow
def test_table_with_segmenter_reports_miou(toy_root, tmp_path):
    from sparsesis.training.train_segmenter import train_segmenter

    train_segmenter(tmp_path / "seg", toy_root, size=64, steps=30, batch_size=4, lr=3e-3, progress=False)
    out = tmp_path / "eval.json"
    main(["table", "--data", str(toy_root), "--method", "trivial", "--kinds", "dense", "--mask-seeds", "1",
          "--segmenter", str(tmp_path / "seg" / "export"), "--out", str(out)])
    res = json.loads(out.read_text())
    miou = res["methods"]["trivial"]["dense"]["miou"]
    assert 0.0 <= miou <= 1.0 and 0.0 <= res["segmenter_real_miou"] <= 1.0
    per = res["methods"]["trivial"]["dense"]["iou_per_class"]
    assert set(per) == set(res["segmenter_real_iou_per_class"]) == {"ground", "wall", "sky", "tree"}
    assert miou == pytest.approx(np.mean([v for v in per.values() if v is not None]), abs=1e-3)


@pytest.mark.slow
def test_sparsity_command_writes_the_documented_layout(toy_root, tmp_path):
    out = tmp_path / "sparsity.json"
    main(["sparsity", "--data", str(toy_root), "--method", "trivial", "--shares", "1", "0.1", "--strokes", "1", "3",
          "--out", str(out)])
    res = json.loads(out.read_text())
    assert set(res["random_mask"]["trivial"]) == {"1", "0.1"} and set(res["scribble"]["trivial"]) == {"1", "3"}
    for kind in ("downsampled", "edges_unknown", "random_unknown"):
        assert res[kind]["trivial"]["n"] == 4
    r = res["random_mask"]["trivial"]
    assert r["1"]["labelled_share"] == 1.0 and r["0.1"]["labelled_share"] < 0.2
    s = res["scribble"]["trivial"]
    assert s["3"]["labelled_share"] > s["1"]["labelled_share"]


@pytest.mark.slow
def test_distillation_command_reports_teacher_ddim_and_students(toy_root, tmp_path):
    from sparsesis.training.distill import DistillConfig, distill

    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    distill(DistillConfig(teacher=teacher, run=str(tmp_path / "d"), data=str(toy_root), teacher_steps=8,
                          final_steps=2, iters_per_stage=1, batch_size=2, threads=2, guidance=2.5, guide=None,
                          cfg_scale=1.0), progress=False)
    out = tmp_path / "distillation.json"
    main(["distillation", "--data", str(toy_root), "--checkpoint", teacher, "--teacher-steps", "8",
          "--students", str(tmp_path / "d"), "--ddim-steps", "2", "--repeats", "3", "--other-guidance", "1", "2.5",
          "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["metric"] == "FD-EffNetL0" and res["teacher"]["steps"] == 8
    # the teacher is measured at the scale its students bake in, not at its own default
    assert res["guidance"] == 2.5 != json.loads((Path(teacher) / "config.json").read_text())["sampling"]["guidance"]
    assert set(res["students"]) == {"4", "2"} and set(res["ddim"]) == {"2"}
    # extra plain-DDIM rows at the students' step counts; the students' own scale is not repeated
    assert set(res["ddim_other_guidance"]) == {"1"} and set(res["ddim_other_guidance"]["1"]) == {"4", "2"}
    for row in res["ddim_other_guidance"]["1"].values():
        assert row["n"] == 4 and np.isfinite(row["fd"]) and "latency_s" not in row
    for row in [res["teacher"], *res["students"].values(), *res["ddim"].values()]:
        assert row["n"] == 4 and np.isfinite(row["fd"]) and row["latency_s"] > 0
    assert "psnr_to_teacher" not in res["teacher"]
    for row in [*res["students"].values(), *res["ddim"].values()]:
        assert 0 < row["psnr_to_teacher"] < 100
    # a 2-step student makes 2 network passes; the guided teacher at 8 steps makes 16
    assert res["students"]["2"]["latency_s"] < res["teacher"]["latency_s"]
    with pytest.raises(SystemExit, match="differs from the 2.5 the students bake in"):
        main(["distillation", "--data", str(toy_root), "--checkpoint", teacher, "--students", str(tmp_path / "d"),
              "--guidance", "1.5", "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="not a distilled student"):
        main(["distillation", "--data", str(toy_root), "--checkpoint", teacher, "--students", teacher,
              "--out", str(tmp_path / "x.json")])
    with pytest.raises(SystemExit, match="holds no student"):
        main(["distillation", "--data", str(toy_root), "--checkpoint", teacher, "--students", str(tmp_path),
              "--out", str(tmp_path / "x.json")])


def test_the_teacher_is_measured_at_the_scale_its_students_bake_in():
    from types import SimpleNamespace

    from sparsesis.evaluation.evaluate import students_guidance

    at = lambda g: SimpleNamespace(baked_guidance=g)  # noqa: E731
    assert students_guidance({4: at(4.0), 2: at(4.0)}, None) == 4.0
    assert students_guidance({4: at(4.0)}, 4.0) == 4.0
    with pytest.raises(SystemExit, match="different guidance scales"):
        students_guidance({4: at(4.0), 2: at(1.5)}, None)
    with pytest.raises(SystemExit, match="differs from the 4 the students bake in"):
        students_guidance({4: at(4.0)}, 1.5)


@pytest.mark.slow
def test_the_teacher_is_sampled_as_its_students_were_distilled():
    from types import SimpleNamespace

    from sparsesis.evaluation.evaluate import students_sampler

    made = lambda guide=None, interval=None: SimpleNamespace(distilled={"guide": guide, "interval": interval})  # noqa: E731
    assert students_sampler({4: made(), 2: made()}) == {"guide": "cfg"}
    here = str(REPO / "checkpoints" / "ours64")
    assert students_sampler({4: made(here, [0.2, 0.8])}) == {"guide": Path(here), "interval": (0.2, 0.8)}
    with pytest.raises(SystemExit, match="different teacher samplers"):
        students_sampler({4: made(here), 2: made()})
    with pytest.raises(SystemExit, match="which is not here: pass --guide"):
        students_sampler({4: made("runs/gone")})
    assert students_sampler({4: made("runs/gone")}, guide=here)["guide"] == Path(here)  # moved since: say where


def test_an_autoguided_students_teacher_rows_use_their_guide(toy_root, tmp_path):
    from sparsesis.training.distill import DistillConfig, distill

    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    # guided by itself, autoguidance is the plain conditional model at every scale (classifier-free guidance is not)
    distill(DistillConfig(teacher=teacher, run=str(tmp_path / "d"), data=str(toy_root), teacher_steps=4,
                          final_steps=2, iters_per_stage=1, batch_size=2, threads=2, guidance=3.0, guide=teacher,
                          cfg_scale=1.0),
            progress=False)
    out = tmp_path / "distillation.json"
    main(["distillation", "--data", str(toy_root), "--checkpoint", teacher, "--teacher-steps", "4",
          "--students", str(tmp_path / "d" / "student_2"), "--ddim-steps", "2", "--repeats", "1",
          "--other-guidance", "1", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["teacher_sampler"] == {"guide": teacher} and res["guidance"] == 3.0
    assert res["ddim"]["2"]["fd"] == res["ddim_other_guidance"]["1"]["2"]["fd"]


def test_table_takes_the_image_size_from_the_model(toy_root, tmp_path):
    """A 32 px model is evaluated on the held-out split at 32 px (not a hard-coded 64)."""
    from sparsesis.training.train import TrainConfig, train

    train(TrainConfig(run=str(tmp_path / "m"), data=str(toy_root), preset="tiny", image_size=32, batch_size=2,
                      steps=1, sample_every=10 ** 9, threads=2))
    out = tmp_path / "eval.json"
    main(["table", "--data", str(toy_root), "--method", f"tiny={tmp_path / 'm' / 'export'}", "--method", "trivial",
          "--kinds", "random_mask", "--mask-seeds", "1", "--steps", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    assert res["methods"]["tiny"]["random_mask"]["n"] == 4 and res["info"]["tiny"]["steps"] == 2
    assert res["methods"]["trivial"]["random_mask"]["n"] == 4
