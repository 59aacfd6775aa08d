"""The demo under load, on loopback, as a public Space gets probed: a burst of requests at once, then a soak at a
steady rate, through ``gradio_client``.

    python benchmarks/load_demo.py --requests 48 --clients 12 --soak-minutes 10 --rate 1 --out results/load.json

Starts ``python demo.py`` as its own process on 127.0.0.1 (a free port, its own Gradio temporary folder, the
``--max-queue``, ``--time-limit`` and ``--file-lifetime`` given here), makes ``--clients`` clients (each its own
session, one request each to warm up), then:

1. a single request three times (the median: a picture's round trip with the server idle);
2. the burst: ``--requests`` requests from the ``--clients`` clients at once;
3. the soak: ``--soak-minutes`` of ``--rate`` requests a second (open loop: a request starts when it is due, and
   its time counts from then), the server's memory and temporary folder sampled every ``--sample-every`` seconds;
4. the single request again.

Every request sends an example sketch to ``/generate`` (the demo's default model, ``--steps``) with its own seed.
An answer is *served* (a picture), *refused* (the demo's busy answer; Gradio's own 'Queue is full' is counted
apart) or an *error* (anything else, its first messages kept). Per phase: the counts, p50 / p95 latency and
requests a second; the server's RSS and its temporary folder (bytes, files, folders) before and after, their
spread after the first minute of the soak, and the lines the server logged (tracebacks, busy, user errors).
The soak runs the demo with a short ``--file-lifetime`` (default 30 s) so that the folder reaches its steady size
within the first minute; ``temp_dir.steady_state_mb_at_default_lifetime`` scales the measured bytes per request to
the demo's own lifetime at the soak's rate (given for a soak of at least twice the lifetime). The clients share
the machine with the server: on 2 cores they take part of its CPU. Bounded: at most ``--requests`` + rate x minutes
x 60 requests (and the warm-up's), each given up after ``--time-limit`` + 120 s; the server is stopped and its
folder removed at the end.
"""
import argparse
import concurrent.futures
import importlib.util
import os
import queue
import shutil
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

import cv2
import numpy as np

from common import REPO, command_line, write_result  # noqa: E402  (and the repository on sys.path)

GIVE_UP_AFTER = 120  # seconds past the time limit a request may take before it counts as an error


def load_demo_module():
    spec = importlib.util.spec_from_file_location("demo", REPO / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    return demo


def rss_mb(pid: int) -> float:
    """The resident memory of process ``pid`` in MB."""
    try:
        import psutil

        return psutil.Process(pid).memory_info().rss / 2 ** 20
    except ImportError:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
        raise


def folder_use(folder: Path) -> dict:
    """The bytes of the files under ``folder``, and how many files and folders it holds."""
    size = files = folders = 0
    for root, dirs, names in os.walk(folder):
        folders += len(dirs)
        for name in names:
            try:
                size += os.lstat(os.path.join(root, name)).st_size
                files += 1
            except FileNotFoundError:  # deleted by the sweep meanwhile
                pass
    return {"mb": round(size / 2 ** 20, 3), "files": files, "folders": folders}


def spread(values: list[float]) -> float | None:
    """(max - min) / min: 0.1 is 'flat within 10%' read strictly (``drift`` reads it against the mean)."""
    return round((max(values) - min(values)) / min(values), 4) if values and min(values) > 0 else None


def drift(times: list[float], values: list[float]) -> dict | None:
    """How far a series strays from its mean: the lowest and highest sample relative to the mean (-0.04 = 4% below)
    and the fitted linear trend per minute relative to the mean; None for fewer than three samples."""
    if len(values) < 3 or np.mean(values) <= 0:
        return None
    mean = float(np.mean(values))
    slope = float(np.polyfit(np.asarray(times) / 60.0, values, 1)[0])
    return {"min_from_mean": round(min(values) / mean - 1, 4), "max_from_mean": round(max(values) / mean - 1, 4),
            "trend_per_minute": round(slope / mean, 4)}


def drifts(samples: list[dict]) -> dict:
    """``drift`` of the server's memory and temporary folder over the samples after the first minute."""
    after = [s for s in samples if s["t_s"] >= 60]
    t = [s["t_s"] for s in after]
    return {"rss": drift(t, [s["rss_mb"] for s in after]), "temp_mb": drift(t, [s["temp"]["mb"] for s in after]),
            "temp_files": drift(t, [s["temp"]["files"] for s in after])}


def start_server(port: int, temp_dir: Path, log_path: Path, a) -> subprocess.Popen:
    env = {**os.environ, "GRADIO_TEMP_DIR": str(temp_dir), "GRADIO_ANALYTICS_ENABLED": "False"}
    cmd = [sys.executable, str(REPO / "demo.py"), "--host", "127.0.0.1", "--port", str(port), "--max-queue",
           str(a.max_queue), "--time-limit", str(a.time_limit), "--file-lifetime", str(a.file_lifetime)]
    server = subprocess.Popen(cmd, cwd=REPO, env=env, stdout=log_path.open("w"), stderr=subprocess.STDOUT)
    deadline = time.time() + 300
    while True:  # until the port answers (the app loads its models first)
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1):
                return server
        except OSError:
            if server.poll() is not None or time.time() > deadline:
                server.kill()
                raise SystemExit(f"error: the demo server did not start; its log: {log_path}")
            time.sleep(0.5)


class Load:
    """Requests to one server from ``clients`` threads, each request with a ``gradio_client.Client`` of its own while
    it runs (the clients are made first, so that no request pays for one)."""

    def __init__(self, url: str, value: dict, model: str, steps: int, busy: str, timeout: float, clients: int):
        self.url, self.value, self.model, self.steps, self.busy, self.timeout = url, value, model, steps, busy, timeout
        self.pool = concurrent.futures.ThreadPoolExecutor(clients, thread_name_prefix="client")
        self.free = queue.SimpleQueue()
        for _ in range(clients):
            self.free.put(self.connect())

    def connect(self):
        from gradio_client import Client

        for attempt in range(60):  # the port may answer before the app is mounted
            try:
                return Client(self.url, verbose=False)
            except Exception:
                if attempt == 59:
                    raise
                time.sleep(1)

    def request(self, seed: int, due: float | None = None) -> tuple[str, float, str]:
        """(served / refused / refused_by_gradio / error, seconds from ``due`` (default now), the message)."""
        start = time.perf_counter() if due is None else due
        client = self.free.get()
        try:
            job = client.submit(self.value, self.steps, seed, 1.5, self.model, False, api_name="/generate")
            out = job.result(timeout=self.timeout)
            ok = cv2.imread(out[0]) is not None
            kind, message = ("served", "") if ok else ("error", "no picture in the answer")
        except Exception as err:  # classified below: the test reports every kind of answer
            message = f"{type(err).__name__}: {err}"[:300]
            kind = ("refused" if self.busy in message else "refused_by_gradio" if "Queue is full" in message
                    else "error")
        finally:
            self.free.put(client)
        return kind, time.perf_counter() - start, message

    def median_single(self, seeds) -> float:
        return round(statistics.median(self.pool.submit(self.request, s).result()[1] for s in seeds), 3)

    def burst(self, n: int, first_seed: int) -> dict:
        t = time.perf_counter()
        answers = list(self.pool.map(self.request, range(first_seed, first_seed + n)))
        return summary(answers, time.perf_counter() - t)

    def soak(self, minutes: float, rate: float, first_seed: int, sample, every: float) -> dict:
        n, t0 = int(round(minutes * 60 * rate)), time.perf_counter()
        samples, done = [], threading.Event()

        def sampler():
            while True:
                samples.append({"t_s": round(time.perf_counter() - t0, 1), **sample()})
                if done.wait(every):
                    return

        watcher = threading.Thread(target=sampler, daemon=True)
        watcher.start()
        futures = []
        for i in range(n):  # open loop: each request starts when due, whatever the others are doing
            due = t0 + i / rate
            time.sleep(max(0.0, due - time.perf_counter()))
            futures.append(self.pool.submit(self.request, first_seed + i, due))
        answers = [f.result() for f in futures]
        elapsed = time.perf_counter() - t0
        done.set()
        watcher.join()
        samples.append({"t_s": round(elapsed, 1), **sample()})
        after = [s for s in samples if s["t_s"] >= 60]  # (none in a soak under a minute: the spreads are null)
        return {**summary(answers, elapsed), "rate_asked": rate, "minutes": minutes,
                "spread_after_first_minute": {"rss": spread([s["rss_mb"] for s in after]),
                                              "temp_mb": spread([s["temp"]["mb"] for s in after]),
                                              "temp_files": spread([s["temp"]["files"] for s in after])},
                "drift_after_first_minute": drifts(samples), "samples": samples}


def summary(answers: list[tuple[str, float, str]], elapsed: float) -> dict:
    kinds = [k for k, _, _ in answers]
    served = sorted(t for k, t, _ in answers if k == "served")
    errors = sorted({m for k, _, m in answers if k == "error"})
    refused = [t for k, t, _ in answers if k.startswith("refused")]
    pct = lambda q: round(float(np.percentile(served, q)), 3) if served else None  # noqa: E731
    return {"requests": len(answers), "served": kinds.count("served"), "refused": kinds.count("refused"),
            "refused_by_gradio": kinds.count("refused_by_gradio"), "errors": kinds.count("error"),
            "error_messages": errors[:5], "p50_s": pct(50), "p95_s": pct(95),
            "refused_p95_s": round(float(np.percentile(refused, 95)), 3) if refused else None,
            "served_per_s": round(len(served) / elapsed, 3), "elapsed_s": round(elapsed, 1)}


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--requests", type=int, default=48, help="the burst: requests sent at once (default 48)")
    p.add_argument("--clients", type=int, default=12, help="client threads, each its own session (default 12)")
    p.add_argument("--soak-minutes", type=float, default=0.0, help="the soak's length (default 0: no soak)")
    p.add_argument("--rate", type=float, default=1.0, help="requests a second during the soak (default 1)")
    p.add_argument("--max-queue", type=int, default=None, help="the demo's --max-queue (default: the demo's)")
    p.add_argument("--time-limit", type=float, default=None, help="the demo's --time-limit (default: the demo's)")
    p.add_argument("--file-lifetime", type=int, default=30,
                   help="the demo's --file-lifetime in seconds (default 30: a steady folder within the first minute)")
    p.add_argument("--model", default=None, help="checkpoint folder name in checkpoints/ (default: the demo's)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--sample-every", type=float, default=10.0, help="seconds between the soak's samples (default 10)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if a.requests < 0 or a.clients < 1 or a.soak_minutes < 0 or a.rate <= 0 or a.sample_every <= 0:
        p.error("--requests >= 0, --clients >= 1, --soak-minutes >= 0, --rate and --sample-every > 0")
    demo = load_demo_module()
    from sparsesis.evaluation.latency import cpu_description

    a.max_queue = demo.MAX_QUEUE if a.max_queue is None else a.max_queue
    a.time_limit = demo.TIME_LIMIT if a.time_limit is None else a.time_limit
    model = a.model or next(iter(demo.discover_models()))
    work = Path(tempfile.mkdtemp(prefix="load_demo_"))
    temp_dir, log_path = work / "gradio", work / "server.log"
    temp_dir.mkdir()
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    from gradio_client import handle_file

    sketch = sorted((REPO / "examples").glob("*_sketch.png"))[0]
    img = cv2.resize(cv2.imread(str(sketch)), (demo.CANVAS, demo.CANVAS), interpolation=cv2.INTER_NEAREST)
    layout = work / "layout.png"
    cv2.imwrite(str(layout), np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2))
    value = {"background": handle_file(str(layout)), "layers": [], "composite": handle_file(str(layout))}

    res = {"command": command_line(__file__, argv), "cpu": cpu_description(),
           "server": "python demo.py, its own process on 127.0.0.1; the clients in this one (gradio_client)",
           "settings": {"model": model, "steps": a.steps, "max_queue": a.max_queue, "time_limit_s": a.time_limit,
                        "file_lifetime_s": a.file_lifetime, "clients": a.clients}}
    server, load = start_server(port, temp_dir, log_path, a), None
    sample = lambda: {"rss_mb": round(rss_mb(server.pid), 1), "temp": folder_use(temp_dir)}  # noqa: E731
    try:
        load = Load(f"http://127.0.0.1:{port}/", value, model, a.steps, demo.BUSY, a.time_limit + GIVE_UP_AFTER,
                    a.clients)
        for seed in range(a.clients):  # warm-up: every client's first request (its session's first)
            load.request(seed)
        res["before"] = sample()
        res["single_request_s"] = {"before": load.median_single([1, 2, 3])}
        if a.requests:
            res["burst"] = load.burst(a.requests, 1000)
            res["after_burst"] = sample()
            res["single_request_s"]["after_burst"] = load.median_single([4, 5, 6])
        if a.soak_minutes:
            res["soak"] = load.soak(a.soak_minutes, a.rate, 10 ** 6, sample, a.sample_every)
            res["after_soak"] = sample()
            res["single_request_s"]["after_soak"] = load.median_single([7, 8, 9])
    finally:
        if load is not None:
            load.pool.shutdown(wait=False, cancel_futures=True)
        server.terminate()
        try:
            server.wait(30)
        except subprocess.TimeoutExpired:
            server.kill()
        log = log_path.read_text(errors="replace")
        res["server_log"] = {"tracebacks": log.count("Traceback"), "busy_lines": log.count(" busy: "),
                             "user_error_lines": log.count(" user error: ")}
        shutil.rmtree(work, ignore_errors=True)
    soak = res.get("soak")
    if soak and soak["served"] and a.soak_minutes * 60 >= 2 * a.file_lifetime:  # long enough to be steady
        # a file lives between the lifetime and the lifetime plus one sweep (a sixth of it): the folder's steady
        # size over the requests it holds, scaled to the demo's own lifetime at the soak's rate
        steady = [s["temp"]["mb"] for s in soak["samples"] if s["t_s"] >= 60] or [soak["samples"][-1]["temp"]["mb"]]
        held = a.rate * a.file_lifetime * (1 + 1 / 12)
        per_request = (statistics.mean(steady) - res["before"]["temp"]["mb"]) / held
        res["temp_dir"] = {"steady_mb": round(statistics.mean(steady), 2), "mb_per_request": round(per_request, 4),
                           "steady_state_mb_at_default_lifetime": round(
                               per_request * a.rate * demo.FILE_LIFETIME * (1 + 1 / 12), 1),
                           "default_lifetime_s": demo.FILE_LIFETIME}
    write_result(a.out, res, models=[f"checkpoints/{model}", "checkpoints/upsampler4x"])


if __name__ == "__main__":
    main()
