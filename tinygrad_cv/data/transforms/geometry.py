"""The geometric transforms: each is a 3x3 matrix on normalised coordinates (the image spans [-1, 1],
the matrix maps an output point to the input point it is read from), drawn from the sample's rng;
``Compose`` (recipes.py) multiplies consecutive ones and resamples once (sampling.py)."""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Any

import numpy as np
import numpy.typing as npt

from ...ops._util import pair
from .sampling import _affine, _identity, check_sample, warp_sample


# --------------------------------------------------------------------------- geometric transforms
class Geometric:
    """A transform given by a 3x3 matrix: ``matrix(rng, height, width)`` maps output to input
    normalised coordinates for an image of that size; ``output_size`` is its size afterwards."""
    if TYPE_CHECKING:
        def matrix(self, rng: np.random.Generator, height: int, width: int) -> npt.NDArray[np.float64]: ...

    def output_size(self, height, width):
        return height, width

    def __call__(self, sample: dict[str, Any], rng: np.random.Generator) -> dict[str, Any]:
        """The transform alone (``Compose([self])`` with its default pad mode)."""
        check_sample(sample, type(self).__name__)
        height, width = sample["image"].shape[:2]
        return warp_sample(sample, self.matrix(rng, height, width), self.output_size(height, width))


def _probability(p, caller):
    """``p`` checked to be a probability: a real number in [0, 1] (not a bool)."""
    if isinstance(p, bool) or not isinstance(p, (int, float, np.floating, np.integer)) or not 0 <= p <= 1:
        raise ValueError(f"{caller}: p must be a probability in [0, 1], got {p!r}")
    return float(p)


class Resize(Geometric):
    """Stretch the image to ``size`` (an int for a square, or (height, width)): the identity in
    normalised coordinates, only the output grid changes. Sampling is bilinear without
    antialiasing, so shrink by more than about 2x once, when the files are written, not here."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = pair(size, "Resize", "size", 1)

    def matrix(self, rng, height, width):
        return _identity()

    def output_size(self, height, width):
        return self.size


class RandomCrop(Geometric):
    """A ``size`` window at a random whole-pixel offset; a window larger than the image pads."""

    def __init__(self, size: int | tuple[int, int]) -> None:
        self.size = pair(size, "RandomCrop", "size", 1)

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
