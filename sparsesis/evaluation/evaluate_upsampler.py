r"""How much detail the upsampler adds at 256x256, measured where whole-image FD cannot see it.

    python -m sparsesis.evaluation.evaluate upsampler --upsampler checkpoints/upsampler4x \
        --generator checkpoints/ours64-student4 --segmenter checkpoints/seg64 --out results/upsampler.json

Patch FD: four 64x64 crops at fixed random positions (one draw for all images, ``patch_seed``) from each
256x256 image, each resized to 224 by the feature network, against the same crops of the held-out photos
at 256. Reported per input set (``real``: the held-out photos area-downsampled to 64; ``generated``: the
generator's images for the class-wise-masked held-out layouts) and method (``bicubic``, ``learned``):
``patch_fd``, whole-image ``fd`` at 256, ``kid``, ``miou`` (segmenter on the 256 image against the full
labels at 256) and ``psnr_back`` (the output area-downsampled to 64 against its input: the upsampler adds
detail, it does not repaint). ``floor``: 100 real training photos against the held-out ones. An upsampler
with a degradation-level input upscales the clean downsampled photos at level 0 and generated images at its
folder's default level (``level`` in each ``learned`` row).
"""
from __future__ import annotations


import cv2
import numpy as np


def patch_positions(size: int, patch: int = 64, per_image: int = 4, seed: int = 0) -> np.ndarray:
    """Fixed top-left corners ``(per_image, 2)``, the same for every image."""
    return np.random.default_rng(seed).integers(0, size - patch + 1, size=(per_image, 2))


def patches(images: np.ndarray, positions: np.ndarray, patch: int = 64) -> np.ndarray:
    """``(N, S, S, 3)`` -> ``(N * len(positions), patch, patch, 3)``."""
    return np.stack([im[y:y + patch, x:x + patch] for im in images for y, x in positions])


def shrink_images(images: np.ndarray, size: int) -> np.ndarray:
    return np.stack([cv2.resize(im, (size, size), interpolation=cv2.INTER_AREA) for im in images])


def psnr_back(images: np.ndarray, inputs: np.ndarray) -> float:
    """How close upscaled ``images`` stay to their ``inputs`` (dB, 2 decimals): the PSNR of the images area-
    downsampled to the inputs' size against them. High: the upscaler added detail and did not repaint."""
    from .metrics import paired_psnr

    return round(paired_psnr(shrink_images(images, inputs.shape[1]), inputs), 2)


def upsampler_inputs(pairs, generator, n: int | None = None, base_size: int = 64, seed: int = 0) -> dict:
    """What the upsampler is measured on, for the first ``n`` of ``pairs`` (centre views at the output size):
    ``photos`` and ``labels`` at the output size, ``layouts`` (class-wise-masked, at the output size),
    ``real_small`` (the photos area-downsampled to ``base_size``) and ``generated_small`` (the generator's images
    for the masked layouts, seed ``seed + i`` for the batch starting at ``i``)."""
    from ..data.inputs import held_out_inputs

    photos, labels = pairs.centre_arrays()  # (N, S, S, 3), (N, S, S)
    n = len(photos) if n is None else min(n, len(photos))
    photos, labels = photos[:n], labels[:n]
    size = photos.shape[1]
    small_ids, _ = held_out_inputs(_resized(pairs, base_size), "random_mask", 1, n)
    large_ids = np.stack([cv2.resize(i.astype(np.int32), (size, size), interpolation=cv2.INTER_NEAREST)
                          for i in small_ids]).astype(np.int64)
    generated = np.concatenate([generator(small_ids[i:i + 20], seed=seed + i) for i in range(0, n, 20)])
    return {"photos": photos, "labels": labels, "layouts": large_ids, "real_small": shrink_images(photos, base_size),
            "generated_small": generated}


def input_levels(upsampler) -> dict:
    """The degradation level each input set is upscaled at: 0 for the clean downsampled photos (what the level
    means), the upsampler's own (its folder's default) for generated images; None for upsamplers without a level
    input."""
    return {"real": 0.0 if upsampler.level is not None else None, "generated": upsampler.level}


def upsampler_report(upsampler, generator, eval_pairs, train_pairs, net, segmenter=None, base_size: int = 64,
                     mask_seed: int = 0, seed: int = 0, limit: int | None = None, repeats: int = 5,
                     progress: bool = True) -> dict:
    from .latency import cpu_description, median_seconds, probe_layout
    from .metrics import fd_from_features, kid
    from ..pipeline import Pipeline
    from ..models.upsampler import bicubic_up

    inputs = upsampler_inputs(eval_pairs, generator, limit, base_size, seed)
    photos, labels = inputs["photos"], inputs["labels"]
    n, size = len(photos), photos.shape[1]
    pos = patch_positions(size)
    real_patch = net(patches(photos, pos))
    real_whole = net(photos)
    pipe = Pipeline(generator, upsampler)
    levels = input_levels(upsampler)

    def score(images: np.ndarray, inputs: np.ndarray) -> dict:
        feats = net(images)
        k_mean, _ = kid(feats, real_whole, subsets=100)
        row = {"patch_fd": round(fd_from_features(net(patches(images, pos)), real_patch), 2),
               "fd": round(fd_from_features(feats, real_whole), 2), "kid": round(k_mean, 5),
               "psnr_back": psnr_back(images, inputs), "n": len(images)}
        if segmenter is not None:
            row["miou"] = segmenter.score(images, labels)["miou"]
        return row

    out = {}
    # real: the held-out photos at 64, upscaled; the layout at 256 is the sparse class-wise mask of the truth.
    # generated: the generator's images for the same masked layouts, what users see
    for name in ("real", "generated"):
        small = inputs[f"{name}_small"]
        learned = upsampler.with_settings(level=levels[name])(small, inputs["layouts"])
        out[name] = {"bicubic": score(bicubic_up(small), small),
                     "learned": {**score(learned, small), "level": levels[name]}}
    train_photos, _ = train_pairs.centre_arrays()
    floor = train_photos[np.random.default_rng(seed).choice(len(train_photos), n, replace=False)]
    out["floor"] = {"patch_fd": round(fd_from_features(net(patches(floor, pos)), real_patch), 2),
                    "fd": round(fd_from_features(net(floor), real_whole), 2), "n": n}
    lay = probe_layout(generator.classset.num_classes, generator.classset.unknown_id, size)

    def median_time(fn) -> float:
        return round(median_seconds(fn, repeats), 4)

    out["latency_s"] = {"student4": median_time(lambda s: pipe(lay, seed=s, upscale=None)),
                        "student4+upsampler": median_time(lambda s: pipe(lay, seed=s, upscale="learned")),
                        "student4+bicubic": median_time(lambda s: pipe(lay, seed=s, upscale="bicubic"))}
    out["cpu"] = cpu_description()
    out["n_real"], out["patches_per_image"], out["patch_positions"] = n, len(pos), pos.tolist()
    out["upsampler"] = {"parameters": sum(p.numel() for p in upsampler.net.parameters()),
                        **{k: upsampler.config.get("record", {}).get(k) for k in ("step", "images_seen", "train_seconds")},
                        "back_projection": upsampler.back_projection,
                        "noise_scale": upsampler.noise_scale if upsampler.net.cfg.noise_input else None,
                        "detail_scale": upsampler.detail_scale}
    return out


def _resized(pairs, size: int):
    """The same split's centre views at ``size`` (area for photos, nearest for labels), as a PairSet."""
    from ..data.sets import PairSet

    photos, labels = pairs.centre_arrays()
    return PairSet(list(shrink_images(photos, size)),
                   [cv2.resize(l.astype(np.uint8), (size, size), interpolation=cv2.INTER_NEAREST) for l in labels],
                   pairs.stems, pairs.classset, size)
