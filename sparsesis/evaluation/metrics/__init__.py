"""Image-set metrics (Fréchet distance and KID over deep features, and their feature networks) and paired
image metrics (PSNR of one sampler against another from the same noise), and the nearest training example
(memorization)."""
from .features import EffNetLite0, FeatureNetworkError, InceptionTorchScript, cached_features, feature_network
from .frechet import fd_from_features, fd_infinity, frechet_distance, gaussian_stats, kid
from ...data.nearest import nearest, pixel_rows
from .paired import paired_psnr, sobel_energy

__all__ = ["EffNetLite0", "InceptionTorchScript", "FeatureNetworkError", "feature_network", "cached_features",
           "fd_from_features", "frechet_distance", "gaussian_stats", "kid", "nearest", "paired_psnr", "pixel_rows", "fd_infinity", "sobel_energy"]
