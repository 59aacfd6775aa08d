"""Ship a GAN run's best generator: of the folders scored on *training* layouts, the one with the lowest FD.

    python benchmarks/budget_curves.py --split train --gan oasis=runs/oasis64 --out results/gan_selection.json
    python -m sparsesis.baselines.ship --method oasis --run-dir runs/oasis64 \
        --selection results/gan_selection.json --out checkpoints/oasis64

A GAN's generator can get worse late in a run, so the shipped one need not be the last. Its folder keeps its own
record (the images *it* saw) and adds ``record["run"]``: the whole run's images and CPU time (what the method
spent, the choice included) and how the generator was chosen. The held-out layouts play no part in the choice.
"""
from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path

from ..models.checkpoint import CONFIG_FILE, MODEL_FILE, CheckpointError, copy_model_dir


def best_row(selection: dict, method: str, run_dir: str | Path) -> dict:
    """The lowest-FD row of ``method`` in a ``budget_curves.py --split train`` result whose folder still holds a
    generator (the run's snapshots and export, and the folder it started from where that was scored too)."""
    if "training layouts" not in selection.get("input", ""):
        raise ValueError(f"the selection must be scored on training layouts (budget_curves.py --split train), "
                         f"this one is on {selection.get('input')!r}")
    rows = [r for r in selection.get("methods", {}).get(method, []) if (Path(r["folder"]) / MODEL_FILE).is_file()]
    if not rows:
        raise ValueError(f"the selection holds no scored generator of {method!r} that is still on disk; score the "
                         f"run's snapshots first (budget_curves.py --split train --gan {method}={run_dir})")
    return min(rows, key=lambda r: r["fd"])


def ship(selection: dict, method: str, run_dir: str | Path, out: str | Path) -> dict:
    """Copy the chosen generator to ``out`` (replacing what is there) with ``record["run"]``; -> its config."""
    row = best_row(selection, method, run_dir)
    run_cfg_path = Path(run_dir) / "export" / CONFIG_FILE
    if not run_cfg_path.is_file():
        raise CheckpointError(f"{run_cfg_path} is missing: --run-dir must be the GAN run the snapshots came from")
    run_record = json.loads(run_cfg_path.read_text()).get("record", {})
    config = json.loads((Path(row["folder"]) / CONFIG_FILE).read_text())
    if config.get("method") != method:
        raise ValueError(f"{row['folder']} holds a {config.get('method')!r} generator, not {method!r}")
    scored = sorted(selection["methods"][method], key=lambda r: r["images_seen"] or 0)
    config["record"]["run"] = {
        "folder": str(run_dir), "images_seen": run_record.get("images_seen"),
        "train_seconds": run_record.get("train_seconds"),
        "chosen": f"lowest FD on {selection['input']} among {len(scored)} generators of the run",
        "chosen_from": {str(r["images_seen"]): r["fd"] for r in scored},
    }
    copy_model_dir(row["folder"], out, config)
    return config


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.baselines.ship", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--method", required=True, help="the method's name in the selection (spade, oasis, sean)")
    p.add_argument("--run-dir", required=True, help="the GAN run (its export/ gives the run's whole budget)")
    p.add_argument("--selection", default="results/gan_selection.json")
    p.add_argument("--out", required=True, help="the model folder to write (e.g. checkpoints/oasis64)")
    a = p.parse_args(argv)
    try:
        selection = json.loads(Path(a.selection).read_text())
        cfg = ship(selection, a.method, a.run_dir, a.out)
    except FileNotFoundError as err:
        sys.exit(f"error: {err.filename} not found")
    except (ValueError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    rec = cfg["record"]
    print(f"{a.out}: the generator at {rec['images_seen']:,} images of a run to {rec['run']['images_seen']:,} "
          f"({rec['run']['chosen']})")


if __name__ == "__main__":
    main()
