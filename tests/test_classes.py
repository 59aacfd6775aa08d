
import numpy as np
import pytest
import torch

from sparsesis.data.classes import LABELMEFACADE, ClassSet, PaletteError, builtin, one_hot


def test_labelmefacade_class_set():
    cs = LABELMEFACADE
    assert cs.num_classes == 9 and cs.unknown_id == 9 and cs.num_channels == 10
    assert cs.names[8] == "window" and cs.colors[8] == (0, 0, 128)
    assert cs.palette().shape == (10, 3)


def test_colour_round_trip_every_id():
    ids = np.arange(10).repeat(7).reshape(10, 7)
    rgb = LABELMEFACADE.ids_to_colors(ids)
    assert rgb.dtype == np.uint8 and rgb.shape == (10, 7, 3)
    np.testing.assert_array_equal(LABELMEFACADE.colors_to_ids(rgb), ids)


def test_off_palette_colour_names_source_and_colour():
    rgb = LABELMEFACADE.ids_to_colors(np.zeros((4, 4), int))
    rgb[2, 3] = (1, 2, 3)
    with pytest.raises(PaletteError, match=r"foo\.png.*RGB\(1, 2, 3\)"):
        LABELMEFACADE.colors_to_ids(rgb, source="foo.png")


def test_unknown_colour_rejected_in_label_maps():
    rgb = LABELMEFACADE.ids_to_colors(np.full((2, 2), 9))
    with pytest.raises(PaletteError):
        LABELMEFACADE.colors_to_ids(rgb, allow_unknown=False)


def test_nearest_snaps_blended_edges():
    rgb = np.array([[[126, 2, 1], [250, 252, 255]]], np.uint8)  # near building, near unknown
    np.testing.assert_array_equal(LABELMEFACADE.colors_to_ids(rgb, nearest=True), [[1, 9]])


def test_json_round_trip(tmp_path):
    LABELMEFACADE.save_json(tmp_path / "c.json")
    assert ClassSet.from_json(tmp_path / "c.json") == LABELMEFACADE
    assert builtin("labelmefacade") == LABELMEFACADE


def test_bad_class_files(tmp_path):
    with pytest.raises(ValueError, match="distinct"):
        ClassSet("x", ("a", "b"), ((0, 0, 0), (0, 0, 0)))
    with pytest.raises(ValueError, match="without gaps"):
        ClassSet.from_dict({"classes": [{"id": 0, "name": "a", "color": [1, 1, 1]},
                                        {"id": 2, "name": "b", "color": [2, 2, 2]}]})
    (tmp_path / "bad.json").write_text("{not json")
    with pytest.raises(ValueError, match="not valid JSON"):
        ClassSet.from_json(tmp_path / "bad.json")
    with pytest.raises(ValueError, match="no built-in class set"):
        builtin("nope")


def test_one_hot():
    ids = torch.tensor([[[0, 9], [3, 9]]])
    oh = one_hot(ids, 10)
    assert oh.shape == (1, 10, 2, 2)
    assert oh.sum(1).eq(1).all() and oh[0, 9, 0, 1] == 1 and oh[0, 3, 1, 0] == 1


def test_snapping_accepts_blended_edges_and_refuses_photos():
    ids = np.full((40, 40), 1)
    ids[:, 20:] = 6
    rgb = LABELMEFACADE.ids_to_colors(ids)
    blended = rgb.copy()
    blended[:, 20] = (rgb[:, 19].astype(int) + rgb[:, 20]) // 2  # an anti-aliased stroke edge: 2.5% of pixels
    assert (LABELMEFACADE.colors_to_ids(blended, nearest=True)[:, [0, 39]] == ids[:, [0, 39]]).all()
    noise = np.random.default_rng(0).integers(0, 256, (40, 40, 3), dtype=np.uint8)
    with pytest.raises(PaletteError, match=r"\d+% of its pixels .* not a layout"):
        LABELMEFACADE.colors_to_ids(noise, nearest=True)
    # transparent pixels (valid=False) do not count
    assert LABELMEFACADE.colors_to_ids(noise, nearest=True, valid=np.zeros((40, 40), bool)).shape == (40, 40)
