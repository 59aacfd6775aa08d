import numpy as np
import pytest

from sparsesis.data.masking import (MaskConfig, ScribbleConfig, class_wise_random, hidden_share_per_class, keep_share,
                               labelled_share, scribbles, shared_random)

U = 9


def layout(size=64):
    """Sky on top, building with a grid of windows, road at the bottom."""
    ids = np.full((size, size), 1, np.int64)
    ids[: size // 4] = 6
    ids[3 * size // 4:] = 5
    for y in range(size // 4 + 2, 3 * size // 4 - 4, 8):
        for x in range(2, size - 4, 8):
            ids[y:y + 4, x:x + 4] = 8
    return ids


def test_shapes_dtypes_and_only_unknown_added():
    full = layout()
    sparse = class_wise_random(full, U, np.random.default_rng(0))
    assert sparse.shape == full.shape and sparse.dtype == full.dtype
    changed = sparse != full
    assert (sparse[changed] == U).all()


def test_share_per_class_within_range_over_many_draws():
    cfg = MaskConfig(hide_range=(0.5, 0.9), drop_prob=0.0)
    full = layout()
    rng = np.random.default_rng(1)
    per_class = {c: [] for c in (1, 5, 6, 8)}
    for _ in range(200):
        sparse, drawn = class_wise_random(full, U, rng, cfg, return_shares=True)
        got = hidden_share_per_class(full, sparse, U)
        for c, s in got.items():
            per_class[c].append(s)
            # the achieved share is the drawn one up to rounding and the min-keep floor
            n = (full == c).sum()
            assert abs(s - drawn[c]) <= max(1.5 / n, cfg.min_keep / n + 1e-9)
    for c, shares in per_class.items():
        shares = np.array(shares)
        assert shares.min() >= 0.5 - 0.02 and shares.max() <= 0.9 + 0.01
        assert abs(shares.mean() - 0.7) < 0.03  # uniform draw: mean in the middle of the range
        assert shares.std() > 0.08  # really drawn per sample, not fixed


def test_masks_are_independent_per_class():
    """Two classes do not share one pattern: the hidden shares are drawn separately, and so are the fields."""
    full = np.full((64, 64), 1, np.int64)
    full[:, 32:] = 6  # two halves with identical geometry up to a shift
    rng = np.random.default_rng(2)
    diffs, corr = [], []
    for _ in range(100):
        s = class_wise_random(full, U, rng, MaskConfig(drop_prob=0.0))
        h = hidden_share_per_class(full, s, U)
        diffs.append(abs(h[1] - h[6]))
        corr.append(np.corrcoef((s[:, :32] == U).ravel(), (s[:, 32:] == U).ravel())[0, 1])
    assert np.mean(diffs) > 0.1
    assert abs(np.mean(corr)) < 0.1


def test_every_present_class_keeps_pixels_unless_dropped():
    full = layout()
    rng = np.random.default_rng(3)
    cfg = MaskConfig(hide_range=(0.99, 1.0), drop_prob=0.0)
    for _ in range(50):
        s = class_wise_random(full, U, rng, cfg)
        for c in (1, 5, 6, 8):
            assert (s == c).sum() >= cfg.min_keep


def test_drop_probability_hides_whole_classes():
    full = layout()
    rng = np.random.default_rng(4)
    cfg = MaskConfig(drop_prob=0.5)
    dropped = sum((class_wise_random(full, U, rng, cfg) == 8).sum() == 0 for _ in range(200))
    assert 70 < dropped < 130


def test_patterns_are_coherent_not_salt_and_pepper():
    full = np.full((64, 64), 1, np.int64)
    s = class_wise_random(full, U, np.random.default_rng(5), MaskConfig(hide_range=(0.5, 0.5), drop_prob=0))
    hidden = (s == U).astype(int)
    # neighbours agree far more often than for independent pixels (0.5 for a 50% share)
    agree = ((hidden[:, 1:] == hidden[:, :-1]).mean() + (hidden[1:] == hidden[:-1]).mean()) / 2
    assert agree > 0.9


def test_seed_reproducible():
    full = layout()
    a = class_wise_random(full, U, np.random.default_rng(7))
    b = class_wise_random(full, U, np.random.default_rng(7))
    c = class_wise_random(full, U, np.random.default_rng(8))
    np.testing.assert_array_equal(a, b)
    assert not np.array_equal(a, c)


def test_shared_mask_uses_one_pattern():
    full = layout()
    s = shared_random(full, U, np.random.default_rng(0), MaskConfig(hide_range=(0.7, 0.7)))
    assert abs((s == U).mean() - 0.7) < 0.01


def test_keep_share_hits_the_share_per_class():
    full = layout()
    for share in (1.0, 0.5, 0.1):
        s = keep_share(full, U, share, np.random.default_rng(0))
        for c, h in hidden_share_per_class(full, s, U).items():
            assert abs((1 - h) - share) < 0.05 or (full == c).sum() * share < 2


def test_scribbles_label_only_true_class_and_are_sparse():
    full = layout()
    rng = np.random.default_rng(0)
    for _ in range(20):
        s = scribbles(full, U, rng)
        lab = s != U
        np.testing.assert_array_equal(s[lab], full[lab])
        assert 0.02 < labelled_share(s, U) < 0.6
    # more strokes label more
    few = np.mean([labelled_share(scribbles(full, U, np.random.default_rng(i), ScribbleConfig(strokes_per_region=(1, 1))), U) for i in range(10)])
    many = np.mean([labelled_share(scribbles(full, U, np.random.default_rng(i), ScribbleConfig(strokes_per_region=(4, 4))), U) for i in range(10)])
    assert many > few


def test_scribbles_scale_with_size():
    small = labelled_share(scribbles(layout(64), U, np.random.default_rng(0)), U)
    big = labelled_share(scribbles(layout(128), U, np.random.default_rng(0)), U)
    assert 0.4 < big / small < 2.5


def test_bad_input():
    with pytest.raises(ValueError, match=r"\(H, W\)"):
        class_wise_random(np.zeros((2, 4, 4), int), U, np.random.default_rng(0))
    with pytest.raises(TypeError):
        class_wise_random(np.zeros((4, 4)), U, np.random.default_rng(0))
    with pytest.raises(ValueError, match="hide_range"):
        MaskConfig(hide_range=(0.9, 0.1))
