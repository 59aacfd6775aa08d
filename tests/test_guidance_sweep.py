"""benchmarks/guidance_sweep.py: teachers' samplers and distilled students scored on training layouts."""
import json

import numpy as np
import pytest

from conftest import benchmark_module, tiny_teacher


def sweep_main():
    return benchmark_module("guidance_sweep").main


@pytest.mark.slow
def test_a_student_is_scored_beside_the_teachers_samplers(toy_root, tmp_path):
    from sparsesis.training.distill import DistillConfig, distill

    teacher = tiny_teacher(toy_root, tmp_path / "teacher")
    distill(DistillConfig(teacher=teacher, run=str(tmp_path / "d"), data=str(toy_root), teacher_steps=4,
                          final_steps=2, iters_per_stage=1, batch_size=2, threads=2, guidance=3.0, guide=teacher),
            progress=False)
    student = str(tmp_path / "d" / "student_2")
    out = tmp_path / "sweep.json"
    main = sweep_main()
    common = ["--checkpoint", teacher, "--data", str(toy_root), "--limit", "4", "--out", str(out)]
    main([*common, "--guide", f"self={teacher}", "--steps", "2", "--scales", "3", "--student", f"s2={student}"])
    res = json.loads(out.read_text())
    assert set(res["rows"]) == {"cfg_s2_w3", "auto-self_s2_w3", "student-s2"}
    row = res["rows"]["student-s2"]
    # the student is scored at its own steps and the guidance it bakes in, and says what it was distilled from
    assert (row["steps"], row["scale"], row["kind"], row["guide"]) == (2, 3.0, "student of auto", teacher)
    assert row["teacher_steps"] == 4 and row["n"] == 4 and np.isfinite(row["fd"]) and np.isfinite(row["kid"])
    # re-running a part replaces its rows and keeps the rest; every command is recorded
    main([*common, "--steps", "2", "--scales", "3", "--student", f"s2={student}", "--only", "student-s2"])
    res2 = json.loads(out.read_text())
    assert res2["rows"].keys() == res["rows"].keys() and len(res2["commands"]) == 2
    assert res2["guides"] == {"self": teacher}  # named by the first part, kept by the second
    assert res2["rows"]["student-s2"]["fd"] == pytest.approx(row["fd"])  # same noise, same layouts
    # with a segmenter, each row also says how closely it follows the layout
    from sparsesis.training.train_segmenter import train_segmenter

    train_segmenter(tmp_path / "seg", toy_root, size=32, steps=2, batch_size=2, progress=False)
    main([*common, "--steps", "2", "--scales", "3", "--only", "cfg_s2_w3", "--segmenter", str(tmp_path / "seg" / "export")])
    res3 = json.loads(out.read_text())
    assert 0.0 <= res3["rows"]["cfg_s2_w3"]["miou"] <= 1.0 and "miou" not in res3["rows"]["student-s2"]
    assert res3["rows"]["cfg_s2_w3"]["fd"] == pytest.approx(res["rows"]["cfg_s2_w3"]["fd"])
    # classifier-free guidance on top of each guide's autoguidance: rows of their own
    main([*common, "--guide", f"self={teacher}", "--steps", "2", "--scales", "3", "--cfg-scales", "1", "2",
          "--only", "auto-self_s2_w3_c2"])
    row4 = json.loads(out.read_text())["rows"]["auto-self_s2_w3_c2"]
    assert (row4["kind"], row4["scale"], row4["cfg_scale"]) == ("auto", 3.0, 2.0) and np.isfinite(row4["fd"])
    # a tag keeps another checkpoint's rows apart from these; each row names the checkpoint it measured
    main([*common, "--steps", "2", "--scales", "3", "--tag", "again", "--only", "again/cfg_s2_w3"])
    res5 = json.loads(out.read_text())
    assert set(res5["rows"]) == set(res3["rows"]) | {"auto-self_s2_w3_c2", "again/cfg_s2_w3"}
    assert res5["rows"]["again/cfg_s2_w3"]["checkpoint"] == teacher
    assert res5["rows"]["again/cfg_s2_w3"]["fd"] == pytest.approx(res["rows"]["cfg_s2_w3"]["fd"])
    assert "command" not in res5  # the parts' commands are listed instead
    with pytest.raises(SystemExit):
        main([*common, "--student", f"t={teacher}"])  # a teacher is not a student
    with pytest.raises(SystemExit):
        main([*common, "--student", student])  # NAME= missing
