"""The README's Results section says what results/*.json hold: Table 1 is the rendered one, byte for byte, every
other figure matches its file as rounded there, and a figure changed on either side fails the check."""
import copy
import re

import pytest

from conftest import REPO
from sparsesis.evaluation import report

README = (REPO / "README.md").read_text()
RESULTS = report.load_all(REPO / "results")


def results_section(text: str = README) -> str:
    return report.section(text)


def test_the_readme_table_is_the_rendered_one():
    table, part = report.readme_table(), results_section()
    start = part.find(report.CAPTION_START)
    assert start >= 0, "the Results section has lost Table 1's caption"
    assert part[start:start + len(table)] == table, (
        "README.md's Table 1 differs from `python -m sparsesis.evaluation.report readme`: " + "; ".join(
            report.table_problems(part, table)))


def test_every_figure_of_the_results_section_agrees_with_its_json():
    assert report.check_readme(README, RESULTS) == []


@pytest.mark.parametrize("figure", report.FIGURES, ids=lambda f: f.pattern[:40])
def test_each_sentence_figure(figure):
    match = re.search(report.spaced(figure.pattern), results_section())
    assert match, f"no sentence of the Results section matches {figure.pattern!r}"
    printed = [g for g in match.groups() if g is not None]
    values = figure.values(RESULTS)
    assert len(printed) == len(values)
    for p, v in zip(printed, values):
        assert report.same_as_printed(p, v), f"{match.group(0)!r}: {p} printed, {figure.source} gives {v}"


@pytest.mark.parametrize("sentence", ["2-step student", "upsampler scores", "reduced to 64 px", "with AMX",
                                      "on 2 AVX2 cores it adds"])
def test_the_figures_the_issue_names_are_checked(sentence):
    assert any(sentence in f.pattern for f in report.FIGURES), f"no FIGURES entry checks the {sentence!r} sentence"


# Numbers in the Results section that are no measurement of a current file, each with why it stays unchecked.
NOT_CHECKED = (
    (r"\d+x\d+|\b\d+ px|bf16|fp32|EfficientNet-Lite0|\d+-step|notebook \d+|of 255|on 2 AVX2|\(00 a tour to 09\)",
     "notation, not a figure"),
    (r"\"X of [\d,]+\"|the GANs' [\d,]+ images", "the runs' length, checked in 'Each GAN trained to'"),
    (r"on 100 \*training\* layouts|, the 100\)", "protocol sizes: the sampler sweep's 100 training layouts, the "
     "100-photo set a file still measured on"),
)


def test_no_number_in_the_results_section_goes_unchecked():
    part = results_section()
    covered = [False] * len(part)

    def cover(a, b):
        covered[a:b] = [True] * (b - a)

    start = part.index(report.CAPTION_START)
    cover(start, start + len(report.readme_table()))
    for figure in report.FIGURES:
        match = re.search(report.spaced(figure.pattern), part)
        for i in range(1, len(match.groups()) + 1):
            if match.group(i) is not None:
                cover(match.start(i), match.end(i))
    for pattern, _why in NOT_CHECKED:
        for match in re.finditer(report.spaced(pattern), part):
            cover(match.start(), match.end())
    for match in re.finditer(r"`[^`]*`|\]\([^)]*\)", part):  # file names, commands, commits, links
        cover(match.start(), match.end())
    loose = [(m.group(0), part[max(0, m.start() - 40):m.end() + 10].replace("\n", " "))
             for m in re.finditer(r"\d[\d,]*(?:\.\d+)?", part) if not covered[m.start()]]
    assert not loose, f"figures no test checks (add them to report.FIGURES or NOT_CHECKED): {loose}"


@pytest.mark.parametrize("old, new, named", [
    ("**86.9 ± 0.6**", "**87.0 ± 0.6**", "'**87.0'"),                            # a table figure
    ("| OASIS | 4.2 M | 144,000", "| OASIS | 4.2 M | 145,000", "'145,000'"),     # a table budget
    ("(19% labelled)", "(20% labelled)", "'(20%'"),                            # the table's caption
    ("2-step student: 100.0", "2-step student: 99.0", "99.0"),                 # the distillation figure
    ("bicubic's 209.8 (0.52x", "bicubic's 209.8 (0.53x", "0.53"),              # a ratio
    ("89.4 vs 177.0", "89.3 vs 177.0", "89.3"),                                # the upsampler on real photos
    ("adds 0.027 s", "adds 0.030 s", "0.030"),                                 # a latency
    ("0.10 s a picture", "0.11 s a picture", "0.11"),                          # the 256x256 picture
])
def test_a_changed_readme_figure_fails_the_check(old, new, named):
    assert old in README, f"the test's sentence {old!r} is not in the README any more"
    problems = report.check_readme(README.replace(old, new, 1), RESULTS)
    assert problems and named in problems[0], problems


def test_a_changed_json_figure_fails_the_check():
    results = copy.deepcopy(RESULTS)
    results["eval.json"]["methods"]["oasis"]["random_mask"]["fd"] = 97.0  # OASIS now ahead of the teacher
    problems = report.check_readme(README, results)
    assert "Table 1 (OASIS)" in problems[0] and "'97.0'" in problems[0]
    assert any("verdict does not hold" in p for p in problems)
    results = copy.deepcopy(RESULTS)
    results["precision_avx512_amx.json"]["latency"]["bf16"]["student_s"] = 0.081
    assert any("0.074" in p and "0.081" in p for p in report.check_readme(README, results))


def test_a_rewritten_sentence_is_reported_not_skipped():
    text = README.replace("2-step student: 100.0", "2-step student reaches 100.0", 1)
    assert any("no sentence matches" in p and "2-step" in p for p in report.check_readme(text, RESULTS))


def test_the_cli_check_exits_non_zero_naming_the_figure(tmp_path, capsys):
    changed = tmp_path / "README.md"
    changed.write_text(README.replace("adds 0.027 s", "adds 0.030 s", 1))
    with pytest.raises(SystemExit) as stop:
        report.main(["readme", "--check", str(changed), "--results", str(REPO / "results")])
    assert stop.value.code == 1 and "0.030" in capsys.readouterr().err.splitlines()[0]
    report.main(["readme", "--check", str(REPO / "README.md"), "--results", str(REPO / "results")])
    report.main(["readme", "--results", str(REPO / "results")])
    assert capsys.readouterr().out.endswith(report.readme_table())


def test_bold_needs_a_lead_beyond_both_spreads():
    m = report.Measure
    assert report.leads(m(0.040, 0.002, "subsets"), m(0.050, 0.003, "subsets"))
    assert not report.leads(m(0.040, 0.002, "subsets"), m(0.043, 0.004, "subsets"))  # within the runner-up's
    assert not report.leads(m(80.0, None, None), m(120.0, None, None))  # no spread, no verdict


def test_per_mask_seed_figures_give_the_spread_where_a_file_keeps_them():
    entry = {"fd": 100.0, "fd_per_seed": [99.0, 101.0, 103.0], "kid": 0.05, "kid_std": 0.002}
    assert report.measure(entry, "fd") == (100.0, 2.0, "seeds")  # sample standard deviation over the seeds
    assert report.measure(entry, "kid") == (0.05, 0.002, "subsets")
    assert report.measure({"fd": 100.0}, "fd") == (100.0, None, None)


def test_the_table_says_which_spread_it_shows():
    results = copy.deepcopy(RESULTS)
    for kind in ("random_mask", "scribble"):  # OASIS as a file without per-seed figures would hold it
        results["eval.json"]["methods"]["oasis"][kind].pop("fd_per_seed")
    table = report.render_table(results)
    words = " ".join(table.split())
    assert "± the standard deviation of its 3 mask seeds' figures" in words
    assert "FD (OASIS)" in words and "without" in words  # the row without a spread is named
    oasis = next(line for line in table.splitlines() if line.startswith("| OASIS"))
    assert "119.2 /" in oasis and "119.2 ±" not in oasis and "88.5 ± 0.6" in table


@pytest.mark.parametrize("printed, value, ok", [
    ("171.4", 171.35, True), ("171.3", 171.35, True), ("171.5", 171.35, False),
    ("0.52", 108.57 / 209.76, True), ("0.10", 0.1016, True), ("0.11", 0.1016, False), ("150,000", 150000, True),
])
def test_a_figure_matches_its_value_as_rounded(printed, value, ok):
    assert report.same_as_printed(printed, value) is ok
