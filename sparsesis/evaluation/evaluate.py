r"""Evaluate generators on the held-out layouts: Fréchet distance and KID against the held-out photos.

    python -m sparsesis.evaluation.evaluate generation --checkpoint checkpoints/ours64-student4 --out /tmp/generation.json
    python -m sparsesis.evaluation.evaluate table --method ours=checkpoints/ours64-student4 --method trivial \
        --kinds random_mask scribble --mask-seeds 3 --out results/eval.json
    python -m sparsesis.evaluation.evaluate distillation --checkpoint checkpoints/ours64 --teacher-steps 8 \
        --students checkpoints/ours64-student4 checkpoints/ours64-student2 --ddim-steps 2 4 8 \
        --out results/distillation_t400k.json

The commands that made each current file in ``results/`` are in the files themselves (``"command"``).

Every method gets the same inputs (``sparsesis.data.inputs``: a pure function of layout and seed), the same
generation seeds and the same real set. The metric is named after its feature network
(``FD-EffNetL0`` offline; ``FID`` only with the real Inception weights).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import numpy as np

from ..data.sets import PairSet, load_split
from ..data.inputs import held_out_inputs
from ..precision import INFERENCE_PRECISIONS, PRECISION_HELP


def evaluate(generators: dict, pairs: PairSet, kinds: list[str], *, mask_seeds: int = 1, feature_net=None,
             limit: int | None = None, seed: int = 0, progress: bool = True, kid_subsets: int = 100,
             dist=None, segmenter=None, keep_images: bool = False) -> dict:
    """Metrics per method and input kind. With ``dist`` (torchrun), each process generates a contiguous
    shard of the layouts and the features are gathered, so the numbers match a single-process run.
    ``keep_images`` also returns the generated images as ``result["images"][method][kind]`` (uint8)."""
    from .. import distributed as D
    from .metrics import cached_features, fd_from_features, feature_network, kid

    dist = dist or D.Dist()

    net = feature_net or feature_network("effnet-lite0")
    photos, full_ids = pairs.centre_arrays()
    if limit is not None:
        photos = photos[:limit]
    real = cached_features(net, photos)
    result = {"metric": net.metric, "kid_metric": f"KID-{net.name}", "n_real": len(photos),
              "mask_seeds": mask_seeds, "seed": seed, "methods": {}, "info": {}}
    if keep_images:
        result["images"] = {}
    if segmenter is not None:
        from ..models.segmenter import iou_per_class

        real_score = segmenter.score(photos, full_ids[: len(photos)])
        result["segmenter_real_miou"] = real_score["miou"]
        result["segmenter_real_iou_per_class"] = real_score["per_class"]
    for name, gen in generators.items():
        result["info"][name] = gen.info() if hasattr(gen, "info") else {}
        result["methods"][name] = {}
        for kind in kinds:
            layouts, real_idx = held_out_inputs(pairs, kind, mask_seeds, limit)
            t0 = time.perf_counter()
            lo, hi = shard(len(layouts), dist.rank, dist.world)
            images = generate_all(gen, layouts[lo:hi], seed + lo, f"{name}/{kind}", progress and dist.is_main)
            secs = time.perf_counter() - t0
            feats = D.gather_rows(net(images), dist)
            if keep_images:
                result["images"].setdefault(name, {})[kind] = D.gather_rows(images, dist)
            seg_pred = D.gather_rows(segmenter.predict(images), dist) if segmenter is not None else None
            k_mean, k_std = kid(feats, real, subsets=kid_subsets)
            result["methods"][name][kind] = {
                "fd": round(fd_from_features(feats, real), 3), "kid": round(k_mean, 5), "kid_std": round(k_std, 5),
                **per_seed_spread(feats, real, len(layouts) // max(1, len(real)), kid_subsets),
                "n": len(feats), "labelled_share": round(float((layouts != pairs.classset.unknown_id).mean()), 4),
                "seconds_per_image": round(secs / max(1, len(images)), 4)}
            if seg_pred is not None:  # layout fidelity against the *full* held-out label maps
                per = iou_per_class(seg_pred, full_ids[real_idx], pairs.classset.num_classes)
                result["methods"][name][kind]["miou"] = round(float(np.nanmean(per)), 4)
                result["methods"][name][kind]["iou_per_class"] = {
                    c: (None if np.isnan(v) else round(float(v), 4)) for c, v in zip(pairs.classset.names, per)}
            if progress and dist.is_main:
                print(f"{name:>10} {kind:>14}: {net.metric} {result['methods'][name][kind]['fd']:.1f}  "
                      f"KID {k_mean:.4f}", file=sys.stderr, flush=True)
    return result


def per_seed_spread(feats: np.ndarray, real: np.ndarray, seeds: int, kid_subsets: int = 100) -> dict:
    """FD and KID of each mask seed's images on their own (``feats`` is seed-major, one image per real photo
    and seed) and their sample standard deviation over seeds: the spread the table shows. Empty for one seed."""
    from .metrics import fd_from_features, kid

    if seeds < 2:
        return {}
    chunks = np.split(feats[: seeds * (len(feats) // seeds)], seeds)
    fds = [fd_from_features(c, real) for c in chunks]
    kids = [kid(c, real, subsets=kid_subsets)[0] for c in chunks]
    return {"fd_per_seed": [round(v, 3) for v in fds], "fd_seed_std": round(float(np.std(fds, ddof=1)), 3),
            "kid_per_seed": [round(v, 5) for v in kids], "kid_seed_std": round(float(np.std(kids, ddof=1)), 5)}


def sparsity_curves(generators: dict, pairs: PairSet, *, shares, strokes, robustness, mask_seeds: int, net,
                    limit: int | None = None, seed: int = 0, dist=None, segmenter=None) -> dict:
    """Metrics as a function of the labelled share (class-wise masks keeping exactly that share of every
    class), of the scribble strokes per region, and under SCDM-style noisy labels. Layout of the result:
    ``{"random_mask": {method: {share: {...}}}, "scribble": {method: {strokes: {...}}}, "<robustness kind>":
    {method: {...}}}``."""
    kinds = [f"share:{p:g}" for p in shares] + [f"strokes:{n}" for n in strokes] + list(robustness)
    res = evaluate(generators, pairs, kinds, mask_seeds=mask_seeds, feature_net=net, limit=limit, seed=seed, dist=dist,
                   segmenter=segmenter)
    out = {"metric": res["metric"], "n_real": res["n_real"], "mask_seeds": mask_seeds, "info": res["info"],
           "random_mask": {}, "scribble": {}}
    for name, by_kind in res["methods"].items():
        for kind, m in by_kind.items():
            if kind.startswith("share:"):
                out["random_mask"].setdefault(name, {})[kind.split(":")[1]] = m
            elif kind.startswith("strokes:"):
                out["scribble"].setdefault(name, {})[kind.split(":")[1]] = m
            else:
                out.setdefault(kind, {})[name] = m
    return out


def distillation_report(teacher, teacher_steps: int, students: dict, ddim_steps, pairs: PairSet, *, net,
                        limit: int | None = None, seed: int = 0, repeats: int = 5, dist=None, progress: bool = True,
                        guidance: float | None = None, other_guidance=(), options: dict | None = None) -> dict:
    """Quality and latency against sampling steps: the teacher at its full step count, the teacher with
    plain DDIM at fewer steps, and each distilled student (``{steps: Synthesizer}``). Same masked held-out
    layouts and seeds for all; latency is the median batch-1 time on this machine (guidance included);
    ``psnr_to_teacher`` says how closely each sampler reproduces the teacher's full-step images.

    The teacher runs at ``guidance`` (default: its own), which should be the scale the students bake in.
    ``other_guidance`` adds plain-DDIM rows at each student's step count under those other scales
    (``ddim_other_guidance[scale][steps]``), so a student is also compared with the few-step teacher at
    whatever scale suits few steps best. ``options`` (``guide``, ``interval``) are the teacher's other sampler
    settings, used by every teacher row: the ones the students baked in."""
    from .. import distributed as D
    from .generators import ModelGenerator
    from .latency import cpu_description, median_latency
    from .metrics import paired_psnr

    dist = dist or D.Dist()
    g_teacher = teacher.default_guidance if guidance is None else float(guidance)
    others = [float(g) for g in other_guidance if abs(float(g) - g_teacher) > 1e-9]
    rows = {("teacher", teacher_steps): (teacher, teacher_steps, g_teacher)}
    rows.update({("ddim", n): (teacher, n, g_teacher) for n in ddim_steps})
    rows.update({("students", n): (synth, n, None) for n, synth in students.items()})
    rows.update({(f"ddim_g{g:g}", n): (teacher, n, g) for g in others for n in students})
    options = dict(options or {})
    opts = {key: {} if key[0] == "students" else options for key in rows}  # students bake the teacher's in
    gens = {f"{group}_{n}": ModelGenerator(synth, steps=n, guidance=g, name=f"{group}_{n}", options=opts[group, n])
            for (group, n), (synth, _, g) in rows.items()}
    res = evaluate(gens, pairs, ["random_mask"], feature_net=net, limit=limit, seed=seed, progress=progress, dist=dist,
                   keep_images=True)
    images = {name: by_kind["random_mask"] for name, by_kind in res.pop("images").items()}
    reference = images[f"teacher_{teacher_steps}"]
    out = {"metric": res["metric"], "kid_metric": res["kid_metric"], "input": "random_mask", "n_real": res["n_real"],
           "seed": seed, "guidance": g_teacher, "precision": teacher.precision,
           "latency": f"median of {repeats} batch-1 runs, guidance included", "cpu": cpu_description(),
           "psnr_to_teacher": f"PSNR (dB) of each sampler's images against the teacher's {teacher_steps}-step "
                              "images from the same layouts and noise: how closely it reproduces the full sampler",
           "teacher": {}, "students": {}, "ddim": {}}
    if options:
        out["teacher_sampler"] = {k: (str(v) if k == "guide" else list(v) if k == "interval" else v)
                                  for k, v in options.items()}
    if others:
        out["ddim_other_guidance"] = {f"{g:g}": {} for g in others}
    for (group, n), (synth, steps, g) in rows.items():
        m = res["methods"][f"{group}_{n}"]["random_mask"]
        row = {"steps": steps, "fd": m["fd"], "kid": m["kid"], "n": m["n"]}
        if group.startswith("ddim_g"):  # same cost as the "ddim" row of that step count: no second timing
            out["ddim_other_guidance"][f"{g:g}"][str(n)] = row
            continue
        row["latency_s"] = (round(median_latency(synth, steps, repeats, g, **opts[group, n]), 4) if dist.is_main
                            else None)
        if group == "teacher":
            out["teacher"] = row
        else:
            row["psnr_to_teacher"] = round(paired_psnr(images[f"{group}_{n}"], reference), 2)
            out[group][str(n)] = row
    return out


def shard(n: int, rank: int, world: int) -> tuple[int, int]:
    """Contiguous block ``[lo, hi)`` of ``n`` items for ``rank`` of ``world``."""
    per = -(-n // world)
    return min(n, rank * per), min(n, (rank + 1) * per)


def generate_all(gen, layouts: np.ndarray, seed: int, desc: str = "generate", progress: bool = True,
                 chunk: int = 20) -> np.ndarray:
    """``gen.generate`` over ``layouts`` in chunks, with a progress bar; image ``i`` uses seed ``seed + i``."""
    from tqdm.auto import tqdm

    out = []
    bar = tqdm(total=len(layouts), desc=desc, unit="img", disable=not progress, file=sys.stderr)
    for i in range(0, len(layouts), chunk):
        out.append(gen.generate(layouts[i:i + chunk], seed + i))
        bar.update(len(out[-1]))
    bar.close()
    return np.concatenate(out)


def build_generator(spec: str, train_pairs: PairSet | None, steps: int | None, guidance: float | None,
                    device: str = "cpu"):
    """``trivial`` or ``NAME=checkpoint-folder`` (any generator ``sparsesis.loader.load`` reads)."""
    from .generators import MeanColourGenerator, ModelGenerator
    from ..loader import load
    from .provenance import model_folder

    if spec == "trivial":
        return "trivial", MeanColourGenerator.fit(train_pairs)
    if "=" not in spec:
        raise SystemExit(f"error: method {spec!r} must be 'trivial' or NAME=CHECKPOINT_FOLDER")
    name, path = spec.split("=", 1)
    model = load(model_folder(path), device=device)
    if not model.is_diffusion:  # a GAN: one pass, no steps or guidance to set
        steps = guidance = None
    return name, ModelGenerator(model, steps=steps, guidance=guidance, name=name)


def model_size(generators: dict, default: int = 64) -> int:
    """The image size the compared models make (the trivial baseline makes any): they must agree."""
    sizes = {g.synth.image_size for g in generators.values() if hasattr(g, "synth")}
    if len(sizes) > 1:
        raise SystemExit(f"error: the methods make images of different sizes {sorted(sizes)}; compare models "
                         "of one size in one table")
    return sizes.pop() if sizes else default


def students_guidance(students: dict, requested: float | None) -> float:
    """The guidance scale the teacher is measured at: the one its students bake in (they must agree)."""
    baked = sorted({round(s.baked_guidance, 6) for s in students.values()})
    if len(baked) != 1:
        raise SystemExit(f"error: the students bake in different guidance scales {baked}; distil them "
                         "at one scale, or evaluate them in separate runs")
    if requested is not None and abs(requested - baked[0]) > 1e-6:
        raise SystemExit(f"error: --guidance {requested:g} differs from the {baked[0]:g} the students bake in; "
                         "the teacher is measured at the students' scale (leave --guidance out, or use "
                         "--other-guidance for extra plain-DDIM rows)")
    return baked[0]


def students_sampler(students: dict, guide: str | None = None, interval=None) -> dict:
    """The teacher's sampler options that the students baked in (``guide``, ``interval``, ``cfg_scale``; they must
    agree), as ``Synthesizer`` takes them. ``guide`` / ``interval`` override the recorded ones (a guide folder that
    has moved since the distillation); a recorded guide that is not there is a clear error."""
    recorded = {(s.distilled.get("guide"), tuple(s.distilled.get("interval") or ()) or None,
                 float(s.distilled.get("cfg_scale") or 1.0)) for s in students.values()}
    if len(recorded) != 1:
        raise SystemExit(f"error: the students bake in different teacher samplers {sorted(map(str, recorded))}; "
                         "evaluate them in separate runs")
    rec_guide, rec_interval, cfg_scale = recorded.pop()
    guide = rec_guide if guide is None else guide
    interval = rec_interval if interval is None else tuple(interval)
    options = {}
    if guide is not None:
        if not (Path(guide) / "config.json").is_file():
            raise SystemExit(f"error: the students were distilled with autoguidance by {guide}, which is not here: "
                             "pass --guide FOLDER (the same network)")
        options["guide"] = Path(guide)
    else:
        options["guide"] = "cfg"
    if interval is not None:
        if len(interval) != 2:
            raise SystemExit(f"error: --interval takes two times LO HI, got {list(interval)}")
        options["interval"] = tuple(float(t) for t in interval)
    if cfg_scale != 1.0:
        options["cfg_scale"] = cfg_scale
    return options


def student_folders(paths) -> list[Path]:
    """Expand distillation run folders into their ``student_<steps>`` folders (largest step count first)."""
    out = []
    for p in map(Path, paths):
        if (p / "model.safetensors").is_file():
            out.append(p)
            continue
        found = sorted(p.glob("student_*/model.safetensors"), key=lambda f: -int(f.parent.name.split("_")[1]))
        if not found:
            raise SystemExit(f"error: {p} holds no student (expected model.safetensors or student_<steps>/ folders)")
        out.extend(f.parent for f in found)
    return out


def markdown_table(result: dict) -> str:
    """The evaluation table (``evaluate``'s result) as markdown: one row per method with its budget, then
    FD, KID and (when scored) mIoU per input kind; the best FD and KID of each kind in bold."""
    kinds = list(dict.fromkeys(k for by_kind in result["methods"].values() for k in by_kind))
    has_miou = any("miou" in m for by_kind in result["methods"].values() for m in by_kind.values())
    cols = ["method", "parameters", "images seen", "train hours"]
    for k in kinds:
        cols += [f"{k} {result['metric']}", f"{k} KID"] + ([f"{k} mIoU"] if has_miou else [])
    best = {(k, q): min((by_kind[k][q] for by_kind in result["methods"].values() if k in by_kind), default=None)
            for k in kinds for q in ("fd", "kid")}
    lines = ["| " + " | ".join(cols) + " |", "|" + "---|" * len(cols)]
    for name, by_kind in result["methods"].items():
        info = result.get("info", {}).get(name, {})
        p, imgs, hours = info.get("parameters"), info.get("images_seen"), info.get("train_hours")
        row = [name, f"{p / 1e6:.1f} M" if p else "-", f"{imgs:,}" if imgs else "-", f"{hours:.2f}" if hours else "-"]
        if info.get("run_images_seen"):  # a generator chosen from a longer run: the run's budget beside its own
            row[2] += f" (run: {info['run_images_seen']:,})"
            row[3] += f" (run: {info['run_train_hours']:.2f})"
        for k in kinds:
            m = by_kind.get(k)
            if m is None:
                row += ["-", "-"] + (["-"] if has_miou else [])
                continue
            fd, kd = f"{m['fd']:.1f}", f"{m['kid']:.3f}"
            fd, kd = (f"**{fd}**" if m["fd"] == best[(k, "fd")] else fd, f"**{kd}**" if m["kid"] == best[(k, "kid")] else kd)
            if "fd_seed_std" in m:  # the spread over mask seeds
                fd, kd = f"{fd} ± {m['fd_seed_std']:.1f}", f"{kd} ± {m['kid_seed_std']:.3f}"
            row += [fd, kd]
            row += [f"{m['miou']:.3f}" if "miou" in m else "-"] if has_miou else []
        lines.append("| " + " | ".join(row) + " |")
    real = result.get("segmenter_real_miou")
    notes = [f"{result['metric']} and KID against {result['n_real']} held-out photos; {result['mask_seeds']} mask "
             "seed(s) per layout, pooled (± the standard deviation of the seeds' own figures, where several); lower "
             "is better. Parameters: the network that generates (a GAN's discriminator "
             "is training-only and not counted); train hours: wall-clock training time on the machine named in "
             "each checkpoint's record."]
    if real is not None:
        notes.append(f"mIoU of the segmenter on the real held-out photos (the ceiling): {real:.3f}.")
    if "command" in result:
        notes.append(f"Command: `{result['command']}`")
    return "\n".join(lines) + "\n\n" + " ".join(notes) + "\n"


def compared_methods(a, device) -> tuple[dict, PairSet]:
    """The ``--method`` generators of a table or sparsity run, and the held-out split at their image size."""
    models = {}
    for spec in a.method:
        if spec != "trivial":
            name, gen = build_generator(spec, None, a.steps, a.guidance, device)
            models[name] = gen
    size = model_size(models)
    train_pairs = load_split("train", size, a.data) if "trivial" in a.method else None
    gens = {}
    for spec in a.method:  # in the order given
        if spec == "trivial":
            gens.update([build_generator(spec, train_pairs, None, None)])
        else:
            name = spec.split("=", 1)[0]
            gens[name] = models[name]
    return gens, load_split("eval", size, a.data)


def run_generation(a, ctx) -> dict:
    """ours on class-wise masks vs the trivial mean-colour baseline on full layouts."""
    gens = dict([build_generator(f"ours={a.checkpoint}", None, a.steps, a.guidance, ctx.device)])
    size = gens["ours"].synth.image_size
    eval_pairs, train_pairs = load_split("eval", size, a.data), load_split("train", size, a.data)
    common = dict(feature_net=ctx.net, limit=a.limit, seed=a.seed, dist=ctx.dist, segmenter=ctx.seg)
    ours = evaluate(gens, eval_pairs, ["random_mask"], mask_seeds=a.mask_seeds, **common)
    trivial = evaluate(dict([build_generator("trivial", train_pairs, None, None)]), eval_pairs, ["dense"], **common)
    o, tr, info = ours["methods"]["ours"]["random_mask"], trivial["methods"]["trivial"]["dense"], ours["info"]["ours"]
    miou = lambda m: {"miou": m["miou"]} if "miou" in m else {}  # noqa: E731
    return {"metric": ctx.net.metric,
            "ours": {"fd": o["fd"], "kid": o["kid"], "steps": info["steps"], "guidance": info["guidance"],
                     "input": "random_mask", "n": o["n"], "labelled_share": o["labelled_share"], **miou(o),
                     **{k: info[k] for k in ("parameters", "images_seen", "train_hours")}},
            "trivial": {"fd": tr["fd"], "kid": tr["kid"], "input": "dense (full layouts: the easier case)",
                        "n": tr["n"], **miou(tr)},
            "n_real": ours["n_real"], "seed": a.seed,
            **({"segmenter_real_miou": ours["segmenter_real_miou"]} if ctx.seg is not None else {})}


def run_table(a, ctx) -> dict:
    gens, eval_pairs = compared_methods(a, ctx.device)
    return evaluate(gens, eval_pairs, a.kinds, mask_seeds=a.mask_seeds, feature_net=ctx.net, limit=a.limit,
                    seed=a.seed, dist=ctx.dist, segmenter=ctx.seg)


def run_sparsity(a, ctx) -> dict:
    gens, eval_pairs = compared_methods(a, ctx.device)
    return sparsity_curves(gens, eval_pairs, shares=a.shares, strokes=a.strokes, robustness=a.robustness,
                           mask_seeds=a.mask_seeds, net=ctx.net, limit=a.limit, seed=a.seed, dist=ctx.dist,
                           segmenter=ctx.seg)


def run_distillation(a, ctx) -> dict:
    from ..synthesizer import Synthesizer

    teacher = Synthesizer.from_pretrained(a.checkpoint, device=ctx.device, precision=a.precision)
    students, sources = {}, {}
    for folder in student_folders(a.students):
        s = Synthesizer.from_pretrained(folder, device=ctx.device, precision=a.precision)
        if not s.distilled:
            raise SystemExit(f"error: {folder} is not a distilled student (no 'distillation' in its config)")
        students[s.default_steps], sources[str(s.default_steps)] = s, str(folder)
    out = distillation_report(teacher, a.teacher_steps, dict(sorted(students.items(), reverse=True)), a.ddim_steps,
                              load_split("eval", teacher.image_size, a.data), net=ctx.net, limit=a.limit,
                              seed=a.seed, repeats=a.repeats, dist=ctx.dist,
                              guidance=students_guidance(students, a.guidance), other_guidance=a.other_guidance,
                              options=students_sampler(students, a.guide, a.interval))
    out["students_from"] = sources
    return out


def run_upsampler(a, ctx) -> dict:
    from .evaluate_upsampler import upsampler_report
    from ..loader import load
    from ..models.upsampler import Upsampler

    upsampler = Upsampler.from_pretrained(a.upsampler, device=ctx.device, precision=a.precision)
    generator = load(a.generator, device=ctx.device, precision=a.precision)
    eval_pairs, train_pairs = load_split("eval", a.size, a.data), load_split("train", a.size, a.data)
    out = upsampler_report(upsampler, generator, eval_pairs, train_pairs,
                           ctx.net, ctx.seg, generator.image_size, seed=a.seed, limit=a.limit, repeats=a.repeats)
    out["metric"], out["precision"] = ctx.net.metric, upsampler.precision
    return out


def _generation_args(q):
    q.add_argument("--checkpoint", required=True)
    q.add_argument("--mask-seeds", type=int, default=1)


def _table_args(q):
    q.add_argument("--method", action="append", required=True, help="trivial or NAME=CHECKPOINT (repeatable)")
    q.add_argument("--kinds", nargs="+", default=["random_mask", "scribble"])
    q.add_argument("--mask-seeds", type=int, default=3)


def _sparsity_args(q):
    q.add_argument("--method", action="append", required=True, help="trivial or NAME=CHECKPOINT (repeatable)")
    q.add_argument("--shares", type=float, nargs="+", default=[1.0, 0.5, 0.25, 0.1, 0.05, 0.02])
    q.add_argument("--strokes", type=int, nargs="+", default=[1, 2, 4])
    q.add_argument("--robustness", nargs="*", default=["downsampled", "edges_unknown", "random_unknown"])
    q.add_argument("--mask-seeds", type=int, default=1)


def _distillation_args(q):
    q.add_argument("--checkpoint", required=True, help="the undistilled teacher")
    q.add_argument("--teacher-steps", type=int, default=256, help="the teacher's full step count")
    q.add_argument("--students", nargs="+", required=True,
                   help="student folders, or a distillation run folder holding student_<steps> folders")
    q.add_argument("--ddim-steps", type=int, nargs="*", default=[1, 2, 4, 8, 16, 32])
    q.add_argument("--precision", default="auto", choices=INFERENCE_PRECISIONS, help=PRECISION_HELP)
    q.add_argument("--repeats", type=int, default=5, help="latency: median of this many runs")
    q.add_argument("--other-guidance", type=float, nargs="*", default=[],
                   help="extra plain-DDIM rows at each student's step count under these guidance scales")
    q.add_argument("--guide", default=None,
                   help="the teacher's autoguidance network (default: the one the students record)")
    q.add_argument("--interval", type=float, nargs=2, default=None, metavar=("LO", "HI"),
                   help="guide the teacher only at times LO <= t <= HI (default: as the students record)")


def _upsampler_args(q):
    q.add_argument("--upsampler", required=True, help="upsampler model folder")
    q.add_argument("--generator", default="checkpoints/ours64-student4",
                   help="the 64 px model whose images are upscaled")
    q.add_argument("--size", type=int, default=256, help="output size")
    q.add_argument("--repeats", type=int, default=5, help="latency: median of this many runs")
    q.add_argument("--precision", default="auto", choices=INFERENCE_PRECISIONS, help=PRECISION_HELP)


# name -> (help, its own flags, what it runs); every command also takes the common flags below
COMMANDS = {
    "generation": ("one generator vs the trivial mean-colour baseline (FD, KID, mIoU)", _generation_args,
                   run_generation),
    "table": ("several methods and input kinds -> results/eval.json", _table_args, run_table),
    "sparsity": ("metrics vs labelled share and strokes, plus noisy-label kinds -> results/sparsity.json",
                 _sparsity_args, run_sparsity),
    "distillation": ("students vs teacher vs plain DDIM: quality and latency -> results/distillation_t400k.json",
                     _distillation_args, run_distillation),
    "upsampler": ("bicubic vs the learned upsampler at 256: patch FD, FD, KID, mIoU, latency -> "
                  "results/upsampler.json", _upsampler_args, run_upsampler),
}


def _common_args(q):
    q.add_argument("--data", default=None)
    q.add_argument("--steps", type=int, default=None, help="sampling steps (default: the checkpoint's)")
    q.add_argument("--guidance", type=float, default=None)
    q.add_argument("--limit", type=int, default=None, help="only the first N held-out layouts (quick checks)")
    q.add_argument("--seed", type=int, default=0)
    q.add_argument("--features", default="effnet-lite0", choices=["effnet-lite0", "inception"])
    q.add_argument("--inception", default=None, help="path to inception-2015-12-05.pt (for --features inception)")
    q.add_argument("--segmenter", default=None, help="segmenter model folder: adds mIoU (layout fidelity)")
    q.add_argument("--device", default="cpu", choices=["auto", "cpu", "cuda"])
    q.add_argument("--out", required=True)


def parse_args(argv=None) -> argparse.Namespace:
    p = argparse.ArgumentParser(prog="python -m sparsesis.evaluation.evaluate", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, (help_text, add_args, _) in COMMANDS.items():
        q = sub.add_parser(name, help=help_text)
        add_args(q)
        _common_args(q)
    return p.parse_args(argv)


def main(argv=None) -> None:
    import os
    from types import SimpleNamespace

    from .. import distributed as D
    from ..models.checkpoint import CheckpointError, save_json_atomic
    from ..data.sets import DataError
    from .metrics import FeatureNetworkError, feature_network

    a = parse_args(argv)
    device = D.pick_device(a.device, int(os.environ.get("LOCAL_RANK", "0")))
    dist = D.init(device)
    try:
        seg = None
        if a.segmenter:
            from ..models.segmenter import Segmenter

            seg = Segmenter.from_pretrained(a.segmenter)
        ctx = SimpleNamespace(device=device, dist=dist, seg=seg,
                              net=feature_network(a.features, device=device, inception_path=a.inception))
        out = COMMANDS[a.cmd][2](a, ctx)
        out["command"] = "python -m sparsesis.evaluation.evaluate " + " ".join(argv if argv is not None else sys.argv[1:])
        if dist.is_main:
            save_json_atomic(a.out, out)
            if a.cmd == "table":
                Path(a.out).with_suffix(".md").write_text(markdown_table(out))
            print(json.dumps(out, indent=2))
    except (DataError, FeatureNetworkError, CheckpointError) as err:
        sys.exit(f"error: {err}")
    finally:
        D.shutdown(dist)


if __name__ == "__main__":
    main()
