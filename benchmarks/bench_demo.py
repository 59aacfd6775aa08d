"""Time from pressing Generate to receiving the image, through the demo's API (gradio_client), on this CPU.

    python benchmarks/bench_demo.py --model ours64 --steps 4 [--repeats 10] [--out results/demo_latency.json]

Starts the app on 127.0.0.1 as its own process (``python demo.py``, as a user or a Space runs it; the
client in the benchmark's process, like a browser), sends a sparse layout (an example sketch) and reports the
median round trip and the generation time the app itself shows. ``--in-process`` runs the server inside the
benchmark's process instead (client and server then share one Python interpreter).
"""
import argparse
import importlib.util
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import cv2
import numpy as np

from common import REPO, write_result  # noqa: E402  (and the repository on sys.path)


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--model", default=None, help="checkpoint folder name in checkpoints/ (default: the demo's)")
    p.add_argument("--steps", type=int, default=4)
    p.add_argument("--guidance", type=float, default=1.5)
    p.add_argument("--repeats", type=int, default=10)
    p.add_argument("--in-process", action="store_true", help="serve from this process (client and server share it)")
    p.add_argument("--out", default=None)
    a = p.parse_args()
    spec = importlib.util.spec_from_file_location("demo", REPO / "demo.py")
    demo = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(demo)
    from gradio_client import Client, handle_file

    from sparsesis.evaluation.latency import cpu_description

    models = demo.discover_models()
    name = a.model or next(iter(models))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    if a.in_process:
        app = demo.build_app(models)
        app.queue().launch(server_name="127.0.0.1", server_port=port, prevent_thread_lock=True, ssr_mode=False,
                           quiet=True)
        close = app.close
    else:
        server = subprocess.Popen([sys.executable, str(REPO / "demo.py"), "--host", "127.0.0.1", "--port", str(port)],
                                  cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
        close = server.terminate
        deadline = time.time() + 120
        while True:  # wait until the server answers
            try:
                with socket.create_connection(("127.0.0.1", port), timeout=1):
                    break
            except OSError:
                if server.poll() is not None or time.time() > deadline:
                    raise SystemExit("error: the demo server did not start (run `python demo.py` to see why)")
                time.sleep(0.5)
    try:
        for attempt in range(60):  # the port may answer before the app is mounted
            try:
                client = Client(f"http://127.0.0.1:{port}/", verbose=False)
                break
            except Exception:
                if attempt == 59:
                    raise
                time.sleep(1)
        sketch = sorted((REPO / "examples").glob("*_sketch.png"))[0]
        img = cv2.resize(cv2.imread(str(sketch)), (demo.CANVAS, demo.CANVAS), interpolation=cv2.INTER_NEAREST)
        tmp = Path(tempfile.mkdtemp()) / "layout.png"
        cv2.imwrite(str(tmp), np.concatenate([img, np.full(img.shape[:2] + (1,), 255, np.uint8)], axis=2))
        value = {"background": handle_file(str(tmp)), "layers": [], "composite": handle_file(str(tmp))}
        client.predict(value, a.steps, 0, a.guidance, name, False, api_name="/generate")  # warm-up: loads the model
        trips, shown = [], []
        for r in range(a.repeats):
            t = time.perf_counter()
            out = client.predict(value, a.steps, r, a.guidance, name, False, api_name="/generate")
            trips.append(time.perf_counter() - t)
            shown.append(float(out[3].split("**")[1].split(" ms")[0]) / 1000)
    finally:
        close()
    res = {"cpu": cpu_description(), "model": name, "steps": a.steps, "guidance": a.guidance, "repeats": a.repeats,
           "server": "in-process" if a.in_process else "separate process (python demo.py)",
           "median_round_trip_s": round(statistics.median(trips), 4),
           "median_generation_s": round(statistics.median(shown), 4)}
    write_result(a.out, res)


if __name__ == "__main__":
    main()
