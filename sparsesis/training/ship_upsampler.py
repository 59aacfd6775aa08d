r"""Ship an upsampler scored by ``benchmarks/select_upsampler.py``: its weights, and the inference settings it was
scored at.

    python -m sparsesis.training.ship_upsampler --selection results/upsampler_selection_continued.json \
        --folder runs/up_fine2_from3750/snapshots/step_000500 --noise-scale 0 --back-projection 0 \
        --detail-scale 0.8 --out checkpoints/upsampler4x

Only a (folder, noise scale, back-projection, detail scale) row of the selection can ship, so every shipped
upsampler was chosen on training photos. The folder's ``defaults`` take the row's back-projection rounds, noise
scale and detail scale (what ``Upsampler`` then uses unless ``from_pretrained`` or ``with_settings`` name others);
``record["chosen"]`` keeps the row's scores, the bicubic scores beside them and the selection file. The held-out figures come after, from ``python -m sparsesis.evaluation.evaluate upsampler``.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import CONFIG_FILE, MODEL_FILE, CheckpointError, copy_model_dir


def chosen_row(selection: dict, folder: str, noise_scale: float | None, back_projection: int | None,
               detail_scale: float | None = None) -> dict:
    """The selection's row of ``folder`` at ``noise_scale``, ``back_projection`` and ``detail_scale`` (None: any;
    exactly one row must match; rows without a detail scale were scored at 1), or a clear error."""
    rows = [r for r in selection.get("rows", []) if r["folder"] == folder]
    if noise_scale is not None:
        rows = [r for r in rows if r.get("noise_scale") == noise_scale]
    if back_projection is not None:
        rows = [r for r in rows if r["back_projection"] == back_projection]
    if detail_scale is not None:
        rows = [r for r in rows if r.get("detail_scale", 1.0) == detail_scale]
    if len(rows) != 1:
        scored = sorted(f"{r.get('noise_scale')}/{r['back_projection']}/{r.get('detail_scale', 1.0)}"
                        for r in selection.get("rows", []) if r["folder"] == folder)
        raise ValueError(f"the selection has {len(rows)} rows of {folder} at noise scale {noise_scale}, "
                         f"back-projection {back_projection} and detail scale {detail_scale} (scored at "
                         f"noise/back-projection/detail: {', '.join(scored) or 'none'}); score it first with "
                         "select_upsampler.py, or name all three")
    return rows[0]


def ship_chosen_upsampler(selection: dict, selection_path: str, folder: str, out: str | Path, noise_scale: float | None = None,
         back_projection: int | None = None, detail_scale: float | None = None) -> dict:
    """Copy ``folder``'s weights to ``out`` with the row's settings as its defaults; -> the written config."""
    row = chosen_row(selection, folder, noise_scale, back_projection, detail_scale)
    src = Path(folder)
    if not (src / MODEL_FILE).is_file() or not (src / CONFIG_FILE).is_file():
        raise CheckpointError(f"{folder} holds no upsampler ({MODEL_FILE} and {CONFIG_FILE}); was it removed?")
    config = json.loads((src / CONFIG_FILE).read_text())
    defaults = {**config.get("defaults", {}), "back_projection": row["back_projection"]}
    if "noise_scale" in row:
        defaults["noise_scale"] = row["noise_scale"]
    defaults["detail_scale"] = row.get("detail_scale", 1.0)
    config["defaults"] = defaults
    config["record"]["chosen"] = {"from": folder, "selection": selection_path, "real": row["real"],
                                  "generated": row["generated"], "psnr_back": row.get("psnr_back"),
                                  "bicubic": selection.get("bicubic"),
                                  "protocol": selection.get("protocol")}
    copy_model_dir(src, out, config)
    return config


def main(argv=None) -> dict:
    p = argparse.ArgumentParser(prog="python -m sparsesis.training.ship_upsampler", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--selection", required=True, help="a select_upsampler.py result")
    p.add_argument("--folder", required=True, help="the scored upsampler folder to ship")
    p.add_argument("--noise-scale", type=float, default=None, help="which of its rows: the noise scale scored")
    p.add_argument("--back-projection", type=int, default=None, help="which of its rows: the rounds scored")
    p.add_argument("--detail-scale", type=float, default=None, help="which of its rows: the detail scale scored")
    p.add_argument("--out", required=True, help="the model folder to write (checkpoints/upsampler4x ships)")
    a = p.parse_args(argv)
    try:
        cfg = ship_chosen_upsampler(json.loads(Path(a.selection).read_text()), a.selection, a.folder, a.out, a.noise_scale,
                   a.back_projection, a.detail_scale)
    except FileNotFoundError as err:
        sys.exit(f"error: {err.filename} not found")
    except (ValueError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    print(f"{a.out}: {a.folder} with defaults {cfg['defaults']} (training photos: real "
          f"{cfg['record']['chosen']['real']}, generated {cfg['record']['chosen']['generated']})")
    return cfg


if __name__ == "__main__":
    main()
