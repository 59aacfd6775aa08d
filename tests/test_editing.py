"""Interactive editing, the paper's last demo: with a fixed seed, adding a stroke changes the picture
where the stroke is and leaves the rest nearly as it was. Checked on every shipped diffusion model."""
import json

import numpy as np
import pytest

from conftest import REPO
from sparsesis import Synthesizer

SHIPPED = sorted(p.parent for p in (REPO / "checkpoints").glob("*/config.json")
                 if json.loads(p.read_text()).get("kind") == "sparsesis-diffusion")


def test_something_ships():
    assert any(p.name == "ours64" for p in SHIPPED)


@pytest.mark.parametrize("folder", SHIPPED, ids=[p.name for p in SHIPPED])
def test_adding_a_stroke_changes_its_region_and_keeps_the_rest(folder):
    synth = Synthesizer.from_pretrained(folder, precision="bf16")
    steps = min(synth.default_steps, 8)
    u = synth.classset.unknown_id
    sky, building, road, window = (synth.classset.names.index(n) for n in ("sky", "building", "road", "window"))
    lay = np.full((64, 64), u)
    lay[:12, 4:60] = sky
    lay[18:44, 10:54:6] = building  # a few vertical strokes
    lay[54:, 4:60] = road
    edited = lay.copy()
    edited[24:34, 24:34] = window  # the new stroke
    near = np.zeros((64, 64), bool)
    near[20:38, 20:38] = True  # the stroke and a 4-pixel margin
    for seed in range(3):
        before = synth(lay, steps=steps, seed=seed).astype(float)
        after = synth(edited, steps=steps, seed=seed).astype(float)
        change = np.abs(after - before).mean(-1)
        assert change[near].mean() > 3 * change[~near].mean(), (seed, change[near].mean(), change[~near].mean())
        assert change[~near].mean() < 6  # out of 255: the rest of the picture stays put
