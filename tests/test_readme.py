"""The README's Python example runs as written, on the shipped checkpoint."""
import re

import numpy as np

from conftest import REPO


def test_readme_python_example_runs(monkeypatch):
    text = (REPO / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", text, flags=re.S)
    assert blocks, "README has no python example"
    monkeypatch.chdir(REPO)
    scope = {}
    exec(compile(blocks[0], "README.md", "exec"), scope)
    photo, again, region = scope["photo"], scope["again"], scope["region"]
    assert photo.shape == (256, 256, 3) and photo.dtype == np.uint8
    grown = np.zeros_like(region)
    grown[70:210, 20:130] = True  # the region, its cells at 64 px and the upsampler's footprint
    assert np.array_equal(again[~grown], photo[~grown]) and not np.array_equal(again[region], photo[region])
    assert len(blocks[0].strip().splitlines()) <= 8


def test_the_readme_stays_a_front_page():
    text = (REPO / "README.md").read_text()
    assert len(text.splitlines()) <= 150, "README.md is a front page: details go to results/README.md"
    head = text.split("# sparsesis", 1)[1]
    assert head.index("```bash") < head.index("## "), "the two commands a newcomer needs come first"
