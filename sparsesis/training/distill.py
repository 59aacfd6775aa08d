r"""Progressive distillation (Salimans & Ho 2022, Algorithm 2): a student learns to take in one DDIM step
what the teacher takes in two; then it becomes the teacher and the step count halves again.

    python -m sparsesis.training.distill --run-dir runs/students --threads 1

distils the shipped students (its defaults are their recipe: the teacher's 8-step sampler under autoguidance
1.5 by ``checkpoints/ours64/guide`` plus classifier-free guidance 2, 8 -> 4 -> 2 steps; ``python -m
sparsesis.training.reproduce ours64-student4 --dry-run``).

``--iters-per-stage`` takes one count for every stage or one per stage. Guidance: the *guided* teacher is
distilled at one fixed scale (``--guidance``), so the student's single pass reproduces ``v_u + w (v_c - v_u)``
and each student step costs one network pass instead of two (Meng et al. 2023 condition the student on w
instead); ``--guide FOLDER`` distils autoguidance by that weaker model instead, ``--interval LO HI`` guidance on
those noise levels only, ``--cfg-scale C`` (with ``--guide``) classifier-free guidance at C on top of the
autoguidance. A student's config records the scale (and guide) it baked in; ``Synthesizer`` refuses
another scale for it. ``--student-init FOLDER`` starts the first stage from a student of a nearby sampler
(its distillation budget is counted in the new student's). ``--precision bf16`` runs the networks' passes under
bf16 autocast (faster only where the CPU computes bf16 natively; the student's record says which ran). The
shipped students' recipes and how they measure: ``checkpoints/README.md`` and ``results/README.md``.

Layout: ``<run>/state.safetensors`` (the stage in progress: student, optimizer, iteration), and one
model folder ``<run>/student_<steps>`` per finished stage. Re-running the command resumes.
"""
from __future__ import annotations

import copy
import json
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Callable

import torch

from ..data.batches import classwise_masker, make_batch
from ..models.checkpoint import STATE_FILE, read_metadata, save_model_dir
from ..data.classes import one_hot
from ..models.diffusion import (alpha_sigma, cond_uncond, ddim_step, guided, guided_model, logsnr_cosine, q_sample,
                        x_eps_from_v)
from ..data.masking import MaskConfig
from .loop import (PRECISIONS, TrainingLoop, config_from_args, config_parser, load_state,
                       mixed_precision, save_state, set_threads)


@dataclass(frozen=True)
class DistillConfig:
    teacher: str = "checkpoints/ours64"
    run: str = "runs/distill64"
    data: str | None = None
    teacher_steps: int = 8  # N: the teacher's DDIM step count (a power of two)
    final_steps: int = 2  # stop after the stage that produces this many steps
    iters_per_stage: int | tuple[int, ...] = (3600, 800)  # one for all stages, or one each
    batch_size: int = 8
    lr: float = 1e-4  # peak; decays linearly to zero within each stage
    guidance: float | None = 1.5  # the scale baked into the student; None: the teacher's own default
    guide: str | None = "checkpoints/ours64/guide"  # autoguidance: a weaker model folder guides the teacher (default: classifier-free)
    interval: tuple[float, ...] | None = None  # (lo, hi): the teacher guided only at times lo <= t <= hi
    cfg_scale: float = 2.0  # with --guide: classifier-free guidance at this scale on top of the autoguidance
    student_init: str | None = None  # the first stage's student starts from this model folder, not the teacher
    seed: int = 0
    save_every: int = 40
    threads: int | None = None
    precision: str = "fp32"  # CPU autocast of the networks' passes: fp32 | bf16 (the targets' arithmetic stays fp32)


def stage_plan(teacher_steps: int, final_steps: int) -> list[int]:
    """Student step counts, one per stage: N/2, N/4, ..., final_steps."""
    if teacher_steps < 2 or teacher_steps & (teacher_steps - 1):
        raise ValueError(f"teacher_steps must be a power of two >= 2, got {teacher_steps}")
    if final_steps < 1 or final_steps & (final_steps - 1) or final_steps >= teacher_steps:
        raise ValueError(f"final_steps must be a power of two below teacher_steps, got {final_steps}")
    plan, n = [], teacher_steps // 2
    while n >= final_steps:
        plan.append(n)
        n //= 2
    return plan


def stage_iterations(iters_per_stage, plan: list[int]) -> dict[int, int]:
    """Training iterations per stage (keyed by the student's step count)."""
    counts = [iters_per_stage] * len(plan) if isinstance(iters_per_stage, int) else list(iters_per_stage)
    if len(counts) == 1:
        counts = counts * len(plan)
    if len(counts) != len(plan) or any(int(c) < 1 for c in counts):
        raise ValueError(f"iters_per_stage needs one count >= 1, or one per stage ({len(plan)} stages: "
                         f"{plan}), got {iters_per_stage!r}")
    return {n: int(c) for n, c in zip(plan, counts)}


def stage_lr(peak: float, iteration: int, total: int) -> float:
    """Learning rate at ``iteration`` of a stage: linear from ``peak`` down to ``peak / total``."""
    return peak * (1.0 - iteration / total)


def student_dir(run: Path, steps: int) -> Path:
    return run / f"student_{steps}"


def distillation_target(teacher_fn, z: torch.Tensor, t: torch.Tensor, student_steps: int) -> torch.Tensor:
    """Two teacher DDIM steps t -> t - 1/(2n) -> t - 1/n, and the x that makes one step from t land there.

    ``teacher_fn(z, t) -> v`` (guidance already bound in). Returns x_tilde, shape of z.
    """
    dt = 1.0 / student_steps
    t1, t2 = (t - 0.5 * dt).clamp_min(0), (t - dt).clamp_min(0)
    x0 = x_eps_from_v(z, teacher_fn(z, t).float(), t)[0].clamp(-1, 1)
    z1 = ddim_step(z, x0, t, t1)
    x1 = x_eps_from_v(z1, teacher_fn(z1, t1).float(), t1)[0].clamp(-1, 1)
    z2 = ddim_step(z1, x1, t1, t2)
    a_t, s_t = alpha_sigma(logsnr_cosine(t))
    a_2, s_2 = alpha_sigma(logsnr_cosine(t2))
    ratio = (s_2 / s_t).reshape(-1, 1, 1, 1)
    denom = (a_2.reshape(-1, 1, 1, 1) - ratio * a_t.reshape(-1, 1, 1, 1))
    return (z2 - ratio * z) / denom


def distill_loss(student_fn, teacher_fn, x: torch.Tensor, noise: torch.Tensor, t: torch.Tensor,
                 student_steps: int) -> torch.Tensor:
    """Per-example x-space MSE with the 'truncated SNR' weight max(snr, 1) (Salimans & Ho, Sec. 4)."""
    z = q_sample(x, t, noise)
    with torch.no_grad():
        target = distillation_target(teacher_fn, z, t, student_steps)
    x_student = x_eps_from_v(z, student_fn(z, t).float(), t)[0]
    snr = torch.exp(logsnr_cosine(t))
    return torch.clamp(snr, min=1.0) * ((x_student - target) ** 2).mean(dim=(1, 2, 3))


def guided_teacher(teacher, lay, uncond, scale: float, guide=None, interval=None, cfg_scale: float = 1.0):
    """The sampler a first stage distils, ``(z, t) -> v``: the teacher under classifier-free guidance at
    ``scale`` (or autoguidance by the network ``guide``, with classifier-free guidance at ``cfg_scale`` on top),
    guided only within ``interval`` when given (``guided_model``)."""
    return guided_model(guided(teacher, lay, None, 1.0), cond_uncond(teacher, lay, uncond), scale,
                        guided(guide, lay, None, 1.0) if guide is not None else None, cfg_scale, interval)


def student_times(student_steps: int, batch: int, generator: torch.Generator) -> torch.Tensor:
    """Times on the student's grid: t = i / n, i in 1..n."""
    i = torch.randint(1, student_steps + 1, (batch,), generator=generator)
    return i.float() / student_steps


@dataclass
class Stage:
    """One stage: ``student`` learns to take in one DDIM step (of ``n``) what the target sampler takes in two."""

    n: int  # the student's step count
    iterations: int
    student: torch.nn.Module
    target: Callable  # (one-hot layouts, all-UNKNOWN layouts) -> the target sampler's model function (z, t) -> v


def load_guide(cfg: DistillConfig, classset) -> torch.nn.Module | None:
    """``--guide``'s network (frozen; None without one), checked to be an undistilled model of the teacher's
    classes; and the flags that only make sense with it or in its form (``--cfg-scale``, ``--interval``)."""
    from ..synthesizer import Synthesizer

    guide = None
    if cfg.guide is not None:
        guide_synth = Synthesizer.from_pretrained(cfg.guide)
        if guide_synth.distilled or guide_synth.classset.to_dict() != classset.to_dict():
            raise ValueError(f"--guide {cfg.guide}: the guide must be an undistilled model of the teacher's classes")
        guide = guide_synth.model.float().eval().requires_grad_(False)
    if cfg.cfg_scale != 1.0 and cfg.guide is None:
        raise ValueError("--cfg-scale adds classifier-free guidance to autoguidance: it needs --guide "
                         "(for classifier-free guidance alone, use --guidance)")
    if cfg.interval is not None and len(cfg.interval) != 2:
        raise ValueError(f"--interval takes two times LO HI, got {cfg.interval}")
    return guide


def layout_batches(pairs, config: dict, classset, seed: int, batch_size: int) -> Callable:
    """``(n, it) -> (photos, layouts, all-UNKNOWN layouts)``: the batch of stage ``n`` at iteration ``it`` (a pure
    function of them, so a resumed stage sees the same), its layouts masked the way the teacher was trained (its
    folder's ``training.mask``) and one-hot (B, K+1, H, W)."""
    mask_cfg = config.get("training", {}).get("mask")
    masker = classwise_masker(MaskConfig(**{k: tuple(v) if isinstance(v, list) else v for k, v in mask_cfg.items()})
                              if isinstance(mask_cfg, dict) else MaskConfig())

    def batch(n: int, it: int):
        b = make_batch(pairs, it, seed + 7919 * n, batch_size, masker)
        return (b.photos, one_hot(b.layouts, classset.num_channels),
                one_hot(torch.full_like(b.layouts, classset.unknown_id), classset.num_channels))

    return batch


def stage_networks(cfg: DistillConfig, run: Path, n: int, first: bool):
    """-> (teacher, student, budget before): the stage's teacher (the model folder, or the last stage's student;
    frozen), its student (a trainable copy, or ``--student-init``'s weights for the first stage) and the distillation
    budget the student starts with (images, seconds)."""
    from ..synthesizer import Synthesizer

    teacher_synth = Synthesizer.from_pretrained(cfg.teacher if first else student_dir(run, n * 2))
    before = (teacher_synth.distilled or {}).get("total", {"images": 0, "seconds": 0.0})  # earlier stages
    teacher = teacher_synth.model.float().eval().requires_grad_(False)
    student = copy.deepcopy(teacher).train().requires_grad_(True)
    if first and cfg.student_init is not None:  # a warm start: a student of a nearby sampler
        init = Synthesizer.from_pretrained(cfg.student_init)
        if not init.distilled or init.default_steps != n:
            raise ValueError(f"--student-init {cfg.student_init}: needs a distilled {n}-step student "
                             f"(the first stage's), got {init.default_steps} steps")
        try:
            student.load_state_dict(init.model.float().state_dict())
        except RuntimeError:
            raise ValueError(f"--student-init {cfg.student_init}: its network differs from the teacher's") from None
        before = init.distilled.get("total", before)  # its budget counts towards this student's
    return teacher, student, before


def stage_target(teacher, first: bool, guidance: float, guide, cfg: DistillConfig) -> Callable:
    """``(lay, uncond) -> (z, t) -> v``: the sampler a stage distils for a batch of layouts. The first stage distils
    the guided teacher (``guided_teacher``); later stages copy an already guided student, one plain pass."""
    if first:
        return lambda lay, uncond: guided_teacher(teacher, lay, uncond, guidance, guide, cfg.interval, cfg.cfg_scale)
    return lambda lay, uncond: guided(teacher, lay, None, 1.0)


def distil_step(stage: Stage, opt, batch, it: int, cfg: DistillConfig, autocast) -> float:
    """One iteration: the student's loss against two steps of the target sampler on ``batch`` at times on the
    student's grid and noise drawn from (seed, stage, iteration), then AdamW at the stage's decaying rate."""
    photos, lay, uncond = batch
    g = torch.Generator().manual_seed(cfg.seed * 1_000_003 + stage.n * 10_007 + it)
    t = student_times(stage.n, cfg.batch_size, g)
    noise = torch.randn(photos.shape, generator=g)
    teacher_fn = stage.target(lay, uncond)
    with autocast:
        loss = distill_loss(lambda z, tt: stage.student(z, tt, lay), teacher_fn, photos, noise, t, stage.n).mean()
    for group in opt.param_groups:  # linear decay to zero within each stage (no EMA needed)
        group["lr"] = stage_lr(cfg.lr, it, stage.iterations)
    opt.zero_grad(set_to_none=True)
    loss.backward()
    torch.nn.utils.clip_grad_norm_(stage.student.parameters(), 1.0)
    opt.step()
    return loss.item()


def train_stage(stage: Stage, batches: Callable, cfg: DistillConfig, autocast, state_path: Path,
                progress: bool = True) -> tuple[float | None, float, int]:
    """Train the stage's student until its iterations are done or a signal stops it, resuming from ``state_path``
    when that holds this stage and saving it every ``save_every`` iterations and on a stop.
    -> (smoothed loss, the stage's training seconds across resumes, the iteration reached)."""
    opt = torch.optim.AdamW(stage.student.parameters(), lr=cfg.lr, weight_decay=0.0)
    it, elapsed = 0, 0.0  # elapsed: training seconds of this stage, carried across resumes
    if state_path.is_file() and int(read_metadata(state_path).get("stage", -1)) == stage.n:
        meta = load_state(state_path, {"student": stage.student}, {"opt": opt})
        it, elapsed = int(meta["iteration"]), float(meta.get("seconds", 0.0))
    loop = TrainingLoop(stage.iterations, it, f"distil {2 * stage.n}->{stage.n} steps", progress=progress)
    loss_avg, t0 = None, time.time()

    def save():
        save_state(state_path, {"student": stage.student}, {"opt": opt}, stage=str(stage.n), iteration=str(loop.step),
                   seconds=str(round(elapsed + time.time() - t0, 1)))

    with loop:
        while loop.running():
            loss = distil_step(stage, opt, batches(stage.n, loop.step), loop.step, cfg, autocast)
            loss_avg = loss if loss_avg is None else 0.95 * loss_avg + 0.05 * loss
            if loop.advance(loss=f"{loss_avg:.4f}") % cfg.save_every == 0:
                save()
    if loop.step < stage.iterations:  # stopped by a signal: keep the stage in progress, resume later
        save()
    return loss_avg, round(elapsed + time.time() - t0, 1), loop.step


def student_config(teacher_config: dict, cfg: DistillConfig, guidance: float, n: int, first: bool, result: dict,
                   before: dict) -> dict:
    """A finished stage's model folder config: the teacher's, sampling ``n`` DDIM steps unguided (the guidance is
    baked in), and the recipe with its budget, this stage's (``result``: loss, iterations, seconds) and the total
    since the undistilled teacher (``before`` plus this stage)."""
    images = result["iterations"] * cfg.batch_size
    out = dict(teacher_config)
    out["sampling"] = {"sampler": "ddim", "steps": n, "guidance": 1.0}
    out["distillation"] = {"steps": n, "guidance": guidance, "teacher": str(cfg.teacher),
                           "guide": cfg.guide, "interval": list(cfg.interval) if cfg.interval else None,
                           **({"cfg_scale": cfg.cfg_scale} if cfg.cfg_scale != 1.0 else {}),
                           **({"student_init": cfg.student_init} if cfg.student_init and first else {}),
                           "teacher_steps": cfg.teacher_steps, "iterations": result["iterations"],
                           "batch_size": cfg.batch_size, "lr": cfg.lr, "precision": cfg.precision,
                           "final_loss": result["loss"],
                           "stage": {"images": images, "seconds": result["seconds"]},
                           "total": {"images": before["images"] + images,
                                     "seconds": round(before["seconds"] + result["seconds"], 1)}}
    return out


def distill(cfg: DistillConfig, progress: bool = True) -> dict:
    """Run (or resume) every stage of ``stage_plan``, each student the next stage's teacher, the first distilling the
    guided teacher. Returns a summary: the plan, the guidance baked in, and per finished stage its loss, iterations
    and seconds (``stopped_at`` where a signal stopped a stage)."""
    from ..data.sets import load_split
    from ..synthesizer import Synthesizer

    set_threads(cfg.threads)
    autocast = mixed_precision(cfg.precision)
    run = Path(cfg.run)
    run.mkdir(parents=True, exist_ok=True)
    plan = stage_plan(cfg.teacher_steps, cfg.final_steps)
    iters = stage_iterations(cfg.iters_per_stage, plan)
    base = Synthesizer.from_pretrained(cfg.teacher)
    if base.distilled:
        raise ValueError(f"{cfg.teacher} is already a distilled student; start from the undistilled teacher")
    guidance = base.default_guidance if cfg.guidance is None else cfg.guidance
    guide = load_guide(cfg, base.classset)
    pairs = load_split("train", base.image_size, cfg.data, progress=progress)
    batches = layout_batches(pairs, base.config, base.classset, cfg.seed, cfg.batch_size)

    # resume: the finished stages are folders; the stage in progress is the state file
    done = [n for n in plan if (student_dir(run, n) / "model.safetensors").is_file()]
    summary = {"plan": plan, "guidance": guidance, "stages": {}}
    for n in plan:
        if n in done:
            continue
        first = n == plan[0]
        teacher, student, before = stage_networks(cfg, run, n, first)
        stage = Stage(n, iters[n], student, stage_target(teacher, first, guidance, guide, cfg))
        loss, seconds, reached = train_stage(stage, batches, cfg, autocast, run / STATE_FILE, progress)
        if reached < iters[n]:  # stopped by a signal: the state file keeps the stage in progress
            summary["stopped_at"] = {"stage": n, "iteration": reached}
            return summary
        result = {"loss": loss, "iterations": iters[n], "seconds": seconds}
        save_model_dir(student_dir(run, n), student.state_dict(),
                       student_config(base.config, cfg, guidance, n, first, result, before))
        (run / STATE_FILE).unlink(missing_ok=True)
        summary["stages"][n] = result
    return summary


def parse_config(argv=None) -> DistillConfig:
    """The command line as a ``DistillConfig``; exits with a usage error when the stages and counts disagree."""
    p = config_parser(DistillConfig, "python -m sparsesis.training.distill", __doc__, names={"run": "--run-dir"},
                      helps={"iters_per_stage": "one count for every stage, or one per stage (first stage first)",
                             "guidance": "the scale to bake in (the shipped students': 4)",
                             "guide": "autoguidance: a weaker model folder as the guide (default: classifier-free)",
                             "interval": "LO HI: guide the teacher only at times LO <= t <= HI",
                             "cfg_scale": "with --guide: classifier-free guidance at this scale on top (1: none)",
                             "student_init": "start the first stage's student from this distilled student "
                                             "(a nearby sampler's) instead of the teacher",
                             "precision": "CPU autocast of the networks' passes (bf16 pays only where the CPU has "
                                          "native bf16)"},
                      choices={"precision": list(PRECISIONS)})
    cfg = config_from_args(DistillConfig, p.parse_args(argv))
    try:
        stage_iterations(cfg.iters_per_stage, stage_plan(cfg.teacher_steps, cfg.final_steps))
    except ValueError as e:
        p.error(str(e))
    return cfg


def main(argv=None) -> None:
    print(json.dumps(distill(parse_config(argv)), indent=2))


if __name__ == "__main__":
    main()
