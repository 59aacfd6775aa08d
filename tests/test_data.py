import time

import cv2
import numpy as np
import pytest

from sparsesis.data.classes import LABELMEFACADE
from sparsesis.data.sets import (DataError, crop_square, load_split, read_label_ids, read_label_rgb, resolve_data_root,
                            split_stems)


def test_missing_folder_gives_download_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSESIS_DATA", raising=False)
    with pytest.raises(DataError, match=r"(?s)SPARSESIS_DATA.*sparsesis\.data\.download"):
        resolve_data_root(None)
    with pytest.raises(DataError, match="does not exist"):
        resolve_data_root(tmp_path / "nowhere")
    (tmp_path / "half").mkdir()
    with pytest.raises(DataError, match="images/"):
        resolve_data_root(tmp_path / "half")


def test_toy_dataset_loads_with_its_own_class_file(toy_root):
    ps = load_split("train", 32, toy_root, progress=False)
    assert len(ps) == 12 and ps.classset.num_classes == 4 and ps.classset.unknown_id == 4
    photo, ids = ps.centre(0)
    assert photo.shape == (32, 32, 3) and photo.dtype == np.uint8
    assert ids.shape == (32, 32) and set(np.unique(ids)) <= {0, 1, 2, 3}
    assert len(load_split("eval", 32, toy_root, progress=False)) == 4


def test_cache_makes_second_load_fast_and_equal(toy_root):
    a = load_split("train", 32, toy_root, progress=False)
    t = time.perf_counter()
    b = load_split("train", 32, toy_root, progress=False)
    assert time.perf_counter() - t < 0.5
    for x, y in zip(a.labels, b.labels):
        np.testing.assert_array_equal(x, y)


def test_bad_colour_in_label_map_names_file(toy_root):
    path = toy_root / "labels" / "toy_000.png"
    img = cv2.imread(str(path))
    img[0, 0] = (7, 7, 7)
    cv2.imwrite(str(path), img)
    with pytest.raises(DataError, match=r"toy_000\.png.*RGB\(7, 7, 7\).*labels\.void"):  # the CLIs' one line
        load_split("train", 32, toy_root, progress=False, use_cache=False)


def test_augmented_view_flips_and_crops(toy_root):
    ps = load_split("train", 32, toy_root, progress=False)
    rng = np.random.default_rng(0)
    views = [ps.augmented(0, rng) for _ in range(20)]
    assert all(p.shape == (32, 32, 3) and l.shape == (32, 32) for p, l in views)
    lab_full = ps.labels[0]
    # every view is a crop of the image or of its mirror
    for p, l in views:
        ok = any(np.array_equal(l, crop_square(src, 32, off / 16)) for src in (lab_full, lab_full[:, ::-1])
                 for off in range(17))
        assert ok
    assert len({l.tobytes() for _, l in views}) > 1


def test_crop_square_centre():
    a = np.arange(6 * 10).reshape(6, 10)
    np.testing.assert_array_equal(crop_square(a, 6), a[:, 2:8])


# ---- the real data set -------------------------------------------------------------------------
@pytest.mark.data
def test_labelmefacade_split_sizes(lmf_root):
    train, ev = split_stems(lmf_root, "train"), split_stems(lmf_root, "eval")
    assert len(train) == 845 and len(ev) == 98 and not set(train) & set(ev)  # 100 less the two near copies


@pytest.mark.data
def test_every_labelmefacade_label_map_round_trips(lmf_root):
    stems = split_stems(lmf_root, "train") + split_stems(lmf_root, "eval")
    for stem in stems:
        path = lmf_root / "labels" / f"{stem}.png"
        rgb = read_label_rgb(path)
        ids = read_label_ids(path, LABELMEFACADE)
        np.testing.assert_array_equal(LABELMEFACADE.ids_to_colors(ids), rgb)


@pytest.mark.data
def test_labelmefacade_loads_at_64(lmf_root):
    ps = load_split("eval", 64, lmf_root, progress=False)
    photos, ids = ps.centre_arrays()
    assert photos.shape == (98, 64, 64, 3) and ids.shape == (98, 64, 64)  # 100 less the two near copies
    assert ids.max() < 9  # full label maps have no UNKNOWN


# ---- data sets as published: index label maps, void ids, foreign paths in the lists -------------------------
@pytest.mark.parametrize("ext", [".jpg", ".png"])
def test_a_data_set_as_segnet_publishes_it_reads_as_is(tmp_path, ext):
    from conftest import make_segnet_dataset

    root = make_segnet_dataset(tmp_path / "camvid", ext)
    train = load_split("train", 32, root, progress=False)
    assert train.classset.name == "camvid" and train.classset.num_classes == 11
    assert len(train) == 8  # train + val, as the class file joins them
    assert train.stems[:2] == ["0001TP_000000", "0001TP_000001"]
    test = load_split("eval", 32, root, progress=False)
    assert len(test) == 3 and test.stems[0] == "Seq05VD_f00000"
    for lab in train.labels:
        assert lab.max() == train.classset.unknown_id  # void (11) is UNKNOWN, never a class
        assert set(np.unique(lab)) <= {0, 1, 3, 8, 11}
        assert (lab[:, 0] == train.classset.unknown_id).all()  # the unlabelled left edge


def test_an_id_outside_the_classes_names_the_file_and_the_fix(segnet_root):
    path = segnet_root / "trainannot" / "0001TP_000001.png"
    lab = cv2.imread(str(path), cv2.IMREAD_UNCHANGED)
    lab[0, 0] = 14
    cv2.imwrite(str(path), lab)
    with pytest.raises(DataError, match=r"0001TP_000001\.png holds id 14.*labels\.void"):
        load_split("train", 32, segnet_root, progress=False, use_cache=False)


def test_a_colour_map_where_index_maps_are_expected_is_refused(segnet_root):
    path = segnet_root / "valannot" / "0006R0_f00000.png"
    cv2.imwrite(str(path), np.dstack([np.zeros((36, 48), np.uint8), np.full((36, 48), 3, np.uint8),
                                      np.zeros((36, 48), np.uint8)]))
    with pytest.raises(DataError, match=r"colour image.*'index'"):
        load_split("train", 32, segnet_root, progress=False, use_cache=False)


def test_a_missing_photo_names_the_list_line(segnet_root):
    (segnet_root / "train" / "0001TP_000002.jpg").unlink()
    with pytest.raises(DataError, match=r"train\.txt:3: no photo for '/SegNet/CamVid/train/0001TP_000002\.png'"):
        load_split("train", 32, segnet_root, progress=False)


def test_void_colours_in_a_colour_coded_set_read_as_unknown(toy_root):
    import json

    meta = json.loads((toy_root / "classes.json").read_text())
    meta["labels"] = {"format": "color", "void": [[10, 10, 10]]}
    (toy_root / "classes.json").write_text(json.dumps(meta))
    path = toy_root / "labels" / "toy_000.png"
    img = cv2.imread(str(path))
    img[:5, :5] = 10
    cv2.imwrite(str(path), img)
    ps = load_split("train", 32, toy_root, progress=False, use_cache=False)
    unknown = ps.classset.unknown_id
    assert (ps.labels[0] == unknown).sum() > 0 and all((l != unknown).all() for l in ps.labels[1:])


def test_void_pixels_are_left_out_of_miou():
    from sparsesis.models.segmenter import iou_per_class

    true = np.array([[0, 0, 1, 2]])  # 2 = UNKNOWN for 2 classes
    pred = np.array([[0, 0, 1, 0]])
    assert np.allclose(iou_per_class(pred, true, 2), [1.0, 1.0])


def test_training_and_sampling_run_on_a_segnet_layout(segnet_root, tmp_path):
    from sparsesis.synthesizer import Synthesizer
    from sparsesis.training.train import TrainConfig, train

    train(TrainConfig(run=str(tmp_path / "run"), data=str(segnet_root), preset="tiny", image_size=32, batch_size=4,
                      steps=2, sample_every=10 ** 9, threads=1))
    synth = Synthesizer.from_pretrained(tmp_path / "run" / "export")
    assert synth.classset.name == "camvid"
    layout = load_split("eval", 32, segnet_root, progress=False).centre(0)[1]
    img = synth(layout, steps=2, seed=0)
    assert img.shape == (32, 32, 3) and img.dtype == np.uint8


def test_the_held_out_photos_that_nearly_copy_a_training_photo_are_the_ones_left_out(lmf_root):
    from sparsesis.data.classes import builtin_dict
    from sparsesis.data.sets import crop_square, excluded, find_photo, near_copies, read_photo, resize_short_side

    listed = builtin_dict("labelmefacade")["exclude"]["eval"]
    assert excluded(lmf_root, "eval") == set(listed)
    train = load_split("train", 64, lmf_root, progress=False).centre_arrays()[0]
    kept = load_split("eval", 64, lmf_root, progress=False)
    assert not set(listed) & set(kept.stems) and near_copies(kept.centre_arrays()[0], train) == []
    left_out = []
    for stem in listed:  # the rule finds each of them
        photo = read_photo(find_photo(lmf_root, stem))
        left_out.append(crop_square(resize_short_side(photo, np.zeros(photo.shape[:2], np.uint8), 64)[0], 64))
    assert [i for i, _ in near_copies(np.stack(left_out), train)] == [0, 1]
