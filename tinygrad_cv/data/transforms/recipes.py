"""Pixel transforms, composing the steps (one resampling per run of geometric steps), the usual
training and validation recipes, and per-channel normalisation of batches."""
from __future__ import annotations

import math
from typing import Any, Iterable, Sequence, Union

import numpy as np
import numpy.typing as npt

from ..dataset import Transform
from .geometry import Dihedral, Flip, Geometric, Perspective, Resize, Rotate, Zoom, _probability
from .sampling import PAD_MODES, check_sample, warp_sample

Floats = Union[float, Sequence[float], npt.NDArray[Any]]  # one number per channel, or one for all


# --------------------------------------------------------------------------- pixel transforms
class Lighting:
    """Random brightness and contrast of the image (not of masks), with probability p.

    In [0, 1] units: x' = clip((x - 0.5) * c + 0.5 + b, 0, 1) with b uniform in [-brightness,
    brightness] and log c uniform in [log(1 - contrast), -log(1 - contrast)]. On a uint8 image this
    is one 256-entry lookup table, so it costs one indexing pass.
    """

    def __init__(self, brightness: float = 0.2, contrast: float = 0.2, p: float = 0.75) -> None:
        if not (0 <= brightness and 0 <= contrast < 1):
            raise ValueError(f"Lighting: need brightness >= 0 and 0 <= contrast < 1, got "
                             f"brightness={brightness}, contrast={contrast}")
        self.brightness, self.contrast, self.p = brightness, contrast, _probability(p, "Lighting")

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        if rng.random() >= self.p:
            return sample
        image = sample["image"]
        if image.dtype != np.uint8:
            raise TypeError(f"Lighting: expected a uint8 image, got {image.dtype}; apply it before any "
                            f"conversion to float")
        shift = rng.uniform(-self.brightness, self.brightness)
        log_c = abs(math.log(1 - self.contrast))
        factor = math.exp(rng.uniform(-log_c, log_c))
        levels = np.arange(256) / 255.0
        table = np.clip(((levels - 0.5) * factor + 0.5 + shift) * 255 + 0.5, 0, 255).astype(np.uint8)
        return {**sample, "image": table[image]}


# --------------------------------------------------------------------------- composing and warping
class Compose:
    """Apply ``steps`` in order; consecutive geometric steps are merged into one resampling."""

    def __init__(self, steps: Sequence[Transform], pad_mode: str = "reflection", mask_fill: int = 0) -> None:
        if pad_mode not in PAD_MODES:
            raise ValueError(f"Compose: pad_mode must be one of {PAD_MODES}, got {pad_mode!r}")
        self.steps, self.pad_mode, self.mask_fill = list(steps), pad_mode, mask_fill

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        matrix, size = None, None
        for step in self.steps:
            if isinstance(step, Geometric):
                if matrix is None:
                    check_sample(sample, type(step).__name__)
                height, width = size or sample["image"].shape[:2]
                step_matrix = step.matrix(rng, height, width)
                matrix = step_matrix if matrix is None else matrix @ step_matrix
                size = step.output_size(height, width)
            else:
                sample = self._warp(sample, matrix, size)
                matrix, size = None, None
                sample = step(sample, rng)
        return self._warp(sample, matrix, size)

    def _warp(self, sample, matrix, size):
        if matrix is None:
            return sample
        return warp_sample(sample, matrix, size, self.pad_mode, self.mask_fill)

    def __repr__(self) -> str:
        return f"Compose({self.steps!r}, pad_mode={self.pad_mode!r})"


# --------------------------------------------------------------------------- recipes and normalisation
def aug_transforms(size: int | tuple[int, int] | None = None, flip: bool = True, flip_vert: bool = False,
                   max_rotate: float = 10.0, max_zoom: float = 1.1, max_warp: float = 0.2, max_lighting: float = 0.2,
                   p_affine: float = 0.75, p_lighting: float = 0.75, pad_mode: str = "reflection",
                   mask_fill: int = 0) -> Compose:
    """The usual training augmentation: resize to ``size``, a random flip (all 8 dihedral symmetries
    with ``flip_vert``), rotation, zoom and perspective warp (merged into one resampling), then
    brightness and contrast. A zero argument leaves its step out."""
    steps: list[Transform] = [Resize(size)] if size is not None else []
    if flip_vert:
        steps.append(Dihedral())
    elif flip:
        steps.append(Flip())
    if max_rotate:
        steps.append(Rotate(max_rotate, p_affine))
    if max_zoom and max_zoom > 1:
        steps.append(Zoom(max_zoom, p=p_affine))
    if max_warp:
        steps.append(Perspective(max_warp, p_affine))
    if max_lighting:
        steps.append(Lighting(max_lighting, max_lighting, p_lighting))
    return Compose(steps, pad_mode, mask_fill)


def valid_transforms(size: int | tuple[int, int] | None = None) -> Compose:
    """Validation only resizes (normalisation happens on the batch): no randomness at all."""
    return Compose([Resize(size)] if size is not None else [])


IMAGENET_STATS = ((0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


def _levels(images, caller):
    """How many units one [0, 1] step is in ``images``: 255 for uint8; 1 for floats, which must
    already lie in [0, 1] (as after torchvision's ToTensor). Floats outside [0, 1] are ambiguous
    (0..255 values stored as float?) and other dtypes have no agreed scale, so both are refused."""
    if images.dtype == np.uint8:
        return 255.0
    if images.dtype.kind != "f":
        raise TypeError(f"{caller}: expected uint8 images (0..255) or float images in [0, 1], got {images.dtype}; "
                        f"convert them first, e.g. to uint8")
    if images.size:
        low, high = float(images.min()), float(images.max())
        if not (0.0 <= low and high <= 1.0):
            raise ValueError(f"{caller}: float images must lie in [0, 1], got values in [{low:g}, {high:g}]; "
                             f"divide 0..255 floats by 255 (or pass uint8 images)")
    return 1.0


class Normalize:
    """Batch step: (N, H, W, C) images -> (N, C, H, W) float32, x = (image / levels - mean) / std per
    channel, computed as one fused multiply-add: x = image * (1 / (levels std)) - mean / std.

    ``mean`` and ``std`` are in [0, 1] units, as torchvision's ``Normalize`` after ``ToTensor``.
    levels = 255 for uint8 images; float images are taken as already in [0, 1] (levels = 1), and
    float images with values outside [0, 1] are refused (ValueError) rather than guessed at; other
    dtypes are a TypeError. Unlike torchvision, a mean outside [0, 1] is refused too: it can only be
    a statistic of 0..255 values (mmdetection's style), which would normalise silently wrong here.
    """

    def __init__(self, mean: Floats, std: Floats) -> None:
        self.mean = np.asarray(mean, dtype=np.float64).reshape(-1)
        self.std = np.asarray(std, dtype=np.float64).reshape(-1)
        if self.mean.shape != self.std.shape or not np.all(self.std > 0):
            raise ValueError(f"Normalize: need one positive std per mean, got mean {self.mean.tolist()} "
                             f"and std {self.std.tolist()}")
        if not np.all((self.mean >= 0) & (self.mean <= 1)):
            raise ValueError(f"Normalize: mean must be in [0, 1] units (the images are scaled to [0, 1] first), "
                             f"got {self.mean.tolist()}; divide statistics measured on 0..255 values by 255")

    @classmethod
    def from_images(cls, batches: Iterable[npt.NDArray[Any]]) -> Normalize:
        """Per-channel mean and std (in [0, 1] units) of an iterable of (N, H, W, C) batches (uint8,
        or floats in [0, 1]), e.g. a few batches of the training set; accumulated in float64."""
        total, total_sq, count = 0.0, 0.0, 0
        for images in batches:
            images = np.asarray(images)
            levels = _levels(images, "Normalize.from_images")
            pixels = images.astype(np.float64).reshape(-1, images.shape[-1]) / levels
            total, total_sq = total + pixels.sum(0), total_sq + (pixels ** 2).sum(0)
            count += pixels.shape[0]
        if count == 0:
            raise ValueError("Normalize.from_images: no images were given; pass at least one batch")
        mean = total / count
        return cls(mean, np.sqrt(np.maximum(total_sq / count - mean ** 2, 1e-12)))

    def __call__(self, images: Any, xp: Any = np) -> Any:
        if images.ndim != 4 or images.shape[-1] != self.mean.size:
            raise ValueError(f"Normalize: expected (N, H, W, {self.mean.size}) images, got shape {images.shape}")
        levels = _levels(images, "Normalize")
        scale = xp.asarray(1.0 / (levels * self.std), dtype=xp.float32).reshape(1, -1, 1, 1)
        shift = xp.asarray(-self.mean / self.std, dtype=xp.float32).reshape(1, -1, 1, 1)
        x = xp.ascontiguousarray(images.transpose(0, 3, 1, 2), dtype=xp.float32)
        x *= scale
        x += shift
        return x

    def denormalize(self, x: Any) -> npt.NDArray[np.uint8]:
        """The inverse, for figures: (N, C, H, W) float -> (N, H, W, C) uint8 on the host."""
        x = np.asarray(x, dtype=np.float64).transpose(0, 2, 3, 1)
        return np.clip((x * self.std + self.mean) * 255 + 0.5, 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Normalize(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
