import numpy as np
import pytest

from sparsesis.evaluation.metrics import cached_features, fd_from_features, frechet_distance, gaussian_stats, kid, paired_psnr
from sparsesis.evaluation.metrics.features import FeatureNetworkError, InceptionTorchScript


def test_fd_identical_sets_is_zero():
    f = np.random.default_rng(0).normal(size=(500, 16))
    assert abs(fd_from_features(f, f)) < 1e-8


def test_fd_closed_form_gaussians():
    mu1, mu2 = np.zeros(3), np.array([1.0, 2.0, 0.0])
    c1 = np.diag([1.0, 4.0, 9.0])
    c2 = np.diag([4.0, 1.0, 9.0])
    # diagonal: |mu|^2 + sum (sqrt(a) - sqrt(b))^2 = 5 + (1 + 1 + 0)
    assert frechet_distance(mu1, c1, mu2, c2) == pytest.approx(7.0, abs=1e-9)


def test_fd_non_diagonal_matches_scipy_style_formula():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(4, 4))
    b = rng.normal(size=(4, 4))
    c1, c2 = a @ a.T + np.eye(4), b @ b.T + np.eye(4)
    w, v = np.linalg.eig(c1 @ c2)
    expected = np.trace(c1) + np.trace(c2) - 2 * np.sqrt(w.astype(complex)).real.sum()
    assert frechet_distance(np.zeros(4), c1, np.zeros(4), c2) == pytest.approx(expected, rel=1e-6)


def test_fd_from_samples_approaches_truth():
    rng = np.random.default_rng(2)
    a = rng.normal(0, 1, size=(20000, 2))
    b = rng.normal([3, 0], [2, 1], size=(20000, 2))
    assert fd_from_features(a, b) == pytest.approx(9 + 1, rel=0.03)


def test_kid_zero_for_same_distribution_and_positive_otherwise():
    rng = np.random.default_rng(3)
    a, b = rng.normal(size=(400, 8)), rng.normal(size=(400, 8))
    m, s = kid(a, b, subsets=20, subset_size=200)
    assert abs(m) < 3 * s + 1e-3
    far, _ = kid(a, b + 1.0, subsets=20, subset_size=200)
    assert far > 10 * max(abs(m), 1e-4)


def test_stats_need_two_samples():
    with pytest.raises(ValueError):
        gaussian_stats(np.zeros((1, 3)))


def test_inception_missing_weights_says_what_to_do(monkeypatch):
    monkeypatch.delenv("SPARSESIS_INCEPTION", raising=False)
    with pytest.raises(FeatureNetworkError, match="SPARSESIS_INCEPTION.*effnet-lite0"):
        InceptionTorchScript()


def test_effnet_features_offline_and_deterministic():
    from sparsesis.evaluation.metrics import EffNetLite0

    net = EffNetLite0()
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 255, size=(3, 64, 64, 3), dtype=np.uint8)
    f1, f2 = net(imgs), net(imgs)
    assert f1.shape == (3, 1280)
    np.testing.assert_allclose(f1, f2)
    # different images give different features
    assert np.abs(f1[0] - f1[1]).mean() > 1e-3


def test_paired_psnr_known_values_and_bad_shapes():
    a = np.zeros((2, 4, 4, 3), np.uint8)
    assert paired_psnr(a, a) == float("inf")
    b = a.copy()
    b[0] = 255  # half the pairs at maximal error: MSE = 255^2 / 2 -> 10 log10(2) dB
    assert paired_psnr(b, a) == pytest.approx(10 * np.log10(2.0))
    c = a + 1  # MSE 1 everywhere -> 20 log10(255)
    assert paired_psnr(c, a) == pytest.approx(20 * np.log10(255.0))
    with pytest.raises(ValueError, match="same shape"):
        paired_psnr(a, a[:1])


def test_cached_features_written_once_atomically_then_read_back(tmp_path):
    calls = []

    class CountingNet:
        name = "counting"

        def __call__(self, images):
            calls.append(len(images))
            return images.reshape(len(images), -1)[:, :5].astype(np.float32)

    images = np.random.default_rng(0).integers(0, 256, (3, 4, 4, 3), dtype=np.uint8)
    first = cached_features(CountingNet(), images, tmp_path)
    second = cached_features(CountingNet(), images, tmp_path)
    np.testing.assert_array_equal(first, second)
    assert calls == [3]  # the second call read the cache
    assert [p.suffix for p in tmp_path.iterdir()] == [".npy"]  # one cache file, no temp file left


def test_nearest_finds_an_exact_or_mirrored_copy_and_its_index():
    from sparsesis.evaluation.metrics import nearest, pixel_rows

    rng = np.random.default_rng(0)
    train = rng.integers(0, 256, (5, 8, 8, 3), dtype=np.uint8)
    queries = np.stack([train[3], train[1][:, ::-1], rng.integers(0, 256, (8, 8, 3), dtype=np.uint8)])
    d, i = nearest(pixel_rows(queries), pixel_rows(train, with_flips=True))
    assert d[0] == pytest.approx(0, abs=1e-6) and i[0] == 3
    assert d[1] == pytest.approx(0, abs=1e-6) and i[1] == 5 + 1  # the mirrored copies come after the photos
    assert d[2] > 1.0
    brute = np.sqrt(((pixel_rows(queries)[:, None] - pixel_rows(train, True)[None]) ** 2).sum(-1)).min(1)
    np.testing.assert_allclose(d, brute, atol=1e-6)
    with pytest.raises(ValueError, match=r"\(N, D\)"):
        nearest(np.zeros((2, 3)), np.zeros((2, 4)))
