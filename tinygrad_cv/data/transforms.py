"""Seeded transforms that move a sample's image, mask, boxes and instance masks together.

A transform is a callable ``t(sample, rng) -> sample`` (a sample is the dict of ``dataset.py``);
``rng`` is a NumPy Generator that the DataLoader seeds from (seed, epoch, index), so a sample's
augmentation is reproducible and independent of the order and the thread that loads it.

Geometry in normalised coordinates
----------------------------------
Each geometric transform is a 3x3 matrix acting on normalised coordinates, in which the image
spans [-1, 1] on both axes (pixel centre i of n lies at (2i + 1) / n - 1). The matrix maps a point
of the *output* image to the point of the *input* image it is read from (homogeneous coordinates,
so a perspective warp is a matrix too). ``Compose`` multiplies the matrices of consecutive
geometric steps, M = M1 @ M2 @ ..., and resamples once: for every output pixel at once it
computes the source position and reads the image there bilinearly, the mask and instance masks
by nearest neighbour; boxes go the other way, their corners through M's inverse.

Outside the input, ``pad_mode`` decides: "reflection" (mirror the image about its border; the
default, natural for satellite and street scenes), "border" (repeat the edge pixel) or "zeros"
(black image; masks filled with ``mask_fill``, instance masks with 0; use it for detection, where a
mirrored object would be a copy without a box).
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any, Iterable, Sequence, Union

import numpy as np
import numpy.typing as npt

from .dataset import Transform
from .errors import is_integer

Floats = Union[float, Sequence[float], npt.NDArray[Any]]  # one number per channel, or one for all

PAD_MODES = ("reflection", "border", "zeros")


def _identity():
    return np.eye(3)


def _affine(a, b, c, d, e, f):
    """[[a, b, c], [d, e, f], [0, 0, 1]]: x' = a x + b y + c, y' = d x + e y + f."""
    return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])


# --------------------------------------------------------------------------- geometric transforms
class Geometric:
    """A transform given by a 3x3 matrix: ``matrix(rng, height, width)`` maps output to input
    normalised coordinates for an image of that size; ``output_size`` is its size afterwards."""
    if TYPE_CHECKING:
        def matrix(self, rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.float64]: ...

    def output_size(self, height, width):
        return height, width

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        return Compose([self])(sample, rng)


def _probability(p, caller):
    """``p`` checked to be a probability: a real number in [0, 1] (not a bool)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"{caller}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


def _size_pair(size, caller):
    """(height, width) from an int (a square) or a pair of ints, each >= 1; bools and floats refused
    (``Resize(True)`` would otherwise be a 1x1 image)."""
    pair = (size, size) if is_integer(size) else tuple(size) if isinstance(size, (tuple, list)) else ()
    if len(pair) != 2 or not all(is_integer(s) and s >= 1 for s in pair):
        raise ValueError(f"{caller}: size must be a positive int or (height, width), got {size!r}")
    return int(pair[0]), int(pair[1])


class Resize(Geometric):
    """Stretch the image to ``size`` (an int for a square, or (height, width)): the identity in
    normalised coordinates, only the output grid changes. Sampling is bilinear without
    antialiasing, so shrink by more than about 2x once, when the files are written, not here."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size_pair(size, "Resize")

    def matrix(self, rng, height, width):
        return _identity()

    def output_size(self, height, width):
        return self.size


class RandomCrop(Geometric):
    """A ``size`` window at a random whole-pixel offset; a window larger than the image pads."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = _size_pair(size, "RandomCrop")

    def matrix(self, rng, height, width):
        (crop_h, crop_w), scale, shift = self.size, [], []
        for crop, n in ((crop_w, width), (crop_h, height)):
            offset = rng.integers(0, n - crop + 1) if crop <= n else -rng.integers(0, crop - n + 1)
            scale.append(crop / n)
            shift.append((2 * offset + crop) / n - 1)     # centre of the window, normalised
        return _affine(scale[0], 0, shift[0], 0, scale[1], shift[1])

    def output_size(self, height, width):
        return self.size


class Flip(Geometric):
    """Mirror left-right (``vertical=False``) or top-bottom with probability ``p``."""

    def __init__(self, p: float = 0.5, vertical: bool = False) -> None:
        self.p, self.vertical = _probability(p, "Flip"), vertical

    def matrix(self, rng, height, width):
        if rng.random() >= self.p:
            return _identity()
        return np.diag([1.0, -1.0, 1.0]) if self.vertical else np.diag([-1.0, 1.0, 1.0])


def _dihedral_matrices():
    """The 8 symmetries of a square (the dihedral group D4): the identity, the flips about both axes
    and both diagonals, and the rotations by 90, 180 and 270 degrees, as 3x3 matrices.

    Element k = 4 * transpose + 2 * flip_y + flip_x: optionally swap x and y, then negate x and/or y.
    """
    matrices = []
    for k in range(8):
        swap, sign_y, sign_x = k // 4, -1.0 if k // 2 % 2 else 1.0, -1.0 if k % 2 else 1.0
        linear = np.array([[0.0, 1.0], [1.0, 0.0]]) if swap else np.eye(2)
        matrix = _identity()
        matrix[:2, :2] = np.diag([sign_x, sign_y]) @ linear
        matrices.append(matrix)
    return tuple(matrices)


DIHEDRAL = _dihedral_matrices()


class Dihedral(Geometric):
    """One of the 8 dihedral symmetries, uniformly at random (satellite images have no "up")."""

    def matrix(self, rng, height, width):
        return DIHEDRAL[rng.integers(8)]


class Rotate(Geometric):
    """Rotate about the centre by an angle uniform in [-max_degrees, max_degrees], with probability p.

    In pixel units, centred: source = R(angle) @ output. Normalised coordinates scale x by 2/width
    and y by 2/height, so the matrix is D^-1 R D with D = diag(width, height) / 2 (angles stay true
    on non-square images).
    """

    def __init__(self, max_degrees: float = 10.0, p: float = 0.75) -> None:
        if not max_degrees >= 0:
            raise ValueError(f"Rotate: max_degrees must be >= 0, got {max_degrees!r}")
        self.max_degrees, self.p = max_degrees, _probability(p, "Rotate")

    def matrix(self, rng, height, width):
        if rng.random() >= self.p:
            return _identity()
        angle = math.radians(rng.uniform(-self.max_degrees, self.max_degrees))
        cos, sin, aspect = math.cos(angle), math.sin(angle), width / height
        return _affine(cos, -sin / aspect, 0.0, sin * aspect, cos, 0.0)


class Zoom(Geometric):
    """Zoom in by a factor z uniform in [min_zoom, max_zoom] about a random centre chosen so that
    the window stays inside the image (z >= 1), with probability p: source = output / z + centre."""

    def __init__(self, max_zoom: float = 1.1, min_zoom: float = 1.0, p: float = 0.75) -> None:
        if not 0 < min_zoom <= max_zoom:
            raise ValueError(f"Zoom: need 0 < min_zoom <= max_zoom, got min_zoom={min_zoom}, max_zoom={max_zoom}")
        self.min_zoom, self.max_zoom, self.p = min_zoom, max_zoom, _probability(p, "Zoom")

    def matrix(self, rng, height, width):
        if rng.random() >= self.p:
            return _identity()
        scale = 1.0 / rng.uniform(self.min_zoom, self.max_zoom)
        room = abs(1.0 - scale)
        return _affine(scale, 0.0, rng.uniform(-room, room), 0.0, scale, rng.uniform(-room, room))


def homography(source, target):
    """The 3x3 matrix H (H[2, 2] = 1) with H @ [x, y, 1] proportional to [X, Y, 1] for four pairs
    of points (x, y) in ``source`` and (X, Y) in ``target``: eight linear equations, one solve.

    From X = (h0 x + h1 y + h2) / (h6 x + h7 y + 1):  h0 x + h1 y + h2 - h6 x X - h7 y X = X (same for Y).
    """
    (x, y), (big_x, big_y) = np.asarray(source, float).T, np.asarray(target, float).T
    one, zero = np.ones(4), np.zeros(4)
    rows_x = np.stack([x, y, one, zero, zero, zero, -x * big_x, -y * big_x], axis=1)
    rows_y = np.stack([zero, zero, zero, x, y, one, -x * big_y, -y * big_y], axis=1)
    h = np.linalg.solve(np.concatenate([rows_x, rows_y]), np.concatenate([big_x, big_y]))
    return np.append(h, 1.0).reshape(3, 3)


class Perspective(Geometric):
    """A perspective warp with probability p: the four output corners (+-1, +-1) are read from the
    input corners moved by independent offsets uniform in [-magnitude, magnitude] on each axis."""

    CORNERS = np.array([[-1.0, -1.0], [1.0, -1.0], [1.0, 1.0], [-1.0, 1.0]])

    def __init__(self, magnitude: float = 0.2, p: float = 0.75) -> None:
        if not 0 <= magnitude < 0.5:
            raise ValueError(f"Perspective: magnitude must be in [0, 0.5) (corners moved by up to a quarter of "
                             f"the image), got {magnitude}")
        self.magnitude, self.p = magnitude, _probability(p, "Perspective")

    def matrix(self, rng, height, width):
        if rng.random() >= self.p:
            return _identity()
        moved = self.CORNERS + rng.uniform(-self.magnitude, self.magnitude, size=(4, 2))
        return homography(self.CORNERS, moved)


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


BOX_SLACK = 1.0
"""How far (pixels) a box may reach past the image's edges: COCO boxes are float and may overshoot a little."""


def check_sample(sample, caller):
    """The parts of a sample that move together must agree before a geometric transform reads them
    with the image's coordinates: the mask (H, W) and instance masks (K, H, W) have the image's size,
    boxes are (K, 4) [x0, y0, x1, y1] with x0 <= x1, y0 <= y1 inside the image (up to BOX_SLACK), and
    labels and instance masks have one entry per box. Anything else is a ValueError naming ``caller``."""
    image = sample.get("image")
    if not isinstance(image, np.ndarray) or image.ndim not in (2, 3):
        raise ValueError(f"{caller}: a sample needs an 'image' (H, W, C) or (H, W) array, got "
                         f"{getattr(image, 'shape', type(image).__name__)}")
    size = image.shape[:2]
    for key, ndim in (("mask", 2), ("instance_masks", 3)):
        if key in sample and (np.ndim(sample[key]) != ndim or np.shape(sample[key])[-2:] != size):
            raise ValueError(f"{caller}: the image is {size[0]}x{size[1]} but its {key} has shape "
                             f"{np.shape(sample[key])}; they must have the same height and width (resize the "
                             f"image and its {key} together, or fix the files)")
    if "boxes" not in sample:
        return
    boxes = np.asarray(sample["boxes"], dtype=np.float64)
    if boxes.ndim != 2 or boxes.shape[1] != 4 or not np.all(np.isfinite(boxes)):
        raise ValueError(f"{caller}: boxes must be a (K, 4) array of finite [x0, y0, x1, y1], got shape {boxes.shape}")
    for key in ("labels", "instance_masks"):
        if key in sample and len(sample[key]) != len(boxes):
            raise ValueError(f"{caller}: {len(boxes)} boxes but {len(sample[key])} {key}; each box needs one")
    height, width = size
    inside = ((boxes[:, 0] >= -BOX_SLACK) & (boxes[:, 1] >= -BOX_SLACK) & (boxes[:, 0] <= boxes[:, 2])
              & (boxes[:, 1] <= boxes[:, 3]) & (boxes[:, 2] <= width + BOX_SLACK) & (boxes[:, 3] <= height + BOX_SLACK))
    if not inside.all():
        bad = boxes[~inside][0].tolist()
        raise ValueError(f"{caller}: the box {bad} is not an [x0, y0, x1, y1] box inside the {height}x{width} "
                         f"image (x0 <= x1, y0 <= y1, pixel edges); were the boxes made for another image "
                         f"size, or given as [x, y, w, h]?")


def _pixel_to_normalised(height, width):
    """Pixel-centre coordinates (column u, row v) -> normalised: x = (2u + 1) / width - 1."""
    return _affine(2.0 / width, 0.0, 1.0 / width - 1.0, 0.0, 2.0 / height, 1.0 / height - 1.0)


def _normalised_to_pixel(height, width):
    return _affine(width / 2.0, 0.0, (width - 1) / 2.0, 0.0, height / 2.0, (height - 1) / 2.0)


def pixel_matrix(matrix, in_size, out_size):
    """``matrix`` (normalised, output -> input) as a map from output pixel centres to input ones."""
    return _normalised_to_pixel(*in_size) @ matrix @ _pixel_to_normalised(*out_size)


def source_coordinates(matrix, in_size, out_size, rows=None):
    """(u, v): the input column and row, in pixel-centre units, read by each output pixel (of the
    output ``rows``, a range, by default all); two (len(rows), out_w) float32 arrays computed for
    all pixels at once by broadcasting."""
    m = pixel_matrix(matrix, in_size, out_size).astype(np.float32)
    cols = np.arange(out_size[1], dtype=np.float32)[None, :]
    rows = range(out_size[0]) if rows is None else rows
    rows = np.arange(rows.start, rows.stop, dtype=np.float32)[:, None]
    u = m[0, 0] * cols + m[0, 1] * rows + m[0, 2]
    v = m[1, 0] * cols + m[1, 1] * rows + m[1, 2]
    if np.any(m[2, :2] != 0) or m[2, 2] != 1:             # a perspective warp: divide by w
        w = np.maximum(m[2, 0] * cols + m[2, 1] * rows + m[2, 2], np.float32(1e-6))   # > 0: in front of the eye
        u, v = u / w, v / w
    return u, v


def _fold_into_image(coordinate, n, pad_mode):
    """Bring pixel-centre coordinates into [0, n - 1], the range the samplers read.

    "reflection" mirrors about the image's outer edges, -0.5 and n - 0.5: with s = u + 0.5 in edge
    units, s' = n - |(s mod 2n) - n| (period 2n), then clamps; "border" and "zeros" just clamp.
    Returns (coordinate, inside): ``inside`` is None unless pad_mode is "zeros", then the fraction
    of a bilinear read that falls on the image, max(0, 1 - distance outside [0, n - 1]) -- exactly
    what reading zeros for the missing neighbours gives, because the clamped read uses the edge pixel.
    """
    inside = None
    if pad_mode == "reflection":
        s = coordinate + np.float32(0.5)
        s -= np.float32(2 * n) * np.floor(s * np.float32(0.5 / n))     # s mod 2n (np.mod is slow)
        coordinate = np.float32(n - 0.5) - np.abs(s - np.float32(n))
    elif pad_mode == "zeros":
        outside = np.maximum(-coordinate, coordinate - np.float32(n - 1))
        inside = np.clip(1 - outside, 0, 1)
    return np.clip(coordinate, 0, n - 1), inside


def sample_bilinear(image, u, v, pad_mode="reflection"):
    """out[r, c] = the (H, W, C) image read at the fractional position (u[r, c], v[r, c]):
    sum over the four surrounding pixels of image * (1 - |du|) * (1 - |dv|), as two linear
    interpolations along x (upper and lower row) and one along y. Same dtype as the image (uint8
    rounded to nearest).

    Layout for speed: the arithmetic runs on (C, N) planes (N = output pixels), gathered straight
    from the interleaved (H, W, C) buffer with index (y * W + x) * C + channel, so every NumPy loop
    is long and contiguous; the planes are interleaved back once at the end.
    """
    height, width = image.shape[:2]
    channels = image.shape[2] if image.ndim == 3 else 1
    flat = image.reshape(-1)
    (u, inside_u), (v, inside_v) = _fold_into_image(u, width, pad_mode), _fold_into_image(v, height, pad_mode)
    x0 = np.minimum(u.astype(np.intp), max(width - 2, 0))      # u >= 0, so truncation is floor
    y0 = np.minimum(v.astype(np.intp), max(height - 2, 0))
    fx, fy = (u - x0.astype(np.float32)).reshape(-1), (v - y0.astype(np.float32)).reshape(-1)
    index = (y0 * width + x0).reshape(1, -1) * channels + np.arange(channels)[:, None]
    step_x, step_y = min(1, width - 1) * channels, min(1, height - 1) * width * channels

    def lerp_x(index):
        left = flat.take(index).astype(np.float32)
        return left + (flat.take(index + step_x) - left) * fx
    upper = lerp_x(index)
    out = upper + (lerp_x(index + step_y) - upper) * fy
    if inside_u is not None:
        out *= (inside_u * inside_v).reshape(-1)
    if image.dtype == np.uint8:
        out = np.clip(out + 0.5, 0, 255).astype(np.uint8)
    out = out.astype(image.dtype, copy=False).reshape((channels,) + u.shape)
    return np.stack(tuple(out), axis=-1) if image.ndim == 3 else out[0]


def sample_nearest(planes, u, v, pad_mode="reflection", fill=0):
    """out[..., r, c] = planes[..., round(v), round(u)] for planes of shape (..., H, W) (a mask, or
    K instance masks); outside the input, ``pad_mode`` applies ("zeros" writes ``fill`` wherever the
    nearest pixel is off the image)."""
    height, width = planes.shape[-2:]
    (u_in, inside_u), (v_in, inside_v) = _fold_into_image(u, width, pad_mode), _fold_into_image(v, height, pad_mode)
    cols = np.minimum((u_in + 0.5).astype(np.intp), width - 1)
    rows = np.minimum((v_in + 0.5).astype(np.intp), height - 1)
    flat = planes.reshape(planes.shape[:-2] + (height * width,))
    out = flat.take(rows * width + cols, axis=-1)
    if inside_u is not None:
        out[..., (inside_u < 0.5) | (inside_v < 0.5)] = fill
    return out


def transform_boxes(boxes, matrix, in_size, out_size):
    """Boxes [x0, y0, x1, y1] (pixel edges) after the warp: the four corners of each box go through
    the inverse pixel map (input -> output), and the new box is their bounding box, clipped to the
    image. A box's content stays inside its new box (exactly so for affine maps; for perspective,
    as long as the box stays on one side of the horizon line)."""
    boxes = np.asarray(boxes, dtype=np.float64).reshape(-1, 4)
    inverse = np.linalg.inv(pixel_matrix(matrix, in_size, out_size))
    x = boxes[:, [0, 2, 2, 0]] - 0.5                       # edges -> pixel-centre units
    y = boxes[:, [1, 1, 3, 3]] - 0.5
    points = inverse @ np.stack([x, y, np.ones_like(x)]).reshape(3, -1)
    px, py = (points[:2] / points[2]).reshape(2, -1, 4) + 0.5
    height, width = out_size
    out = np.stack([px.min(1).clip(0, width), py.min(1).clip(0, height),
                    px.max(1).clip(0, width), py.max(1).clip(0, height)], axis=1)
    return out.astype(np.float32)


def boxes_from_masks(masks):
    """[x0, y0, x1, y1] bounding boxes (pixel edges) of (K, H, W) masks; an empty mask gives zeros."""
    masks = np.asarray(masks) != 0
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    def span(occupied):
        first = np.argmax(occupied, axis=1)
        last = occupied.shape[1] - np.argmax(occupied[:, ::-1], axis=1)
        present = occupied.any(axis=1)
        return np.where(present, first, 0), np.where(present, last, 0)
    (x0, x1), (y0, y1) = span(cols), span(rows)
    return np.stack([x0, y0, x1, y1], axis=1).astype(np.float32)


TILE_PIXELS = 4096


def _resample(sample, matrix, in_size, out_size, pad_mode, mask_fill):
    """The image (bilinear), mask and instance masks (nearest) read through ``matrix``.

    The output is filled in tiles of about TILE_PIXELS pixels (whole rows): every temporary then
    stays small and in cache. On one big tile the temporaries are a few MB per image, and glibc
    returns such memory to the system after each use, so every call pays page faults for it, which
    cost more than the arithmetic.
    """
    height, width = out_size
    image = sample["image"]
    out = {"image": np.empty((height, width) + image.shape[2:], dtype=image.dtype)}
    for key in ("mask", "instance_masks"):
        if key in sample:
            out[key] = np.empty(sample[key].shape[:-2] + (height, width), dtype=sample[key].dtype)
    tile_rows = max(1, TILE_PIXELS // width)
    for top in range(0, height, tile_rows):               # a handful of tiles, each fully vectorised
        rows = range(top, min(top + tile_rows, height))
        u, v = source_coordinates(matrix, in_size, out_size, rows)
        out["image"][rows.start:rows.stop] = sample_bilinear(image, u, v, pad_mode)
        if "mask" in out:
            out["mask"][rows.start:rows.stop] = sample_nearest(sample["mask"], u, v, pad_mode, mask_fill)
        if "instance_masks" in out:
            out["instance_masks"][:, rows.start:rows.stop] = sample_nearest(sample["instance_masks"], u, v, pad_mode)
    return out


def warp_sample(sample, matrix, out_size, pad_mode="reflection", mask_fill=0):
    """The sample seen through ``matrix`` (normalised, output -> input) on an ``out_size`` grid.

    Image: bilinear. Mask and instance masks: nearest. Boxes: through the inverse map, or, when the
    sample has instance masks, the tight boxes of the warped masks. Boxes that end up narrower or
    shorter than one pixel are dropped with their labels and instance masks.
    """
    in_size = sample["image"].shape[:2]
    out_size = tuple(out_size)
    if out_size == tuple(in_size) and np.array_equal(matrix, _identity()):
        return sample
    out = dict(sample, **_resample(sample, matrix, in_size, out_size, pad_mode, mask_fill))
    if "instance_masks" in sample:
        out["boxes"] = boxes_from_masks(out["instance_masks"])
    elif "boxes" in sample:
        out["boxes"] = transform_boxes(sample["boxes"], matrix, in_size, out_size)
    if "boxes" in out:
        keep = ((out["boxes"][:, 2] - out["boxes"][:, 0]) >= 1) & ((out["boxes"][:, 3] - out["boxes"][:, 1]) >= 1)
        for key in ("boxes", "labels", "instance_masks"):
            if key in out:
                out[key] = np.asarray(out[key])[keep]
    return out


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

    def decode(self, x: Any) -> npt.NDArray[np.uint8]:
        """The inverse, for figures: (N, C, H, W) float -> (N, H, W, C) uint8 on the host."""
        x = np.asarray(x, dtype=np.float64).transpose(0, 2, 3, 1)
        return np.clip((x * self.std + self.mean) * 255 + 0.5, 0, 255).astype(np.uint8)

    def __repr__(self) -> str:
        return f"Normalize(mean={np.round(self.mean, 4).tolist()}, std={np.round(self.std, 4).tolist()})"
