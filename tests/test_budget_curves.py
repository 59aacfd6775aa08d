"""benchmarks/budget_curves.py: points measured in several runs make one curve per method."""
import pytest
from conftest import benchmark_module


def test_points_from_a_later_run_join_the_curves_and_a_remeasured_point_replaces_the_old():
    merge = benchmark_module("budget_curves").merge_curves
    teacher = "teacher, DDIM 8 steps, guidance 4"
    old = {"metric": "FD-EffNetL0", "command": "python benchmarks/budget_curves.py --gan oasis=a",
           "methods": {"ours": [{"images_seen": 70832, "fd": 119.5, "what": teacher}],
                       "oasis": [{"images_seen": 43872, "fd": 153.0}, {"images_seen": 73600, "fd": 140.0}]}}
    new = {"metric": "FD-EffNetL0", "methods": {"oasis": [{"images_seen": 73600, "fd": 138.0},
                                                          {"images_seen": 89600, "fd": 130.0}]}}
    out = merge(old, new, "python benchmarks/budget_curves.py --gan oasis=runs/oasis64")
    assert [(r["images_seen"], r["fd"]) for r in out["methods"]["oasis"]] == [(43872, 153.0), (73600, 138.0),
                                                                             (89600, 130.0)]
    assert out["methods"]["ours"] == old["methods"]["ours"]  # a method not measured again stays as it was
    assert out["commands"] == [old["command"], "python benchmarks/budget_curves.py --gan oasis=runs/oasis64"]
    assert "command" not in out
    # ours: the same images seen but another description (teacher vs student) are two points
    student = {"images_seen": 70832, "fd": 110.0, "what": "4-step student"}
    again = merge(out, {"methods": {"ours": [student]}}, "c3")
    assert len(again["methods"]["ours"]) == 2 and again["commands"][-1] == "c3"
    assert merge(None, new, "c")["methods"]["oasis"][0]["images_seen"] == 73600


def test_a_gan_named_twice_collects_the_points_of_both_folders(tmp_path):
    bc = benchmark_module("budget_curves")
    run, single = tmp_path / "run", tmp_path / "export"
    for folder in (run / "snapshots" / "images_0080000", run / "snapshots" / "images_0096000", single):
        folder.mkdir(parents=True)
        (folder / "model.safetensors").write_bytes(b"")
    measure = lambda name, f: {"method": name, "folder": f.name}  # noqa: E731
    got = bc.gan_points([f"oasis={run}", f"oasis={single}", f"spade={single}"], measure)
    assert [r["folder"] for r in got["oasis"]] == ["images_0080000", "images_0096000", "export"]
    assert [r["folder"] for r in got["spade"]] == ["export"]
    with pytest.raises(SystemExit, match="NAME=FOLDER"):
        bc.gan_points([str(single)], measure)
