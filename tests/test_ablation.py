import json

import pytest

from sparsesis.ablation import main


@pytest.mark.slow
def test_ablation_trains_three_variants_and_writes_the_table(toy_root, tmp_path):
    out = tmp_path / "ablation.json"
    main(["--run-root", str(tmp_path / "abl"), "--data", str(toy_root), "--preset", "tiny", "--image-size", "32",
          "--steps-each", "2", "--batch-size", "2", "--sample-steps", "2", "--threads", "2", "--out", str(out)])
    res = json.loads(out.read_text())
    assert set(res["variants"]) == {"dense", "shared_mask", "classwise"}
    for v in res["variants"].values():
        assert set(v) == {"random_mask", "scribble", "dense"} and v["dense"]["fd"] > 0
    assert "2 steps of batch 2" in res["budget"]
    # the variants really trained with different inputs
    cfgs = {v: json.loads((tmp_path / "abl" / v / "config.json").read_text())["training"]["masking"]
            for v in res["variants"]}
    assert cfgs == {"dense": "none", "shared_mask": "shared", "classwise": "classwise"}
