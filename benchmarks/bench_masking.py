"""Masking speed inside the data loader: class-wise masks and scribbles at 64x64 and 128x128.

    python benchmarks/bench_masking.py [--data PATH]    # uses LabelMeFacade layouts, else a synthetic one
"""
import argparse
import json
import time

import numpy as np

import common  # noqa: F401  (the repository on sys.path)
from sparsesis.data.masking import class_wise_random, scribbles


def layouts(size, data):
    try:
        from sparsesis.data.sets import load_split

        pairs = load_split("eval", size, data, progress=False)
        return [pairs.centre(i)[1] for i in range(len(pairs))], 9
    except Exception:
        ids = np.full((size, size), 1)
        ids[: size // 4] = 6
        ids[3 * size // 4:] = 5
        ids[size // 3: size // 2, ::8] = 8
        return [ids], 9


def bench(fn, items, unknown, repeats=3):
    rng = np.random.default_rng(0)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        for ids in items:
            fn(ids, unknown, rng)
        best = min(best, (time.perf_counter() - t) / len(items))
    return best * 1000


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--data", default=None)
    a = p.parse_args()
    out = {}
    for size in (64, 128):
        items, u = layouts(size, a.data)
        out[size] = {"class_wise_ms": round(bench(class_wise_random, items, u), 3),
                     "scribbles_ms": round(bench(scribbles, items, u), 3), "layouts": len(items)}
        print(f"{size}x{size}: class-wise mask {out[size]['class_wise_ms']:.2f} ms/layout, "
              f"scribbles {out[size]['scribbles_ms']:.2f} ms/layout ({len(items)} layouts)")
    print(json.dumps(out))


if __name__ == "__main__":
    main()
