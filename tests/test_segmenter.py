import numpy as np
import pytest
import torch

from sparsesis.data.classes import ClassSet
from sparsesis.data.sets import photo_to_tensor
from sparsesis.models.segmenter import SegmenterConfig, SegNet, Segmenter, iou_per_class, mean_iou
from sparsesis.training.train_segmenter import train_segmenter


def test_iou_closed_form():
    true = np.array([[0, 0, 1, 1]])
    pred = np.array([[0, 1, 1, 1]])
    per = iou_per_class(pred, true, 3)
    assert per[0] == pytest.approx(1 / 2) and per[1] == pytest.approx(2 / 3) and np.isnan(per[2])
    assert mean_iou(pred, true, 3) == pytest.approx((1 / 2 + 2 / 3) / 2)
    assert mean_iou(true, true, 3) == 1.0


def test_iou_sums_over_the_set_not_per_image():
    true = np.array([[[0, 0]], [[1, 1]]])
    pred = np.array([[[0, 1]], [[1, 1]]])
    per = iou_per_class(pred, true, 2)
    assert per[0] == pytest.approx(1 / 2) and per[1] == pytest.approx(2 / 3)


def test_segnet_shapes():
    net = SegNet(SegmenterConfig(num_classes=4, base_channels=8, levels=2))
    assert net(torch.zeros(2, 3, 32, 32)).shape == (2, 4, 32, 32)


def test_segmenter_predicts_at_its_training_size():
    torch.manual_seed(0)
    net = SegNet(SegmenterConfig(num_classes=4, base_channels=8, levels=2))
    classes = ClassSet.from_dict({"name": "t", "classes": [{"id": i, "name": f"c{i}", "color": [i, i, i]} for i in range(4)]})
    seg = Segmenter(net, classes, {"record": {"size": 32}})
    images = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
    with torch.no_grad():
        direct = net(photo_to_tensor(images)).argmax(1).numpy()
    np.testing.assert_array_equal(seg.predict(images), direct)  # at its own size: the plain network
    assert seg.predict(images[:, ::2, ::2]).shape == (3, 16, 16)
    assert seg.predict(np.repeat(np.repeat(images, 2, 1), 2, 2)).shape == (3, 64, 64)
    with pytest.raises(ValueError, match="shape"):
        seg.predict(images[..., 0])


@pytest.mark.slow
def test_segmenter_learns_the_toy_set(toy_root, tmp_path):
    rec = train_segmenter(tmp_path / "seg", toy_root, size=32, steps=60, batch_size=8, lr=3e-3, progress=False)
    seg = Segmenter.from_pretrained(tmp_path / "seg" / "export")
    from sparsesis.data.sets import load_split

    photos, ids = load_split("train", 32, toy_root, progress=False).centre_arrays()
    score = seg.score(photos, ids)
    assert rec["step"] == 60 and score["miou"] > 0.5  # toy classes have distinct colours: easy to segment
    # images at half the training size (a 16 px model's output) are resized for the segmenter, scored at 16 px
    import cv2

    small = np.stack([cv2.resize(p, (16, 16), interpolation=cv2.INTER_AREA) for p in photos])
    small_ids = ids[:, 1::2, 1::2]
    small_score = seg.score(small, small_ids)
    assert seg.predict(small).shape == (len(small), 16, 16) and small_score["miou"] > 0.5
    assert set(score["per_class"]) == {"ground", "wall", "sky", "tree"}
    # the command line scores a model folder and writes the JSON; a missing folder is a one-line error
    import json

    from sparsesis.training.train_segmenter import main

    out = tmp_path / "seg.json"
    main(["--evaluate", "--model", str(tmp_path / "seg" / "export"), "--data", str(toy_root), "--size", "32",
          "--out", str(out)])
    res = json.loads(out.read_text())
    assert 0 <= res["real_held_out"]["miou"] <= 1 and res["record"]["step"] == 60
    with pytest.raises(SystemExit, match="not found"):
        main(["--evaluate", "--model", str(tmp_path / "nope"), "--data", str(toy_root)])
