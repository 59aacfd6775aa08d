"""The README's editing figure, from the example sketches and the shipped models.

    python examples/make_editing_figure.py     # -> examples/editing.jpg

Row 1, regional reroll: a picture (seed 0), then its lower-left quarter rerolled with seeds 1, 2, 3 (the
rest stays). Row 2, the look of a reference: the same sketch started from a reference picture (another
sketch's generated picture) at strengths 0.4, 0.7 and 1 (= the layout alone). Row 3, photo to layout: a
generated picture as the photo, the segmenter's layout, thinned to a sketch, new pictures from the sketch.
Every image is generated: no data-set photo appears in the figure.
"""
import argparse
from pathlib import Path

import cv2
import numpy as np

from sparsesis.editing import layout_from_photo
from sparsesis.pipeline import Pipeline
from sparsesis.models.segmenter import Segmenter

HERE = Path(__file__).resolve().parent


def read_rgb(path) -> np.ndarray:
    return cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB)


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--model", default=str(HERE.parent / "checkpoints" / "ours64-student4"))
    p.add_argument("--segmenter", default=str(HERE.parent / "checkpoints" / "seg64"))
    p.add_argument("--size", type=int, default=180, help="tile size in the figure")
    p.add_argument("--out", default=str(HERE / "editing.jpg"))
    a = p.parse_args()
    pipe = Pipeline.from_pretrained(a.model)
    cs, s = pipe.classset, a.size
    sketches = sorted(HERE.glob("*_sketch.png"))
    tile = lambda im: cv2.resize(im, (s, s), interpolation=cv2.INTER_AREA if im.shape[0] > s else cv2.INTER_NEAREST)  # noqa: E731

    lay = cs.colors_to_ids(read_rgb(sketches[1]))
    image = pipe(lay, seed=0)
    region = np.zeros((image.shape[0],) * 2, bool)
    region[image.shape[0] // 2:, : image.shape[0] // 2] = True
    row1 = [cs.ids_to_colors(lay), image]
    current = image
    for seed in (1, 2, 3):
        current = pipe.reroll(lay, current, region, seed=seed)
        row1.append(current)

    reference = pipe(cs.colors_to_ids(read_rgb(sketches[4])), seed=5, upscale=None)  # a 64x64 picture
    row2 = [cs.ids_to_colors(lay), reference] + [pipe(lay, seed=0, init=reference, strength=t) for t in (0.4, 0.7, 1.0)]

    seg = Segmenter.from_pretrained(a.segmenter)
    photo = pipe(cs.colors_to_ids(read_rgb(sketches[2])), seed=3)
    ids = layout_from_photo(photo, seg, pipe.base_size)
    thin = layout_from_photo(photo, seg, pipe.base_size, sketch=True, seed=0)
    row3 = [photo, cs.ids_to_colors(ids), cs.ids_to_colors(thin), pipe(thin, seed=0), pipe(thin, seed=1)]

    labels = [["sketch", "seed 0", "reroll lower-left: seed 1", "seed 2", "seed 3"],
              ["sketch", "reference (generated)", "strength 0.4", "strength 0.7", "strength 1 (layout only)"],
              ["a picture", "segmented", "thinned to a sketch", "new picture, seed 0", "seed 1"]]
    rows = []
    for row, names in zip((row1, row2, row3), labels):
        tiles = []
        for im, name in zip(row, names):
            t = tile(im).copy()
            cv2.rectangle(t, (0, 0), (len(name) * 7 + 6, 16), (255, 255, 255), -1)
            cv2.putText(t, name, (3, 12), cv2.FONT_HERSHEY_SIMPLEX, 0.38, (0, 0, 0), 1, cv2.LINE_AA)
            tiles.append(np.pad(t, ((2, 2), (2, 2), (0, 0)), constant_values=255))
        rows.append(np.concatenate(tiles, axis=1))
    grid = np.concatenate(rows, axis=0)
    cv2.imwrite(a.out, cv2.cvtColor(grid, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 88])
    print(f"wrote {a.out} ({grid.shape[1]}x{grid.shape[0]})")


if __name__ == "__main__":
    main()
