"""Every trainer's throughput on this CPU, in images per core-second, and each shipped model's budget in
core-hours at that rate.

    python benchmarks/throughput.py --out results/throughput.json
    python benchmarks/throughput.py --only upsampler4x --out results/throughput.json   # re-measure some, keep the rest

Each training stage of every shipped folder's recipe (``sparsesis.training.reproduce``) runs as its recipe says (model,
batch, precision, one thread) in fresh run folders: ``--warmup`` steps unmeasured (it builds any data cache), then
``--warmup`` steps and ``--warmup`` + ``--steps`` steps. The difference of the last two processes' CPU time (user +
system, ``getrusage``) over the difference of their images is the rate: start-up (imports, data, building the model) cancels out, and CPU time, unlike wall-clock,
counts neither other jobs nor pauses. One thread, so CPU seconds are core-seconds. A stage's core-hours are its
recipe's budget in images over that rate. Selection stages (scoring snapshots) are not counted. Run it with
nothing else on the CPU: a busy neighbour still slows the caches and memory a process shares.
"""
import argparse
import json
import os
import platform
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from common import REPO, write_result  # (and the repository on sys.path)

# how each trainer is told its length, in units of its batch
STEP_FLAGS = {"sparsesis.training.train": "steps", "sparsesis.training.train_gan": "steps", "sparsesis.training.train_upsampler": "steps",
              "sparsesis.training.train_segmenter": "steps", "sparsesis.training.distill": "iters_per_stage"}
DEFAULT_BATCH = {"sparsesis.training.train": 16, "sparsesis.training.train_gan": 16, "sparsesis.training.train_upsampler": 16,
                 "sparsesis.training.train_segmenter": 16, "sparsesis.training.distill": 8}


def cpu_info() -> dict:
    import torch

    model = next((line.split(":", 1)[1].strip() for line in Path("/proc/cpuinfo").read_text().splitlines()
                  if line.startswith("model name")), platform.processor())
    flags = Path("/proc/cpuinfo").read_text()
    return {"cpu": model, "capability": torch.backends.cpu.get_cpu_capability(),
            "avx512_bf16": "avx512_bf16" in flags, "amx": "amx_bf16" in flags, "cores": os.cpu_count()}


def stage_argv(stage: dict, places: dict, steps: int) -> list[str]:
    from sparsesis.training.reproduce import flags

    args = dict(stage["args"])  # one thread: the recipes say so, and OMP_NUM_THREADS=1 below
    module = stage["module"]
    if module == "sparsesis.training.distill":  # the first stage alone (N -> N/2), ``steps`` iterations
        args.update(iters_per_stage=[steps], final_steps=args.get("teacher_steps", 8) // 2)
    else:
        args[STEP_FLAGS[module]] = steps
    for key in ("snapshot_every", "save_every"):
        args.pop(key, None)
    if "{run}" in str(args.get("init_from", "")):  # a later stage starts from the shipped weights instead
        args["init_from"] = places["shipped"]
    return [sys.executable, "-m", module, *flags(args, places)]


def cpu_seconds_of(argv: list[str], env: dict) -> float:
    """The CPU time (user + system) of one finished child process."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    done = subprocess.run(argv, cwd=REPO, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
    if done.returncode:
        raise SystemExit(f"error: {' '.join(argv[2:4])} failed: {done.stderr.strip().splitlines()[-1:]}")
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def measure_stage(name: str, stage: dict, data: str, warmup: int, steps: int) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"}
    batch = int(stage["args"].get("batch_size", DEFAULT_BATCH[stage["module"]]))
    seconds = []
    for n in (warmup, warmup, warmup + steps):  # the first run may build a data cache: it is not counted
        with tempfile.TemporaryDirectory() as tmp:
            places = {"run": tmp, "data": data, "shipped": str(REPO / "checkpoints" / name),
                      **{k: str(REPO / "checkpoints" / k) for k in ("ours64", "ours64/guide", "seg64")}}
            t0 = time.perf_counter()
            seconds.append((cpu_seconds_of(stage_argv(stage, places, n), env), time.perf_counter() - t0))
    seconds = seconds[1:]
    core_s = seconds[1][0] - seconds[0][0]
    rate = steps * batch / core_s
    budget = stage.get("budget", {})
    out = {"module": stage["module"], "batch": batch, "steps_timed": steps, "core_seconds": round(core_s, 2),
           "wall_seconds": round(seconds[1][1] - seconds[0][1], 2), "images_per_core_second": round(rate, 4),
           "precision": stage["args"].get("precision", "fp32")}
    if budget.get("images"):
        out.update(budget_images=budget["images"], core_hours=round(budget["images"] / rate / 3600, 3),
                   wall_hours_recorded=budget.get("wall_hours"))
    return out


def main(argv=None) -> None:
    from sparsesis.training.reproduce import find_recipes

    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=os.environ.get("SPARSESIS_DATA"), help="data folder (default: $SPARSESIS_DATA)")
    p.add_argument("--only", nargs="*", default=None, help="these shipped folders only")
    p.add_argument("--warmup", type=int, default=2, help="steps of the shorter run")
    p.add_argument("--steps", type=int, default=10, help="steps timed (the longer run's extra steps)")
    p.add_argument("--out", default=None)
    a = p.parse_args(argv)
    if not a.data or not Path(a.data).is_dir():
        sys.exit("error: no data folder: pass --data or set SPARSESIS_DATA (python -m sparsesis.data.download)")
    from tqdm import tqdm

    recipes = find_recipes()
    todo = [(n, i, s) for n, r in recipes.items() if a.only is None or n in a.only
            for i, s in enumerate(r["stages"]) if s.get("module") in STEP_FLAGS]
    stages = {}
    for name, i, stage in tqdm(todo, desc="throughput", unit="stage"):
        stages[f"{name}:{stage['name']}"] = {"folder": f"checkpoints/{name}", **measure_stage(name, stage, a.data,
                                                                                             a.warmup, a.steps)}
    if a.out and Path(a.out).is_file() and a.only is not None:  # a partial run adds to (or replaces in) the file
        stages = {**json.loads(Path(a.out).read_text())["stages"], **stages}
    totals = {}
    for key, s in stages.items():
        folder = key.split(":")[0]
        totals[folder] = round(totals.get(folder, 0.0) + s.get("core_hours", 0.0), 3)
    result = {"what": "each training stage's images per core-second on one CPU (one thread, its recipe's batch "
                      "and precision) and its recipe budget in core-hours at that rate",
              "machine": cpu_info(), "stages": stages, "core_hours_by_folder": totals,
              "command": " ".join(["python benchmarks/throughput.py", *(sys.argv[1:] if argv is None else argv)])}
    write_result(a.out, result, models=sorted({s["folder"] for s in stages.values()}))


if __name__ == "__main__":
    main()
