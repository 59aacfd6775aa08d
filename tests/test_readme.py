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
    image = scope["image"]
    assert image.shape == (64, 64, 3) and image.dtype == np.uint8
    assert len(blocks[0].strip().splitlines()) <= 6
