r"""Quality against training budget: every method at every budget it was saved at, one protocol.

    python benchmarks/budget_curves.py --ours-from-git --student checkpoints/ours64-student4 \
        --gan spade=checkpoints/spade64 --gan oasis=checkpoints/oasis64 --gan sean=checkpoints/sean64 \
        --segmenter checkpoints/seg64 --out results/budget_curves.json

Ours: each version of ``checkpoints/ours64`` that git history holds (the teacher at several training lengths;
``--ours-from-git FOLDER ...`` reads other folders' histories too, such as the exports of a teacher's training in
progress), sampled with one fixed sampler (DDIM ``--steps`` at guidance ``--guidance``), plus the shipped student
at its full budget (teacher plus distillation); a folder's commit whose point ``--out`` already holds is not
measured again. GANs: ``NAME=FOLDER``, where FOLDER is a generator model folder or a GAN run folder whose
``snapshots/`` hold one exported generator every ~16,000 images (``python -m sparsesis.training.train_gan ...
--snapshot-every 1000``). Protocol: the 100 held-out layouts, class-wise masked with one mask seed, seed 0;
FD-EffNetL0, KID, and mIoU with ``--segmenter``. ``--split train`` scores the first ``--limit`` training layouts
against their own photos instead: how a snapshot is chosen without the held-out set

    python benchmarks/budget_curves.py --split train --gan oasis=runs/oasis64 --out results/gan_selection.json

Points are merged into ``--out``: a point measured again (same method, images seen and description) replaces the
old one, the others stay, and ``commands`` lists every run. So a GAN's snapshots can be scored as its training goes
on, and the curve outlives the run folder.
"""
import argparse
import json
import sys
import tempfile
from pathlib import Path


# (importing common puts the repository on sys.path)
from common import add_threads, command_line, set_threads, split_named  # noqa: E402

from sparsesis.models.checkpoint import save_json_atomic  # noqa: E402
from sparsesis.data.sets import load_split  # noqa: E402
from sparsesis.evaluation.evaluate import evaluate  # noqa: E402
from sparsesis.evaluation.generators import ModelGenerator  # noqa: E402
from sparsesis.loader import load  # noqa: E402
from sparsesis.evaluation.provenance import extract_folder, git_versions  # noqa: E402


def point_key(method: str, row: dict) -> tuple:
    """What makes two points the same measurement: the method, its images seen and what it was."""
    return method, row.get("images_seen"), row.get("what", "")


def merge_curves(old: dict | None, new: dict, command: str) -> dict:
    """``new``'s points added to ``old``'s (a point with the same ``point_key`` replaced), each method's points
    sorted by images seen; ``commands`` gains ``command``."""
    old = old or {}
    methods = {m: list(pts) for m, pts in old.get("methods", {}).items()}
    for method, pts in new["methods"].items():
        fresh = {point_key(method, r) for r in pts}
        methods[method] = [r for r in methods.get(method, []) if point_key(method, r) not in fresh] + list(pts)
    for method in methods:
        methods[method].sort(key=lambda r: (r.get("images_seen") or 0, r.get("what", "")))
    commands = list(old.get("commands", [old["command"]] if "command" in old else []))
    return {**{k: v for k, v in old.items() if k not in ("command", "commands", "methods")},
            **{k: v for k, v in new.items() if k != "methods"}, "methods": methods, "commands": commands + [command]}


def point(model, name, pairs, net, seg, steps, guidance, extra=None, limit=None) -> dict:
    teacher = model.is_diffusion and not model.distilled
    # a teacher: classifier-free guidance at the fixed scale, whatever guide its folder names as its default
    gen = ModelGenerator(model, steps=steps if model.is_diffusion else None, guidance=guidance if teacher else None,
                         name=name, options={"guide": "cfg"} if teacher and guidance is not None else {})
    res = evaluate({name: gen}, pairs, ["random_mask"], feature_net=net, seed=0, segmenter=seg, progress=False,
                   limit=limit)
    m, info = res["methods"][name]["random_mask"], res["info"][name]
    row = {"images_seen": info["images_seen"], "train_hours": info["train_hours"], "fd": m["fd"], "kid": m["kid"],
           **({"miou": m["miou"]} if "miou" in m else {}), "parameters": info["parameters"], **(extra or {})}
    print(name, json.dumps(row), file=sys.stderr, flush=True)
    return row


def gan_folders(path: Path) -> list[Path]:
    if (path / "model.safetensors").is_file():
        return [path]
    snaps = sorted(path.glob("snapshots/*/model.safetensors"))
    found = [p.parent for p in snaps] + ([path / "export"] if (path / "export" / "model.safetensors").is_file() else [])
    if not found:
        raise SystemExit(f"error: {path} holds no generator (model.safetensors, snapshots/*/ or export/)")
    return found


def gan_points(specs: list[str], measure) -> dict:
    """``NAME=FOLDER`` specs -> {name: [measure(name, generator folder), ...]}; a name given twice (a run's
    snapshot and its export, say) collects the points of both."""
    methods = {}
    for spec in specs:
        try:
            name, folder = split_named("--gan", spec)
        except ValueError as err:
            raise SystemExit(f"error: {err}") from None
        methods.setdefault(name, []).extend(measure(name, f) for f in gan_folders(Path(folder)))
    return methods


def main():
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--ours-from-git", nargs="*", default=None, metavar="FOLDER",
                   help="every committed version of these model folders (none named: checkpoints/ours64)")
    p.add_argument("--student", default=None, help="the shipped student, one more point for ours")
    p.add_argument("--gan", action="append", default=[], help="NAME=FOLDER (model folder or run folder)")
    p.add_argument("--steps", type=int, default=8)
    p.add_argument("--guidance", type=float, default=4.0)
    p.add_argument("--segmenter", default=None)
    p.add_argument("--data", default=None)
    p.add_argument("--split", choices=["eval", "train"], default="eval",
                   help="train: the first --limit training layouts, to choose snapshots on (default: the held-out)")
    p.add_argument("--limit", type=int, default=100)
    add_threads(p, None)
    p.add_argument("--out", default="results/budget_curves.json")
    a = p.parse_args()
    set_threads(a.threads)
    from sparsesis.evaluation.metrics import feature_network
    from sparsesis.models.segmenter import Segmenter

    net = feature_network("effnet-lite0")
    seg = Segmenter.from_pretrained(a.segmenter) if a.segmenter else None
    pairs = load_split(a.split, 64, a.data, progress=False)
    limit = a.limit if a.split == "train" else None
    old = json.loads(Path(a.out).read_text()) if Path(a.out).is_file() else None
    layouts = "100 held-out layouts" if a.split == "eval" else f"the first {a.limit} training layouts"
    protocol = f"random_mask, 1 mask seed, {layouts}, seed 0"
    if old and old.get("input", protocol) != protocol:
        raise SystemExit(f"error: {a.out} holds points on {old['input']!r}, these would be on {protocol!r}: "
                         "pass another --out")
    measured = {(r.get("folder", "checkpoints/ours64"), r["commit"])  # (the first points name no folder)
                for r in (old or {}).get("methods", {}).get("ours", []) if "commit" in r}
    methods = {}
    if a.ours_from_git is not None:
        with tempfile.TemporaryDirectory() as tmp:
            for folder in a.ours_from_git or ["checkpoints/ours64"]:
                for i, commit in enumerate(git_versions(folder)):
                    if (folder, commit[:10]) in measured:  # a committed network does not change: its point stays
                        continue
                    model = load(extract_folder(commit, folder, Path(tmp) / f"{Path(folder).name}_{i}"), precision="bf16")
                    row = point(model, "ours", pairs, net, seg, a.steps, a.guidance,
                                {"what": f"teacher, DDIM {a.steps} steps, guidance {a.guidance:g}",
                                 "commit": commit[:10], "folder": folder}, limit)
                    if all(point_key("ours", row) != point_key("ours", r) for r in methods.get("ours", [])):
                        methods.setdefault("ours", []).append(row)  # (one network can sit in two folders)
    if a.student:
        model = load(a.student, precision="bf16")
        row = point(model, "ours", pairs, net, seg, None, None,
                    {"what": f"{model.default_steps}-step student (guidance {model.guidance_label:g} built in), "
                             "teacher plus distillation budget"}, limit)
        methods.setdefault("ours", []).append(row)
    methods.update(gan_points(a.gan, lambda name, f: point(load(f), name, pairs, net, seg, None, None,
                                                            {"folder": str(f)}, limit)))
    new = {"metric": net.metric, "input": protocol, "methods": methods}
    out = merge_curves(old, new, command_line(__file__))
    save_json_atomic(a.out, out)
    print(json.dumps(out, indent=1))


if __name__ == "__main__":
    main()
