"""The README's teaser: the example sketches and what the shipped models make of them at 256x256.

    python examples/make_teaser.py            # -> examples/teaser.jpg (4-step student + learned upsampler, seed 0)

Rows: the sketch (as painted: a few strokes, white = unknown) and the generated photo. No data-set photo
appears in it (those stay out of the repository's figures). Regenerate it after shipping new models.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from sparsesis.pipeline import Pipeline

HERE = Path(__file__).resolve().parent


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (len(text) * 9 + 8, 20), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 15), cv2.FONT_HERSHEY_SIMPLEX, 0.45, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(HERE.parent / "checkpoints" / "ours64-student4"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--size", type=int, default=200, help="tile size in the figure")
    p.add_argument("--out", default=str(HERE / "teaser.jpg"))
    a = p.parse_args()
    pipe = Pipeline.from_pretrained(a.model)
    cols = []
    for sketch_path in sorted(HERE.glob("*_sketch.png")):
        sketch = cv2.cvtColor(cv2.imread(str(sketch_path)), cv2.COLOR_BGR2RGB)
        ids = pipe.classset.colors_to_ids(sketch)
        generated = pipe(ids, seed=a.seed)
        tile = lambda im, interp: cv2.resize(im, (a.size, a.size), interpolation=interp)  # noqa: E731
        cols.append(np.concatenate([tile(sketch, cv2.INTER_NEAREST), tile(generated, cv2.INTER_AREA)], axis=0))
    grid = np.concatenate([np.pad(c, ((0, 0), (2, 2), (0, 0)), constant_values=255) for c in cols], axis=1)
    s = a.size
    grid[:s, :] = label(grid[:s, :], "sketch (white = unknown)")
    how = "learned upsampler" if pipe.upsampler is not None else "bicubic"
    grid[s:, :] = label(grid[s:, :], f"generated, 256x256 ({how}), seed {a.seed}")
    cv2.imwrite(a.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {a.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
