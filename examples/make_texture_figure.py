"""The README's texture figure: the same 64 px pictures brought to 256x256 by bicubic and by upsamplers, zoomed.

    python examples/make_texture_figure.py --data $SPARSESIS_DATA                    # -> examples/texture.jpg
    python examples/make_texture_figure.py --upsampler before=checkpoints/upsampler4x --upsampler new=runs/up/export
    python examples/make_texture_figure.py --photos --sketches 4 --out examples/texture_generated.jpg  # no photo

Rows: held-out photos (centre view at 256, reduced to 64 px by area: the upsampler's input; the photo itself in
the last column; upscaled without a layout, all unknown) and the 4-step student's pictures of the example sketches (seed 0; no photo exists for them).
Columns: the 64 px input, bicubic, then each ``--upsampler NAME=FOLDER`` at its folder's defaults (seed 0). Each
tile is the same ``--crop`` window of every column, the one where the photo (or the bicubic picture) has the
most fine detail, enlarged with nearest-neighbour so single pixels stay visible. The photo crops are small
derived examples of LabelMeFacade (non-commercial research and teaching only; see examples/README.md). With
``--photos`` and no index, only the sketch rows are made and the photo column is left out: every picture in that
figure is generated.
"""
from __future__ import annotations

import argparse
from pathlib import Path

import cv2
import numpy as np

HERE = Path(__file__).resolve().parent


def detail_window(image: np.ndarray, crop: int) -> tuple[int, int]:
    """Top-left corner of the ``crop`` x ``crop`` window with the most fine detail (mean absolute Laplacian
    of the grey image), on a grid of ``crop // 4`` steps; ties go to the first."""
    grey = cv2.cvtColor(image, cv2.COLOR_RGB2GRAY).astype(np.float32)
    detail = np.abs(cv2.Laplacian(grey, cv2.CV_32F))
    h, w = detail.shape
    if crop > min(h, w):
        raise ValueError(f"the crop ({crop} px) is larger than the picture ({w}x{h})")
    stride = max(1, crop // 4)
    best, corner = -1.0, (0, 0)
    for y in range(0, h - crop + 1, stride):
        for x in range(0, w - crop + 1, stride):
            score = float(detail[y:y + crop, x:x + crop].mean())
            if score > best:
                best, corner = score, (y, x)
    return corner


def crop_row(small: np.ndarray, upscaled: list[np.ndarray], real: np.ndarray | None, crop: int,
             tile: int) -> list[np.ndarray | None]:
    """One figure row: the input's window (at its own scale), each upscaled picture's window and the photo's
    (None where there is no photo), each enlarged to ``tile`` with nearest-neighbour. ``upscaled[0]`` chooses the
    window where there is no photo."""
    size = upscaled[0].shape[0]
    factor = size // small.shape[0]
    y, x = detail_window(real if real is not None else upscaled[0], crop)
    c = crop // factor
    zoom = lambda im: cv2.resize(im, (tile, tile), interpolation=cv2.INTER_NEAREST)  # noqa: E731
    ys, xs = y // factor, x // factor
    row = [zoom(small[ys:ys + c, xs:xs + c])]
    row += [zoom(im[y:y + crop, x:x + crop]) for im in upscaled]
    row.append(None if real is None else zoom(real[y:y + crop, x:x + crop]))
    return row


def label(img: np.ndarray, text: str) -> np.ndarray:
    out = img.copy()
    cv2.rectangle(out, (0, 0), (len(text) * 8 + 8, 18), (255, 255, 255), -1)
    cv2.putText(out, text, (4, 13), cv2.FONT_HERSHEY_SIMPLEX, 0.4, (0, 0, 0), 1, cv2.LINE_AA)
    return out


def grid(rows: list[list[np.ndarray | None]], titles: list[str], gap: int = 3) -> np.ndarray:
    """Tiles side by side with white gaps; a missing tile is white; the titles go on the first row's tiles."""
    tile = next(t for r in rows for t in r if t is not None).shape[0]
    blank = np.full((tile, tile, 3), 255, np.uint8)
    out_rows = []
    for i, r in enumerate(rows):
        tiles = [blank if t is None else (label(t, titles[j]) if i == 0 and t is not None else t)
                 for j, t in enumerate(r)]
        out_rows.append(np.concatenate([np.pad(t, ((gap, gap), (gap, gap), (0, 0)), constant_values=255)
                                        for t in tiles], axis=1))
    return np.concatenate(out_rows, axis=0)


def parse_named(values: list[str]) -> list[tuple[str, str]]:
    out = []
    for v in values:
        name, sep, folder = v.partition("=")
        if not sep or not name or not folder:
            raise SystemExit(f"--upsampler takes NAME=FOLDER (e.g. new=runs/up/export), got {v!r}")
        out.append((name, folder))
    return out


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", default=None, help="LabelMeFacade folder (default: $SPARSESIS_DATA)")
    p.add_argument("--upsampler", action="append", default=None, metavar="NAME=FOLDER",
                   help="an upsampler column (repeatable; default: shipped=checkpoints/upsampler4x)")
    p.add_argument("--model", default=str(HERE.parent / "checkpoints" / "ours64-student4"),
                   help="the 64 px generator for the sketch rows")
    p.add_argument("--photos", type=int, nargs="*", default=[11, 42], help="held-out photo indices (rows)")
    p.add_argument("--sketches", type=int, default=2, help="how many example sketches (rows)")
    p.add_argument("--crop", type=int, default=96, help="window at 256 px")
    p.add_argument("--tile", type=int, default=192, help="tile size in the figure")
    p.add_argument("--out", default=str(HERE / "texture.jpg"))
    a = p.parse_args(argv)

    from sparsesis.data.sets import load_split
    from sparsesis.pipeline import Pipeline
    from sparsesis.models.upsampler import Upsampler, bicubic_up

    named = parse_named(a.upsampler or [f"shipped={HERE.parent / 'checkpoints' / 'upsampler4x'}"])
    ups = [(n, Upsampler.from_pretrained(f)) for n, f in named]
    scale = ups[0][1].scale
    if any(u.scale != scale for _, u in ups):
        raise SystemExit("the upsamplers compared must share one scale factor")
    rows, row_names = [], []
    if a.photos:
        pairs = load_split("eval", size=64 * scale, root=a.data)
        for i in a.photos:
            if not 0 <= i < len(pairs):
                raise SystemExit(f"--photos: the held-out split has {len(pairs)} photos, got index {i}")
            photo, _ = pairs.centre(i)
            small = cv2.resize(photo, (64, 64), interpolation=cv2.INTER_AREA)
            # a photo is clean: level 0 for upsamplers told how degraded their input is
            outs = [bicubic_up(small, scale)] + [(u.with_settings(level=0.0) if u.level is not None else u)(small, seed=0)
                                                 for _, u in ups]
            rows.append(crop_row(small, outs, photo, a.crop, a.tile))
            row_names.append(f"held-out photo {i}")
    if a.sketches:
        pipe = Pipeline.from_pretrained(a.model, upsampler=None)
        for path in sorted(HERE.glob("*_sketch.png"))[:a.sketches]:
            ids = pipe.classset.colors_to_ids(cv2.cvtColor(cv2.imread(str(path)), cv2.COLOR_BGR2RGB))
            small = pipe(ids, seed=0, upscale=None)
            big_ids = cv2.resize(ids.astype(np.int32), (64 * scale,) * 2, interpolation=cv2.INTER_NEAREST)
            outs = [bicubic_up(small, scale)] + [u(small, big_ids, seed=0) for _, u in ups]
            rows.append(crop_row(small, outs, None, a.crop, a.tile))
            row_names.append(path.stem)
    if not rows:
        raise SystemExit("nothing to show: give --photos or --sketches")
    titles = ["input 64 px", "bicubic"] + [n for n, _ in ups] + ["photo 256 px"]
    if not a.photos:  # generated pictures only: no photo column
        rows, titles = [r[:-1] for r in rows], titles[:-1]
    figure = grid(rows, titles)
    cv2.imwrite(a.out, cv2.cvtColor(figure, cv2.COLOR_RGB2BGR), [cv2.IMWRITE_JPEG_QUALITY, 90])
    print(f"wrote {a.out} ({figure.shape[1]}x{figure.shape[0]}; rows: {', '.join(row_names)})")
    return figure


if __name__ == "__main__":
    main()
