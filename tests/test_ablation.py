import json

import numpy as np
import pytest

from sparsesis.training.ablation import main


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
    # the picture grid's arrays: the same inputs for every variant, one image per input
    from sparsesis.training.ablation import load_samples, samples_path

    samples = load_samples(samples_path(out))
    assert set(samples) == {"random_mask", "scribble", "dense"}
    for kind, arrays in samples.items():
        assert set(arrays) == {"layouts", "dense", "shared_mask", "classwise"}
        assert arrays["classwise"].shape == arrays["layouts"].shape + (3,) and arrays["classwise"].dtype == np.uint8
    assert (samples["random_mask"]["layouts"] == 4).any() and not (samples["dense"]["layouts"] == 4).any()
