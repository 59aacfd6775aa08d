import time

import cv2
import numpy as np
import pytest

from sparsesis.classes import LABELMEFACADE, PaletteError
from sparsesis.data import (DataError, crop_square, load_split, read_label_ids, read_label_rgb, resolve_data_root,
                            split_stems)


def test_missing_folder_gives_download_hint(tmp_path, monkeypatch):
    monkeypatch.delenv("SPARSESIS_DATA", raising=False)
    with pytest.raises(DataError, match=r"(?s)SPARSESIS_DATA.*sparsesis\.download"):
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
    with pytest.raises(PaletteError, match=r"toy_000\.png.*RGB\(7, 7, 7\)"):
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
    assert len(train) == 845 and len(ev) == 100 and not set(train) & set(ev)


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
    assert photos.shape == (100, 64, 64, 3) and ids.shape == (100, 64, 64)
    assert ids.max() < 9  # full label maps have no UNKNOWN
