"""Vectorised drawing for the synthetic datasets: every shape is a mask (bool, or an alpha in [0, 1]
with a one-pixel soft edge) computed over the whole pixel grid at once, and a ``Canvas`` blends
colours through such masks while recording, per pixel, who painted it last (a tag, a class or an
instance): that record *is* the label of the segmentation and instance datasets, and tells the
planet generator which tags stayed visible.

Coordinates are pixel centres: column x and row y, as float32 grids (``Canvas.x``, ``Canvas.y``).
"""
import numpy as np


class Canvas:
    """An (H, W, 3) float32 image in [0, 1], an (H, W) int32 ``owner`` map, and ``notes`` that
    painters leave for later ones (where the roads are, where the horizon is, ...)."""

    def __init__(self, height, width, owner=-1):
        self.height, self.width, self.notes = height, width, {}
        self.image = np.zeros((height, width, 3), dtype=np.float32)
        self.owner = np.full((height, width), owner, dtype=np.int32)
        self.y, self.x = (a.astype(np.float32) for a in np.mgrid[0:height, 0:width])

    def crop(self, x1, y1, x2, y2):
        """A view of the box [x1, x2) x [y1, y2), clipped to the canvas (at least one pixel): it
        shares this canvas's arrays, so drawing on it draws here, at the cost of the box only."""
        c0, r0 = min(max(int(np.floor(x1)), 0), self.width - 1), min(max(int(np.floor(y1)), 0), self.height - 1)
        c1, r1 = max(min(int(np.ceil(x2)), self.width), c0 + 1), max(min(int(np.ceil(y2)), self.height), r0 + 1)
        view = Canvas.__new__(Canvas)
        view.height, view.width, view.notes = r1 - r0, c1 - c0, self.notes
        for name in ("image", "owner", "x", "y"):
            setattr(view, name, getattr(self, name)[r0:r1, c0:c1])
        return view

    def around(self, cx, cy, radius):
        """``crop`` of the square of half-side ``radius`` around (cx, cy)."""
        return self.crop(cx - radius, cy - radius, cx + radius + 1, cy + radius + 1)

    def paint(self, alpha, color, owner=None):
        """image = image * (1 - alpha) + color * alpha; pixels with alpha >= 0.5 get ``owner``.
        ``alpha`` is a bool or float (H, W) mask; ``color`` an RGB triple or an (H, W, 3) field."""
        alpha = np.asarray(alpha, dtype=np.float32)
        self.image += (np.asarray(color, dtype=np.float32) - self.image) * alpha[..., None]
        if owner is not None:
            self.owner[alpha >= 0.5] = owner

    def shade(self, factor):
        """Multiply the image by an (H, W) or (H, W, 3) factor (lighting, shadows)."""
        factor = np.asarray(factor, dtype=np.float32)
        self.image *= factor[..., None] if factor.ndim == 2 else factor

    def to_uint8(self):
        return np.clip(self.image * 255 + 0.5, 0, 255).astype(np.uint8)


# --------------------------------------------------------------------------- noise and colour
def _interpolate(values, n_out, axis):
    """Resample ``values`` along ``axis`` (a lattice of n + 1 points spanning the image) onto n_out
    pixel centres, with smoothstep weights 3t^2 - 2t^3 (a softer look than plain linear)."""
    cells = values.shape[axis] - 1
    position = (np.arange(n_out, dtype=np.float32) + 0.5) * (cells / n_out)
    left = np.minimum(position.astype(np.intp), cells - 1)
    t = position - left
    t = (t * t * (3 - 2 * t)).reshape([-1 if a == axis else 1 for a in range(values.ndim)])
    before, after = np.take(values, left, axis), np.take(values, left + 1, axis)
    return before + (after - before) * t


def value_noise(rng, height, width, cells):
    """Smooth random field in [0, 1]: a random (cells + 1)^2 lattice interpolated along the rows,
    then along the columns. ``cells`` sets the feature size: about width / cells pixels."""
    cells = max(1, int(round(cells)))
    lattice = rng.random((cells + 1, cells + 1), dtype=np.float32)
    return _interpolate(_interpolate(lattice, height, 0), width, 1)


def fractal_noise(rng, height, width, cells, octaves=4, persistence=0.5):
    """Sum of value noises at doubling frequencies and halving amplitudes, rescaled to [0, 1]."""
    total = sum(persistence ** k * value_noise(rng, height, width, cells * 2 ** k) for k in range(octaves))
    low, high = total.min(), total.max()
    return (total - low) / max(high - low, 1e-6)


def jitter(rng, color, amount=0.05):
    """A colour moved by up to ``amount`` per channel, kept in [0, 1]."""
    return np.clip(np.asarray(color, dtype=np.float32) + rng.uniform(-amount, amount, 3), 0, 1)


def textured(color, noise, strength):
    """An (H, W, 3) colour field: ``color`` scaled by 1 + strength * (noise - 0.5)."""
    return np.asarray(color, dtype=np.float32) * (1 + strength * (noise[..., None] - 0.5))


# --------------------------------------------------------------------------- shapes
def soft_edge(signed_distance):
    """Alpha from a signed distance (negative inside): a one-pixel antialiased edge."""
    return np.clip(0.5 - signed_distance, 0, 1)


def disk(canvas, cx, cy, radius):
    return soft_edge(np.hypot(canvas.x - cx, canvas.y - cy) - radius)


def rotated(canvas, cx, cy, angle):
    """Coordinates (s, t) along and across the direction ``angle`` (radians), centred on (cx, cy)."""
    dx, dy = canvas.x - cx, canvas.y - cy
    cos, sin = np.cos(angle), np.sin(angle)
    return dx * cos + dy * sin, -dx * sin + dy * cos


def rectangle(canvas, cx, cy, width, height, angle=0.0):
    s, t = rotated(canvas, cx, cy, angle)
    return soft_edge(np.maximum(np.abs(s) - width / 2, np.abs(t) - height / 2))


def blob(canvas, rng, cx, cy, radius, roughness=0.3, harmonics=5, softness=1.0):
    """An irregular round shape: radius(theta) = radius * (1 + sum_k a_k cos(k theta + phi_k)),
    k = 2..harmonics+1, with an edge ``softness`` pixels wide. cos(k theta) and sin(k theta) come
    from the angle-addition recurrence, starting from cos theta = dx / r and sin theta = dy / r."""
    dx, dy = canvas.x - np.float32(cx), canvas.y - np.float32(cy)
    distance = np.hypot(dx, dy)
    cos_1, sin_1 = dx / np.maximum(distance, 1e-6), dy / np.maximum(distance, 1e-6)
    cos_k, sin_k = cos_1, sin_1
    wobble = np.zeros_like(distance)
    for k in range(2, 2 + harmonics):
        cos_k, sin_k = cos_k * cos_1 - sin_k * sin_1, sin_k * cos_1 + cos_k * sin_1
        amplitude, phase = roughness * rng.uniform(0, 1) / k, rng.uniform(0, 2 * np.pi)
        wobble += np.float32(amplitude * np.cos(phase)) * cos_k - np.float32(amplitude * np.sin(phase)) * sin_k
    return soft_edge((distance - np.float32(radius) * (1 + wobble)) / np.float32(softness))


def meander(canvas, rng, cx, cy, angle, half_width, amplitude, wavelength, length=None):
    """A winding band through (cx, cy) in direction ``angle``: its centre line is offset across by
    amplitude * (sin(2 pi s / wavelength + phi) + 0.4 sin(4.3 pi s / wavelength + psi)); ``length``
    limits it to |s| <= length / 2 (a segment rather than a line crossing the image)."""
    s, t = rotated(canvas, cx, cy, angle)
    phi, psi = rng.uniform(0, 2 * np.pi, 2)
    centre = amplitude * (np.sin(2 * np.pi * s / wavelength + phi) + 0.4 * np.sin(4.3 * np.pi * s / wavelength + psi))
    distance = np.abs(t - centre) - half_width
    if length is not None:
        distance = np.maximum(distance, np.abs(s) - length / 2)
    return soft_edge(distance)


def polygon(canvas, points):
    """Inside of a convex polygon (vertices in either winding order): the largest signed distance
    to its edges' lines, one edge at a time (a handful of edges)."""
    points = np.asarray(points, dtype=np.float32)
    area2 = np.sum(points[:, 0] * np.roll(points[:, 1], -1) - np.roll(points[:, 0], -1) * points[:, 1])
    orientation = 1.0 if area2 > 0 else -1.0
    distance = np.full(canvas.owner.shape, -np.inf, dtype=np.float32)
    for (x0, y0), (x1, y1) in zip(points, np.roll(points, -1, axis=0)):
        length = max(float(np.hypot(x1 - x0, y1 - y0)), 1e-6)
        outward = orientation * ((canvas.x - x0) * (y1 - y0) - (canvas.y - y0) * (x1 - x0)) / length
        distance = np.maximum(distance, outward)
    return soft_edge(distance)


def union(*alphas):
    return np.maximum.reduce([np.asarray(a, dtype=np.float32) for a in alphas])
