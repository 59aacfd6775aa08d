r"""The README's "Results" figures, made from and checked against ``results/*.json`` so that they cannot drift.

    python -m sparsesis.evaluation.report readme                     # Table 1 with its caption, as the README holds it
    python -m sparsesis.evaluation.report readme --check README.md   # exit 1 naming the first figure that differs

Table 1 (the paper's) is rendered here whole: each FD and KID with its spread where a file keeps
one, bold only where a lead exceeds both spreads. Every other figure of the section is listed in ``FIGURES``:
a regex tied to its sentence and the JSON value it prints, compared as rounded there. ``check_readme`` reports
what differs; ``tests/test_readme_figures.py`` runs it.
"""
from __future__ import annotations

import argparse
import json
import re
import statistics
import sys
import textwrap
from decimal import ROUND_HALF_UP, Decimal
from pathlib import Path
from typing import Callable, NamedTuple

RESULTS = Path(__file__).resolve().parents[2] / "results"  # the repository's results folder (used from a checkout)
WIDTH = 118  # the README's line width

# Table 1's rows: (label, the file holding the row, the method's key there); a label is formatted with the
# method's ``info`` so that its budget comes from the file too.
ROWS = (
    ("ours ({steps}-step student)", "eval.json", "ours-student4"),
    ("ours (teacher at {images_seen:,} images, DDIM {steps}, guidance {guidance:g})", "equal_budget_151872.json",
     "ours-teacher-151872"),
    ("ours (teacher at {images_seen:,} images, DDIM {steps}, guidance {guidance:g})", "equal_budget_48240.json",
     "ours-teacher-48240"),
    ("OASIS", "eval.json", "oasis"),
    ("SPADE", "eval.json", "spade"),
    ("SEAN", "eval.json", "sean"),
    ("class mean colour + noise", "eval.json", "trivial"),
)
KINDS = (("random_mask", "masked"), ("scribble", "scribbles"))


def load_results(results_dir: str | Path = RESULTS) -> dict[str, dict]:
    """Every JSON directly in ``results_dir``, by file name (``{"eval.json": {...}, ...}``)."""
    return {p.name: json.loads(p.read_text()) for p in sorted(Path(results_dir).glob("*.json"))}


class Measure(NamedTuple):
    value: float
    spread: float | None  # None: the file keeps no spread for it
    kind: str | None      # "seeds": standard deviation over mask seeds; "subsets": KID's over random subsets


def measure(entry: dict, metric: str) -> Measure:
    """FD or KID of one ``evaluate`` entry with its spread: the sample standard deviation of the per-mask-seed
    figures where the file keeps them (``<metric>_per_seed``), else KID's ``kid_std`` (over random
    subsets of the images), else none."""
    per_seed = entry.get(f"{metric}_per_seed")
    if per_seed and len(per_seed) > 1:
        return Measure(entry[metric], statistics.stdev(per_seed), "seeds")
    if metric == "kid" and entry.get("kid_std") is not None:
        return Measure(entry["kid"], entry["kid_std"], "subsets")
    return Measure(entry[metric], None, None)


def leads(best: Measure, other: Measure) -> bool:
    """Whether ``best`` (lower is better) is ahead of ``other`` by more than both spreads; never without them."""
    if best.spread is None or other.spread is None:
        return False
    return other.value - best.value > max(best.spread, other.spread)


def table_rows(results: dict[str, dict]) -> list[dict]:
    """Table 1's rows: label, source file, budget and, per input kind, FD and KID (``Measure``) and mIoU."""
    rows = []
    for label, name, key in ROWS:
        info = results[name]["info"][key]
        row = {"label": label.format(**info), "source": name, "info": info, "n_real": results[name]["n_real"],
               "core_hours": core_hours(results.get(THROUGHPUT), key, info),
               "mask_seeds": results[name]["mask_seeds"], "real_miou": results[name].get("segmenter_real_miou")}
        for kind, _ in KINDS:
            entry = results[name]["methods"][key][kind]
            row[kind] = {"fd": measure(entry, "fd"), "kid": measure(entry, "kid"), "miou": entry.get("miou"),
                         "n": entry["n"], "labelled_share": entry["labelled_share"]}
        rows.append(row)
    return rows


def one(values, what: str):
    """The single value all of ``values`` share: one sentence cannot describe figures measured differently."""
    values = set(values)
    if len(values) != 1:
        raise ValueError(f"the results differ in {what}: {sorted(values, key=str)}")
    return values.pop()


def fmt(metric: str, m: Measure) -> str:
    digits = {"fd": 1, "kid": 4}[metric]
    return f"{m.value:.{digits}f}" + ("" if m.spread is None else f" ± {m.spread:.{digits}f}")


THROUGHPUT = "throughput.json"


def core_hours(throughput: dict | None, key: str, info: dict) -> tuple[float | None, float | None]:
    """(the row's generator, its whole run) in core-hours at each trainer's rate in ``throughput.json`` (one CPU,
    one thread): images over images per core-second. A student adds its distillation to its teacher's images."""
    if throughput is None or not info.get("images_seen"):
        return None, None
    stages = throughput["stages"]
    rate = lambda stage: stages[stage]["images_per_core_second"] * 3600  # noqa: E731  (images per core-hour)
    if key.startswith("ours-teacher"):
        return info["images_seen"] / rate("ours64:train"), None
    if key == "ours-student4":
        distill = stages["ours64-student4:distill"]
        teacher_images = info["images_seen"] - distill["budget_images"]
        return teacher_images / rate("ours64:train") + distill["budget_images"] / rate("ours64-student4:distill"), None
    if f"{key}64:train" in stages:  # a GAN: the chosen generator's images, then its run's
        stage = f"{key}64:train"
        return info["images_seen"] / rate(stage), info.get("run_images_seen", 0) / rate(stage) or None
    return None, None


def budget_cells(info: dict, hours: tuple[float | None, float | None]) -> list[str]:
    p, images = info.get("parameters"), info.get("images_seen")
    cells = [f"{p / 1e6:.1f} M" if p else ("0" if p == 0 else "-"), f"{images:,}" if images else "-",
             f"{hours[0]:.2f}" if hours[0] else "-"]
    if info.get("run_images_seen"):  # a GAN's generator chosen from a longer run: then the run's budget
        cells[1] += f" of {info['run_images_seen']:,}"
        cells[2] += f" of {hours[1]:.2f}" if hours[1] else ""
    return cells


def caption(rows: list[dict], machine: str | None = None) -> str:
    """The paragraph above the table: protocol, and which spread each figure carries."""
    n_real = one((r["n_real"] for r in rows), "held-out photos")
    seeds = one((r["mask_seeds"] for r in rows), "mask seeds")
    n = one((r[k]["n"] for r in rows for k, _ in KINDS), "images per row")
    share = {k: one((r[k]["labelled_share"] for r in rows), f"{k}'s labelled share") for k, _ in KINDS}
    real_miou = one((r["real_miou"] for r in rows), "the segmenter's score on real photos")
    spreads = []
    unspread = []
    for metric, name in (("fd", "FD"), ("kid", "KID")):
        by_kind = {}
        for r in rows:
            for k, _ in KINDS:
                by_kind.setdefault(r[k][metric].kind, []).append(r["label"])
        for kind, labels in by_kind.items():
            which = "" if len(by_kind) == 1 else f" ({', '.join(dict.fromkeys(labels))})"
            if kind == "seeds":
                spreads.append(f"{name}{which} ± the standard deviation of its {seeds} mask seeds' figures")
            elif kind == "subsets":
                spreads.append(f"{name}{which} ± its standard deviation over random {min(n, n_real)}-image "
                               f"subsets of the {n}")
            else:
                unspread.append(f"{name}{which}")
    unspread.append("mIoU")
    text = (f"The paper's Table 1 on the {n_real} evaluation layouts, class-wise-masked ({share['random_mask']:.0%} "
            f"labelled) and as scribbles ({share['scribble']:.0%} labelled), {seeds} seeds each; FD over "
            "EfficientNet-Lite0 features (`FD-EffNetL0`; FID's Inception weights are not available offline) "
            f"and KID against the {n_real} photos, mIoU of a segmenter against the full layouts (on real "
            f"photos: {real_miou:.3f}). Lower FD and KID are better. " + "; ".join(spreads + [
                f"{', '.join(unspread[:-1])} and {unspread[-1]}" if len(unspread) > 1 else unspread[0]])
            + f" without {'one' if spreads else 'a spread'} (one figure over the {seeds} seeds' {n} images). "
            + (f"Core-hours: the images over the trainer's images per core-second on one CPU ({machine}, one "
               "thread; `results/throughput.json`). " if machine else "")
            + "Bold: ahead of the runner-up by more than both spreads.")
    return textwrap.fill(text, WIDTH, break_long_words=False, break_on_hyphens=False)


def render_table(results: dict[str, dict]) -> str:
    """Table 1 as Markdown, its caption above it: what the README's Results section holds."""
    rows = table_rows(results)
    bold = set()
    for kind, _ in KINDS:
        for metric in ("fd", "kid"):
            ranked = sorted(range(len(rows)), key=lambda i: rows[i][kind][metric].value)
            first, second = (rows[i][kind][metric] for i in ranked[:2])
            if leads(first, second):
                bold.add((ranked[0], kind, metric))
    lines = ["| method | parameters | images seen | core-hours | "
             + " | ".join(f"{word} FD / KID / mIoU" for _, word in KINDS) + " |",
             "| --- " * (4 + len(KINDS)) + "|"]
    for i, r in enumerate(rows):
        cells = [r["label"]] + budget_cells(r["info"], r["core_hours"])
        for kind, _ in KINDS:
            parts = [fmt(m, r[kind][m]) for m in ("fd", "kid")]
            parts = [f"**{p}**" if (i, kind, m) in bold else p for p, m in zip(parts, ("fd", "kid"))]
            cells.append(" / ".join(parts + [f"{r[kind]['miou']:.3f}"]))
        lines.append("| " + " | ".join(cells) + " |")
    tp = results.get(THROUGHPUT)
    machine = f"{tp['machine']['cpu']}, {tp['machine']['capability']}" if tp else None
    return caption(rows, machine) + "\n\n" + "\n".join(lines) + "\n"


def readme_table(results_dir: str | Path = RESULTS) -> str:
    return render_table(load_results(results_dir))


# --- every other figure of the Results section ---------------------------------------------------------------

class Figure(NamedTuple):
    pattern: str   # a regex over the Results section, one group per printed number; a space matches any line break
    source: str    # where the numbers come from, for the message
    values: Callable[[dict], tuple]  # results -> the numbers, in the groups' order


def get(results: dict, name: str, *keys):
    """``results[name][k1][k2]...``: one number of one file."""
    value = results[name]
    for k in keys:
        value = value[k]
    return value


def fd_of(results: dict, name: str, key: str, kind: str) -> float:
    return get(results, name, "methods", key, kind, "fd")


def hours_of(results: dict, name: str, key: str, run: bool = False) -> float:
    """A method's budget in core-hours on the throughput file's CPU (``run``: a GAN's whole run)."""
    own, whole = core_hours(results[THROUGHPUT], key, results[name]["info"][key])
    return whole if run else own


def fds(results: dict, name: str, key: str) -> tuple:
    """A method's FD under each input kind (masked, scribbles)."""
    return tuple(fd_of(results, name, key, kind) for kind, _ in KINDS)


UP, AMX, HIST = "upsampler.json", "precision_avx512_amx.json", "history/"
TEACHER_150K, TEACHER_120K, TEACHER_48K = (("equal_budget_151872.json", "ours-teacher-151872"),
                                           ("equal_budget_121872.json", "ours-teacher-121872"),
                                           ("equal_budget_48240.json", "ours-teacher-48240"))
GANS = ("oasis", "spade", "sean")
STUDENT = "checkpoints/ours64-student4"
FIGURES = (
    Figure(r"Each GAN trained to ([\d,]+) images", "eval.json",
           lambda r: (one((get(r, "eval.json", "info", g, "run_images_seen") for g in GANS), "run lengths"),)),
    Figure(r"the teacher's FD is ([\d.]+) / ([\d.]+) against the best GAN's \(OASIS\) ([\d.]+) / ([\d.]+)",
           "equal_budget.json, eval.json",
           lambda r: fds(r, *TEACHER_150K) + fds(r, "eval.json", "oasis")),
    Figure(r"below OASIS's core-hours \(([\d.]+) vs ([\d.]+)\) ([\d.]+) / ([\d.]+)", "equal_budget_121872.json, throughput.json",
           lambda r: (hours_of(r, *TEACHER_120K), hours_of(r, "eval.json", "oasis", run=True), *fds(r, *TEACHER_120K))),
    Figure(r"below SPADE's and SEAN's \(([\d.]+) vs ([\d.]+) and ([\d.]+)\) ([\d.]+) / ([\d.]+) "
           r"against (\d+\.\d)-(\d+\.\d)", "equal_budget_48240.json, eval.json, throughput.json",
           lambda r: (hours_of(r, *TEACHER_48K), *(hours_of(r, "eval.json", g, run=True) for g in ("spade", "sean")),
                      *fds(r, *TEACHER_48K), min(fds(r, "eval.json", "spade") + fds(r, "eval.json", "sean")),
                      max(fds(r, "eval.json", "spade") + fds(r, "eval.json", "sean")))),
    Figure(r"except below OASIS's core-hours on masked layouts \(([\d.]+) vs ([\d.]+)\)", "equal_budget_121872.json",
           lambda r: (get(r, TEACHER_120K[0], "methods", TEACHER_120K[1], "random_mask", "kid"),
                      get(r, "eval.json", "methods", "oasis", "random_mask", "kid"))),
    Figure(r"2-step student: ([\d.]+) against the 8-step teacher's ([\d.]+)", "distillation_t400k.json",
           lambda r: (get(r, "distillation_t400k.json", "students", "2", "fd"),
                      get(r, "distillation_t400k.json", "teacher", "fd"))),
    Figure(r"crops an image; real photos: ([\d.]+)\)", UP, lambda r: (get(r, UP, "floor", "patch_fd"),)),
    Figure(r"upsampler scores ([\d.]+) against bicubic's ([\d.]+) \(([\d.]+)x", UP,
           lambda r: (get(r, UP, "generated", "learned", "patch_fd"), get(r, UP, "generated", "bicubic", "patch_fd"),
                      get(r, UP, "generated", "learned", "patch_fd") / get(r, UP, "generated", "bicubic", "patch_fd"))),
    Figure(r"\(0\.\d+x; at git `0616c8d`: ([\d.]+)x\)", HIST + "upsampler_candidates.json",  # on that day's student
           lambda r: (shipped_0616c8d(r)["generated"]["patch_fd"]
                      / get(r, HIST + "upsampler_candidates.json", "bicubic", "generated", "patch_fd"),)),
    Figure(r"FD ([\d.]+) vs ([\d.]+), mIoU ([\d.]+) vs ([\d.]+);", UP,
           lambda r: tuple(get(r, UP, "generated", way, m) for m in ("fd", "miou") for way in ("learned", "bicubic"))),
    Figure(r"reduced to 64 px ([\d.]+) vs ([\d.]+) \(`0616c8d`: ([\d.]+)\), ([\d.]+) dB", UP,
           lambda r: (get(r, UP, "real", "learned", "patch_fd"), get(r, UP, "real", "bicubic", "patch_fd"),
                      shipped_0616c8d(r)["real"]["patch_fd"], get(r, UP, "real", "learned", "psnr_back"))),
    Figure(r"adds ([\d.]+) s to the student's ([\d.]+) s with AMX \(bf16[^)]*\): ([\d.]+) s a picture", AMX,
           lambda r: tuple(get(r, AMX, "latency", "bf16", k) for k in ("upsampler_s", "student_s", "picture_256_s"))),
    Figure(r"on 2 AVX2 cores it adds ([\d.]+) s to the student's ([\d.]+) s \(fp32; `results/precision_avx2.json`\): "
           r"([\d.]+) s", "precision_avx2.json",
           lambda r: tuple(get(r, "precision_avx2.json", "latency", "fp32", k)
                           for k in ("upsampler_s", "student_s", "picture_256_s"))),
    Figure(r"`python benchmarks/editing_tools.py`, (\d+) held-out", "editing.json",
           lambda r: (get(r, "editing.json", "n_layouts"),)),
    Figure(r"gradient energy ([\d.]+)x the unedited image's \(a pasted patch: ([\d.]+)\)", "editing.json",
           lambda r: (get(r, "editing.json", "reroll", "1", "seam_ratio"),
                      get(r, "editing.json", "reroll", "pasted_without_harmonisation", "seam_ratio"))),
    Figure(r"moves the rest by ([\d.]+) of 255 [^;]*?, (\d+) with \*keep the rest\*", "editing.json",
           lambda r: tuple(get(r, "editing.json", "keep_the_rest", "share:0.05", k)
                           for k in ("plain_change_away_mean", "keep_rest_change_away_mean"))),
    Figure(r"away from a window stroke, ([\d.]+) = ([\d.]+) of a new seed's", "edit_locality.json",
           lambda r: tuple(get(r, "edit_locality.json", "per_model", STUDENT, "mean", k)
                           for k in ("elsewhere", "elsewhere_vs_new_seed"))),
    Figure(r"median ([\d.]+) vs ([\d.]+) in EfficientNet-Lite0 features, ([\d.]+) vs ([\d.]+) in pixels",
           "memorization.json",
           lambda r: tuple(get(r, "memorization.json", *who, space, "median") for space in ("features", "pixels")
                           for who in (("generated", STUDENT), ("held_out_photos",)))),
)


def shipped_0616c8d(results: dict) -> dict:
    """The upsampler shipped from git 0616c8d until 547f3d6, as ``history/upsampler_candidates.json`` holds it."""
    candidates = results[HIST + "upsampler_candidates.json"]["candidates"]
    shipped = [c for c in candidates if c["what"].endswith("(shipped)")]
    if len(shipped) != 1:
        raise ValueError(f"history/upsampler_candidates.json has {len(shipped)} shipped candidates, not one")
    return shipped[0]


def load_all(results_dir: str | Path = RESULTS) -> dict[str, dict]:
    """``load_results`` with ``results/history/`` too, under ``history/<name>``."""
    results = load_results(results_dir)
    results.update({f"history/{k}": v for k, v in load_results(Path(results_dir) / "history").items()})
    return results


def same_as_printed(printed: str, value: float) -> bool:
    """Whether ``printed`` is ``value`` rounded to as many decimals as it shows, either way a writer rounds
    (Python's formatting, or half up from the number as the JSON writes it: 171.35 -> 171.3 or 171.4)."""
    printed = printed.replace(",", "")
    digits = len(printed.split(".")[1]) if "." in printed else 0
    half_up = Decimal(repr(float(value))).quantize(Decimal(1).scaleb(-digits), rounding=ROUND_HALF_UP)
    return printed in (f"{value:.{digits}f}", str(half_up))


def section(text: str, title: str = "Results") -> str:
    """The text of a ``## title`` section, up to the next ``## `` heading."""
    match = re.search(rf"^## {re.escape(title)}\n(.*?)(?=^## |\Z)", text, flags=re.S | re.M)
    if not match:
        raise ValueError(f"no '## {title}' section")
    return match.group(1)


CAPTION_START = "The paper's Table 1"


def table_problems(text: str, table: str) -> list[str]:
    """How the README's Table 1 block (caption and table) differs from the rendered one: the first figure."""
    want = table.rstrip("\n").split("\n")
    start = text.find(CAPTION_START)
    have = text[start:].split("\n")[: len(want)] if start >= 0 else []
    for w, h in zip(want, have + [""] * len(want)):
        if w != h:
            where = w.split(" | ")[0].lstrip("| ") if w.startswith("|") else "caption"
            tokens = zip(re.findall(r"[^\s|/]+", w) + [""], re.findall(r"[^\s|/]+", h) + [""])
            w_tok, h_tok = next((a, b) for a, b in tokens if a != b)
            return [f"Table 1 ({where}): the README has {h_tok!r} where the results give {w_tok!r}"]
    return []


# The comparisons behind the Results section's verdict: (ours, the GAN), each (file, method key).
EQUAL_BUDGET = ((TEACHER_150K, ("eval.json", "oasis")), (TEACHER_120K, ("eval.json", "oasis")),
                (TEACHER_48K, ("eval.json", "spade")), (TEACHER_48K, ("eval.json", "sean")))
VERDICT = r"At an equal budget ours leads under both input kinds\**, in FD by more than both spreads and in KID"


def verdict_problems(results: dict[str, dict]) -> list[str]:
    """Where the verdict fails: ours not ahead in FD by more than both spreads, or not lower in KID; and OASIS not
    the GAN with the lowest FD (the sentence calls it the best GAN). Which KID leads exceed both spreads the
    sentence says itself, and ``kid_exceptions`` checks that."""
    problems = []
    for (ours_file, ours), (gan_file, gan) in EQUAL_BUDGET:
        for kind, _ in KINDS:
            a, b = results[ours_file]["methods"][ours][kind], results[gan_file]["methods"][gan][kind]
            if not (leads(measure(a, "fd"), measure(b, "fd")) and a["kid"] < b["kid"]):
                problems.append(f"the verdict does not hold for {ours} against {gan} on {kind}: FD "
                                f"{fmt('fd', measure(a, 'fd'))} vs {fmt('fd', measure(b, 'fd'))}, KID {a['kid']} vs {b['kid']}")
    if kid_exceptions(results) != list(KID_EXCEPTIONS):
        problems.append(f"the KID leads within a spread are {kid_exceptions(results)}, the README names "
                        f"{list(KID_EXCEPTIONS)}: update the sentence and KID_EXCEPTIONS")
    for kind, _ in KINDS:
        best_gan = min(GANS, key=lambda g: fd_of(results, "eval.json", g, kind))
        if best_gan != "oasis":
            problems.append(f"the best GAN on {kind} is {best_gan}, not OASIS")
    return problems


KID_EXCEPTIONS = ("ours-teacher-121872 against oasis on random_mask",)  # as the README's verdict names them


def kid_exceptions(results: dict[str, dict]) -> list[str]:
    """The equal-budget comparisons whose KID lead is within a spread: "<teacher> against <gan> on <kind>"."""
    out = []
    for (ours_file, ours), (gan_file, gan) in EQUAL_BUDGET:
        for kind, _ in KINDS:
            a, b = results[ours_file]["methods"][ours][kind], results[gan_file]["methods"][gan][kind]
            if not leads(measure(a, "kid"), measure(b, "kid")):
                out.append(f"{ours} against {gan} on {kind}")
    return out


def spaced(pattern: str) -> str:
    """A pattern whose spaces match any run of whitespace: the README wraps its sentences anywhere."""
    return pattern.replace(" ", r"\s+")


def check_readme(text: str, results: dict[str, dict]) -> list[str]:
    """Every figure of the README's Results section that differs from its JSON, first differing one first;
    a sentence that ``FIGURES`` no longer finds is reported too (update the pattern with the sentence)."""
    part = section(text)
    problems = table_problems(part, render_table(results))
    if re.search(spaced(VERDICT), part):
        problems += verdict_problems(results)
    else:
        problems.append(f"no sentence matches the verdict {VERDICT!r}: update VERDICT and verdict_problems with it")
    for fig in FIGURES:
        match = re.search(spaced(fig.pattern), part)
        if not match:
            problems.append(f"no sentence matches {fig.pattern!r} ({fig.source}): update FIGURES with the README")
            continue
        printed = [g for g in match.groups() if g is not None]
        for p, v in zip(printed, fig.values(results)):
            if not same_as_printed(p, v):
                problems.append(f"{match.group(0)!r}: the README has {p} where {fig.source} gives {v}")
    return problems


def main(argv=None) -> None:
    p = argparse.ArgumentParser(prog="python -m sparsesis.evaluation.report", description=__doc__.split("\n")[0])
    p.add_argument("what", choices=["readme"])
    p.add_argument("--results", default=str(RESULTS), help="the results folder (default: the repository's)")
    p.add_argument("--check", metavar="README", help="check this README's Results section instead of printing")
    a = p.parse_args(argv)
    if not a.check:
        print(readme_table(a.results), end="")
        return
    problems = check_readme(Path(a.check).read_text(), load_all(a.results))
    for line in problems:
        print(f"{a.check}: {line}", file=sys.stderr)
    if problems:
        raise SystemExit(1)
    print(f"{a.check}: every Results figure agrees with {a.results}")


if __name__ == "__main__":
    main()
