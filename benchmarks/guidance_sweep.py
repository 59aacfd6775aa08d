r"""The teacher's sampler by guidance kind, scale and step count: classifier-free guidance, autoguidance with
a weaker model of the same classes as the guide, and guidance on an interval of noise levels. Chosen on
*training* layouts (the first ``--limit`` training pairs, class-wise masks, mask seed 0, against their own
photos), so the held-out set stays for the reported figures; ``--split eval`` measures the held-out ones.

    python benchmarks/guidance_sweep.py --checkpoint checkpoints/ours64 --guide early=runs/init/ours64_70k \
        --steps 8 16 --scales 1.5 2 3 --intervals 0.2,0.8 --out results/guidance_sweep.json

``--cfg-scales 2 3`` adds, for every guide, rows with classifier-free guidance at that scale on top of the
autoguidance (``_c2``, ``_c3``; three passes a step): autoguidance for photographic images, the classifier-free
term for layout fidelity.

Rows are merged into ``--out`` by name (re-running adds or replaces rows), so a sweep can be run in parts.
``--student NAME=FOLDER`` adds a distilled student at its own step count and built-in guidance (row
``student-NAME``), scored the same way: how close a student comes to the sampler it was distilled from.
``--segmenter FOLDER`` adds each row's mIoU against the pairs' full label maps: how closely a sampler follows
the strokes, which a lower FD alone does not promise. ``--tag NAME`` names the teacher's rows ``NAME/<row>``, so
the snapshots of one training can be swept into one file (each row records its ``checkpoint``):

    python benchmarks/guidance_sweep.py --checkpoint runs/teacher/snapshots/images_400000 --tag images_400000 ...
"""
import argparse
import json
import time
from pathlib import Path

# (importing common puts the repository on sys.path)
from common import command_line, parse_with_data_threads_out, split_named, write_result

from sparsesis.models.checkpoint import save_json_atomic  # noqa: E402
from sparsesis.data.sets import load_split  # noqa: E402
from sparsesis.evaluation.evaluate import evaluate  # noqa: E402
from sparsesis.evaluation.generators import ModelGenerator  # noqa: E402
from sparsesis.evaluation.metrics import feature_network  # noqa: E402
from sparsesis.evaluation.provenance import model_folder  # noqa: E402
from sparsesis.models.segmenter import Segmenter  # noqa: E402
from sparsesis.synthesizer import Synthesizer  # noqa: E402


def samplers(a, teacher, guides: dict):
    """-> {row name: (steps, scale, options)} for every combination asked for."""
    rows = {}
    for steps in a.steps:
        for scale in a.scales:
            rows[f"cfg_s{steps}_w{scale:g}"] = (steps, scale, {"guide": "cfg"})
            for lo, hi in a.intervals:
                rows[f"cfg_s{steps}_w{scale:g}_t{lo:g}-{hi:g}"] = (steps, scale, {"guide": "cfg", "interval": (lo, hi)})
            for name, guide in guides.items():
                for c in a.cfg_scales:  # 1: autoguidance alone; else classifier-free guidance on top
                    rows[f"auto-{name}_s{steps}_w{scale:g}" + (f"_c{c:g}" if c != 1.0 else "")] = (
                        steps, scale, {"guide": guide, **({"cfg_scale": c} if c != 1.0 else {})})
    return rows


def named_folders(parser, flag: str, specs: list[str]) -> dict:
    """``NAME=FOLDER`` arguments -> {name: folder}; a usage error for any other form."""
    try:
        return dict(split_named(flag, spec) for spec in specs)
    except ValueError as err:
        parser.error(str(err))


def main(argv=None):
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--checkpoint", required=True, help="the teacher (an undistilled diffusion model folder, or "
                   "COMMIT:FOLDER: the folder as that commit held it)")
    p.add_argument("--guide", action="append", default=[], metavar="NAME=FOLDER",
                   help="a weaker model of the same classes for autoguidance (repeatable)")
    p.add_argument("--steps", type=int, nargs="+", default=[8, 16])
    p.add_argument("--scales", type=float, nargs="+", default=[1.5, 2.0, 3.0])
    p.add_argument("--intervals", type=lambda s: tuple(float(v) for v in s.split(",")), nargs="*", default=[],
                   metavar="LO,HI", help="also classifier-free guidance only at times LO <= t <= HI")
    p.add_argument("--cfg-scales", type=float, nargs="+", default=[1.0], metavar="C",
                   help="with each guide, also classifier-free guidance at C on top of the autoguidance (1: none)")
    p.add_argument("--split", choices=["train", "eval"], default="train")
    p.add_argument("--limit", type=int, default=100)
    p.add_argument("--student", action="append", default=[], metavar="NAME=FOLDER",
                   help="a distilled student, scored at its own steps and built-in guidance (repeatable)")
    p.add_argument("--only", nargs="*", default=None, help="run only these row names")
    p.add_argument("--segmenter", default=None, help="segmenter model folder: adds each row's mIoU")
    p.add_argument("--tag", default=None, help="name the teacher's rows TAG/<row> (several checkpoints in one file)")
    a = parse_with_data_threads_out(p, argv, threads=1)
    guide_folders, student_folders = named_folders(p, "--guide", a.guide), named_folders(p, "--student", a.student)
    students = {name: Synthesizer.from_pretrained(folder, precision="fp32") for name, folder in student_folders.items()}
    for name, synth in students.items():
        if not synth.distilled:
            p.error(f"--student {student_folders[name]}: not a distilled student (use --checkpoint for a teacher)")
    teacher = Synthesizer.from_pretrained(model_folder(a.checkpoint), precision="fp32")
    guides = {name: Synthesizer.from_pretrained(model_folder(folder), precision="fp32")
              for name, folder in guide_folders.items()}
    pairs = load_split(a.split, teacher.image_size, a.data, progress=False)
    net = feature_network("effnet-lite0")
    seg = Segmenter.from_pretrained(a.segmenter) if a.segmenter else None
    path = Path(a.out)
    out = json.loads(path.read_text()) if path.is_file() else {}
    out.update({"protocol": f"{a.split} split, first {a.limit} pairs, class-wise masks (mask seed 0), DDIM, fp32, "
                            f"FD-EffNetL0 and KID against those pairs' photos",
                "checkpoint": a.checkpoint,  # the guides of earlier parts stay named: their rows are kept
                "guides": {**out.get("guides", {}), **guide_folders}})
    out.setdefault("rows", {})
    out.setdefault("commands", []).append(command_line(__file__, argv))
    # every row: (its generator, what the row says of it besides the figures)
    tagged = (lambda name: f"{a.tag}/{name}") if a.tag else (lambda name: name)  # noqa: E731
    rows = {tagged(name): (ModelGenerator(teacher, steps=steps, guidance=scale, name=name, options=options),
                           {"steps": steps, "scale": scale, "kind": "auto" if "auto-" in name else "cfg",
                            "checkpoint": a.checkpoint, "interval": list(options.get("interval", ())) or None,
                            **({"cfg_scale": options["cfg_scale"]} if "cfg_scale" in options else {})})
            for name, (steps, scale, options) in samplers(a, teacher, guides).items()}
    for name, synth in students.items():
        d = synth.distilled
        rows[f"student-{name}"] = (ModelGenerator(synth, name=f"student-{name}"),
                                   {"steps": synth.default_steps, "scale": synth.baked_guidance,
                                    "kind": "student of " + ("auto" if d.get("guide") else "cfg"),
                                    "folder": student_folders[name], "guide": d.get("guide"),
                                    "interval": d.get("interval"), "teacher_steps": d.get("teacher_steps"),
                                    **({"cfg_scale": d["cfg_scale"]} if d.get("cfg_scale") else {})})
    for name, (gen, described) in rows.items():
        if a.only is not None and name not in a.only:
            continue
        t0 = time.time()
        m = evaluate({name: gen}, pairs, ["random_mask"], feature_net=net, limit=a.limit, progress=False,
                     segmenter=seg)
        m = m["methods"][name]["random_mask"]
        out["rows"][name] = {**described, "fd": m["fd"], "kid": m["kid"], "n": m["n"],
                             **({"miou": m["miou"], "segmenter": a.segmenter} if seg is not None else {}),
                             "seconds": round(time.time() - t0)}
        print(name, out["rows"][name], flush=True)
        save_json_atomic(path, out)  # after every row: a stopped sweep keeps what it measured
    write_result(path, out)


if __name__ == "__main__":
    main()
