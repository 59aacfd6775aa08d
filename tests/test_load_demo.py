"""benchmarks/load_demo.py's bookkeeping (the load test itself runs a server for minutes: the lead's to run)."""
from conftest import benchmark_module

load_demo = benchmark_module("load_demo")


def test_answers_are_counted_by_kind_and_latency_is_over_the_served_ones():
    answers = [("served", t, "") for t in (1.0, 2.0, 3.0, 4.0)] + [
        ("refused", 0.1, "AppError: The demo is busy (...)"), ("refused_by_gradio", 0.2, "QueueError: Queue is full"),
        ("error", 9.0, "AppError: boom"), ("error", 9.0, "AppError: boom")]
    s = load_demo.summary(answers, elapsed=2.0)
    assert (s["requests"], s["served"], s["refused"], s["refused_by_gradio"], s["errors"]) == (8, 4, 1, 1, 2)
    assert s["error_messages"] == ["AppError: boom"] and s["p50_s"] == 2.5 and s["served_per_s"] == 2.0
    assert load_demo.summary([], elapsed=1.0)["p95_s"] is None


def test_spread_and_folder_use(tmp_path):
    assert load_demo.spread([100, 105, 110]) == 0.1 and load_demo.spread([]) is None
    (tmp_path / "a").mkdir()
    (tmp_path / "a" / "f.png").write_bytes(b"x" * 2 ** 20)
    (tmp_path / "empty").mkdir()
    assert load_demo.folder_use(tmp_path) == {"mb": 1.0, "files": 1, "folders": 2}
