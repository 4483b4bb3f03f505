"""Resampling a sample through a geometric matrix: the checks that its parts agree, the pixel maps,
the bilinear and nearest samplers with their pad modes, and boxes through the inverse map."""
import numpy as np

PAD_MODES = ("reflection", "border", "zeros")


def _identity():
    return np.eye(3)


def _affine(a, b, c, d, e, f):
    """[[a, b, c], [d, e, f], [0, 0, 1]]: x' = a x + b y + c, y' = d x + e y + f."""
    return np.array([[a, b, c], [d, e, f], [0.0, 0.0, 1.0]])


BOX_SLACK = 1.0
"""How far (pixels) a box may reach past the image's edges: COCO boxes are float and may overshoot a little."""


def check_sample(sample, caller):
    """The parts of a sample that move together must agree before a geometric transform reads them
    with the image's coordinates: the mask (H, W) and instance masks (K, H, W) have the image's size,
    boxes are (K, 4) [x1, y1, x2, y2] with x1 <= x2, y1 <= y2 inside the image (up to BOX_SLACK), and
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
        raise ValueError(f"{caller}: boxes must be a (K, 4) array of finite [x1, y1, x2, y2], got shape {boxes.shape}")
    for key in ("labels", "instance_masks"):
        if key in sample and len(sample[key]) != len(boxes):
            raise ValueError(f"{caller}: {len(boxes)} boxes but {len(sample[key])} {key}; each box needs one")
    height, width = size
    inside = ((boxes[:, 0] >= -BOX_SLACK) & (boxes[:, 1] >= -BOX_SLACK) & (boxes[:, 0] <= boxes[:, 2])
              & (boxes[:, 1] <= boxes[:, 3]) & (boxes[:, 2] <= width + BOX_SLACK) & (boxes[:, 3] <= height + BOX_SLACK))
    if not inside.all():
        bad = boxes[~inside][0].tolist()
        raise ValueError(f"{caller}: the box {bad} is not an [x1, y1, x2, y2] box inside the {height}x{width} "
                         f"image (x1 <= x2, y1 <= y2, pixel edges); were the boxes made for another image "
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
    """Boxes [x1, y1, x2, y2] (pixel edges) after the warp: the four corners of each box go through
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
    """[x1, y1, x2, y2] bounding boxes (pixel edges) of (K, H, W) masks; an empty mask gives zeros."""
    masks = np.asarray(masks) != 0
    rows, cols = masks.any(axis=2), masks.any(axis=1)
    def span(occupied):
        first = np.argmax(occupied, axis=1)
        last = occupied.shape[1] - np.argmax(occupied[:, ::-1], axis=1)
        present = occupied.any(axis=1)
        return np.where(present, first, 0), np.where(present, last, 0)
    (x1, x2), (y1, y2) = span(cols), span(rows)
    return np.stack([x1, y1, x2, y2], axis=1).astype(np.float32)


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
