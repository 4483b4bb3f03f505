"""Images and masks on disk, read and written with Pillow (atomically, through ``tinygrad_cv.io.atomic_write``).

    read_image(path)  -> (H, W, 3) uint8 RGB, whatever the file's mode (RGB, RGBA, L, P, ...)
    image_size(path)  -> (H, W) from the file's header, without decoding the pixels
    read_mask(path)   -> (H, W) integer class indices; a P-mode (palette) PNG reads as its indices,
                         not as its colours, which is how CamVid-style label files are stored
    write_image / write_mask / write_text: to a temporary name first, then ``os.replace``, so an
                         interrupted run never leaves a half-written file under the real name.

A file that cannot be fully decoded (missing, corrupt, truncated) raises ``ImageReadError``, which
names the file. Pillow is imported inside the functions, so ``import tinygrad_cv`` does not load it.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from ..io import atomic_write
from .errors import DataFormatError

IMAGE_EXTENSIONS = (".jpg", ".jpeg", ".png", ".bmp", ".gif", ".tif", ".tiff", ".webp")
MASK_MODES = ("P", "L", "1", "I", "I;16")


class ImageReadError(DataFormatError):
    """An image or mask file that could not be opened or fully decoded; the message names the file."""


def _decode(path, caller, convert):
    """Open ``path``, decode every pixel (``load``), and return ``convert(image)`` as an array.

    Pillow reports broken files with many exception types (OSError for a truncated JPEG, SyntaxError
    from some plugins, ValueError, struct.error, ...), so every failure to decode becomes one
    ``ImageReadError`` that names the file; ``ImageReadError`` from ``convert`` passes through.
    """
    from PIL import Image
    if not os.path.isfile(path):
        raise ImageReadError(f"{caller}: {os.fspath(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as image:
            image.load()
            return convert(image)
    except ImageReadError:
        raise
    except Exception as error:
        raise ImageReadError(f"{caller}: cannot read {os.fspath(path)!r} ({type(error).__name__}: {error}); "
                             f"the file is corrupt, truncated or not an image. Replace or remove it "
                             f"(the data block's skip_bad_files=True skips such files)") from error


def image_size(path: str | os.PathLike[str]) -> tuple[int, int]:
    """(height, width) of the image at ``path`` from its header alone: Pillow's ``Image.open`` is
    lazy, so no pixel is decoded (a cheap check before anything of the declared size is allocated)."""
    from PIL import Image
    if not os.path.isfile(path):
        raise ImageReadError(f"image_size: {os.fspath(path)!r} does not exist or is not a file")
    try:
        with Image.open(path) as image:
            width, height = image.size
    except Exception as error:
        raise ImageReadError(f"image_size: cannot read the header of {os.fspath(path)!r} "
                             f"({type(error).__name__}: {error}); the file is corrupt or not an image") from error
    return height, width


def read_image(path: str | os.PathLike[str]) -> npt.NDArray[np.uint8]:
    """The image at ``path`` as an (H, W, 3) uint8 RGB array. Alpha is dropped, grey is replicated,
    palette colours are looked up."""
    return _decode(path, "read_image", lambda image: np.asarray(image.convert("RGB")))


def read_mask(path: str | os.PathLike[str]) -> npt.NDArray[Any]:
    """The segmentation mask at ``path`` as an (H, W) array of class indices (uint8 for P/L/1 modes,
    int32 for 16/32-bit modes). Colour (RGB) masks are refused: they need a colour-to-class table."""
    def indices(image):
        if image.mode not in MASK_MODES:
            raise ImageReadError(f"read_mask: {os.fspath(path)!r} has mode {image.mode!r}; a mask must hold "
                                 f"one class index per pixel (modes {MASK_MODES}). Convert colour label "
                                 f"images to indices first")
        mask = np.asarray(image)
        return mask.astype(np.uint8) if image.mode == "1" else mask
    return _decode(path, "read_mask", indices)


# --------------------------------------------------------------------------- writing (atomic_write: see io.py)
_FORMATS = {".jpg": "JPEG", ".jpeg": "JPEG", ".png": "PNG", ".bmp": "BMP", ".gif": "GIF",
            ".tif": "TIFF", ".tiff": "TIFF", ".webp": "WEBP"}


def _format_of(path, caller):
    extension = os.path.splitext(os.fspath(path))[1].lower()
    if extension not in _FORMATS:
        raise ValueError(f"{caller}: cannot tell the image format of {os.fspath(path)!r}; "
                         f"use one of the extensions {sorted(_FORMATS)}")
    return _FORMATS[extension]


def write_image(path: str | os.PathLike[str], image: npt.NDArray[Any], quality: int = 90) -> Path:
    """Save an (H, W, 3) or (H, W) uint8 array as an image, the format chosen by the extension."""
    from PIL import Image
    image = np.asarray(image)
    if image.dtype != np.uint8 or image.ndim not in (2, 3):
        raise TypeError(f"write_image: expected an (H, W, 3) or (H, W) uint8 array for {os.fspath(path)!r}, "
                        f"got {image.dtype} with shape {image.shape}; convert with "
                        f"np.clip(x, 0, 255).astype(np.uint8)")
    file_format = _format_of(path, "write_image")
    options = {"quality": quality} if file_format == "JPEG" else {}
    pil = Image.fromarray(image)
    return atomic_write(path, lambda tmp: pil.save(tmp, format=file_format, **options))


def write_mask(path: str | os.PathLike[str], mask: npt.NDArray[Any], n_classes: int = 256) -> Path:
    """Save an (H, W) array of class indices as a P-mode PNG: the pixel values are the indices, and
    the palette (``class_colors``) only makes the file readable to the eye."""
    from PIL import Image
    mask = np.asarray(mask)
    if mask.ndim != 2 or mask.dtype.kind not in "ui" or (mask.size and (mask.min() < 0 or mask.max() > 255)):
        raise ValueError(f"write_mask: expected an (H, W) integer mask with values in 0..255 for "
                         f"{os.fspath(path)!r}, got {mask.dtype} with shape {mask.shape}")
    pil = Image.fromarray(mask.astype(np.uint8), mode="P")
    pil.putpalette(class_colors(max(n_classes, 1)).ravel().tolist())
    return atomic_write(path, lambda tmp: pil.save(tmp, format="PNG"))


def write_text(path, text):
    """Write a text file (UTF-8) atomically."""
    def write(tmp):
        with open(tmp, "w", encoding="utf-8", newline="") as file:
            file.write(text)
    return atomic_write(path, write)


def class_colors(n: int) -> npt.NDArray[np.uint8]:
    """(n, 3) uint8 colours, one per class, spread around the hue circle (golden-ratio steps) with
    alternating lightness so neighbouring indices look different. Class 0 is dark grey."""
    index = np.arange(n)
    hue = (index * 0.618034) % 1.0
    value = np.where(index % 2 == 0, 0.95, 0.7)
    saturation = np.where(index % 3 == 0, 0.55, 0.9)
    sector = np.floor(hue * 6).astype(int) % 6
    f = hue * 6 - np.floor(hue * 6)
    p, q, t = value * (1 - saturation), value * (1 - f * saturation), value * (1 - (1 - f) * saturation)
    rgb = np.choose(sector[None], [np.stack(c) for c in ((value, t, p), (q, value, p), (p, value, t),
                                                          (p, q, value), (t, p, value), (value, p, q))])
    colors = np.round(rgb.T * 255).astype(np.uint8)
    colors[0] = (64, 64, 64)
    return colors
