"""COCO's run-length encoding (RLE) of binary masks, in pure NumPy, compatible with pycocotools.

An RLE walks the mask in column-major (Fortran) order and lists the lengths of alternating runs,
always starting with a run of zeros (possibly empty)::

    mask (h=3, w=2)     column-major pixels     counts
    0 1                 0 1 1 | 1 0 0           [1, 3, 2]
    1 0
    1 0

``{"size": [h, w], "counts": counts}`` is the *uncompressed* form (``counts`` a list of ints). The
*compressed* form, the one COCO files and pycocotools use, turns counts into an ASCII string:

  1. from the fourth count on, store the difference ``counts[i] - counts[i-2]`` (runs of the same
     kind are often similar, so the differences are small, and may be negative);
  2. write each number as a little-endian sequence of 5-bit two's-complement chunks, each chunk
     in one character ``48 + chunk + 32 * more`` where ``more`` says another chunk follows.

Every function here is vectorised over runs and pixels (np.diff / np.flatnonzero / np.repeat);
the only Python loops are over masks or polygons.
"""
import numpy as np

from .errors import DataFormatError, is_integer

MAX_PIXELS = 89_478_485
"""The most pixels (h * w) a mask may have: Pillow's decompression-bomb limit (``MAX_IMAGE_PIXELS``),
so that a corrupt size cannot make ``rle_to_mask`` allocate gigabytes."""
_MAX_CHUNKS = 12          # 60 bits: more chunks in one number would overflow int64

# --------------------------------------------------------------------------- counts <-> string
_CHUNK_BITS, _CHUNK_MASK, _SIGN_BIT, _MORE_BIT, _OFFSET = 5, 0x1F, 0x10, 0x20, 48


def _deltas(counts):
    """counts[i] - counts[i-2] for i > 2 (the first three counts are kept as they are)."""
    deltas = counts.astype(np.int64)
    deltas[3:] -= counts[1:-2]
    return deltas


def _undo_deltas(deltas):
    """Inverse of ``_deltas``: two running sums, one over odd positions and one over even
    positions from index 2 on (counts[0] is never a base)."""
    counts = deltas.copy()
    counts[1::2] = np.cumsum(deltas[1::2])
    counts[2::2] = np.cumsum(deltas[2::2])
    return counts


def counts_to_string(counts):
    """COCO's compressed string for a list of run lengths (pycocotools' ``rleToString``)."""
    values = _deltas(np.asarray(counts, dtype=np.int64))
    if values.size == 0:
        return ""
    # The fewest n chunks holding the value as a signed 5n-bit number: -2^(5n-1) <= value < 2^(5n-1).
    magnitude = np.where(values < 0, -values - 1, values)
    limits = np.left_shift(1, _CHUNK_BITS * np.arange(1, 13) - 1)   # 2^4, 2^9, ... (12 chunks: 60 bits)
    n_chunks = 1 + (magnitude[:, None] >= limits).sum(axis=1)
    position = np.arange(n_chunks.max())
    chunks = (values[:, None] >> (_CHUNK_BITS * position)) & _CHUNK_MASK
    more = position < (n_chunks[:, None] - 1)
    chars = (chunks | (_MORE_BIT * more)) + _OFFSET
    return chars[position < n_chunks[:, None]].astype(np.uint8).tobytes().decode("ascii")


def string_to_counts(string):
    """Run lengths from COCO's compressed string (pycocotools' ``rleFrString``). A string with
    characters outside '0'..'o', a last character that does not end its number, a number longer
    than 12 chunks (60 bits) or a negative run raises ``DataFormatError``."""
    if isinstance(string, str):
        if not string.isascii():
            raise DataFormatError(f"coco_mask: {string[:40]!r} is not a valid compressed RLE string "
                                  f"(it has non-ASCII characters)")
        string = string.encode("ascii")
    chars = np.frombuffer(string, dtype=np.uint8).astype(np.int64) - _OFFSET
    if chars.size == 0:
        return np.zeros(0, dtype=np.int64)
    if chars.min() < 0 or chars.max() > _MORE_BIT + _CHUNK_MASK or chars[-1] & _MORE_BIT:
        raise DataFormatError(f"coco_mask: {string[:40]!r} is not a valid compressed RLE string "
                              f"(characters must lie in '0'..'o' and the last one must end a number)")
    last = (chars & _MORE_BIT) == 0                               # a number ends at this character
    number = np.concatenate([[0], np.cumsum(last)[:-1]])           # which number each character is in
    first = np.flatnonzero(np.concatenate([[True], last[:-1]]))    # where each number starts
    n_chunks = np.diff(np.append(first, chars.size))
    if n_chunks.max() > _MAX_CHUNKS:
        raise DataFormatError(f"coco_mask: {string[:40]!r} is not a valid compressed RLE string (a number "
                              f"has {n_chunks.max()} chunks; more than {_MAX_CHUNKS} cannot be a run length)")
    position = np.arange(chars.size) - first[number]               # chunk index inside its number
    values = np.add.reduceat((chars & _CHUNK_MASK) << (_CHUNK_BITS * position), first)
    negative = (chars[last] & _SIGN_BIT) != 0                      # sign-extend the last chunk
    values = values - (negative.astype(np.int64) << (_CHUNK_BITS * n_chunks))
    return _checked_counts(_undo_deltas(values), f"the compressed RLE string {string[:40]!r}")


def _checked_counts(counts, what):
    if counts.size and counts.min() < 0:
        raise DataFormatError(f"coco_mask: {what} gives a negative run length ({counts.min()}); "
                              f"run lengths are pixel counts >= 0, so the RLE is corrupt")
    return counts


# --------------------------------------------------------------------------- mask <-> RLE
def _check_mask(mask, name):
    mask = np.asarray(mask)
    if mask.ndim != 2:
        raise ValueError(f"coco_mask.{name}: expected a 2-D (h, w) mask, got shape {mask.shape}; "
                         f"encode masks one at a time")
    return mask


def _counts_of(flat):
    """Run lengths of a flat 0/1 array, starting with the (possibly empty) run of zeros."""
    if flat.size == 0:
        return np.zeros(1, dtype=np.int64)
    changes = np.flatnonzero(flat[1:] != flat[:-1]) + 1
    bounds = np.concatenate([[0], changes, [flat.size]])
    counts = np.diff(bounds)
    return np.concatenate([[0], counts]) if flat[0] else counts


def encode(mask):
    """``{"size": [h, w], "counts": str}`` for an (h, w) mask of bool or 0/1 integers (nonzero is 1)."""
    mask = _check_mask(mask, "encode")
    counts = _counts_of(mask.ravel(order="F") != 0)
    return {"size": [int(mask.shape[0]), int(mask.shape[1])], "counts": counts_to_string(counts)}


def _check_rle(rle):
    """``rle`` must be a dict with 'size' and 'counts' (a TypeError otherwise: a caller's mistake);
    what they hold is data, checked by ``rle_size`` and ``rle_counts``."""
    if not isinstance(rle, dict):
        raise TypeError(f"coco_mask: expected an RLE dict with 'size' and 'counts', got {type(rle).__name__}")
    missing = [key for key in ("size", "counts") if key not in rle]
    if missing:
        raise DataFormatError(f"coco_mask: the RLE {str(rle)[:60]} has no {missing}; an RLE is "
                              f"{{'size': [h, w], 'counts': ...}}")


def rle_counts(rle):
    """The run lengths of an RLE whose counts are compressed (str/bytes) or a list of ints >= 0."""
    _check_rle(rle)
    counts = rle["counts"]
    if isinstance(counts, (str, bytes)):
        return string_to_counts(counts)
    if isinstance(counts, np.ndarray) and counts.ndim == 1 and counts.dtype.kind in "iu":
        return _checked_counts(counts.astype(np.int64), "the RLE counts")
    if not isinstance(counts, (list, tuple)) or not all(is_integer(c) and 0 <= c < 2 ** 62 for c in counts):
        raise DataFormatError(f"coco_mask: RLE counts must be a compressed string or a list of integer run "
                              f"lengths >= 0, got {str(counts)[:60]}")
    return np.asarray(counts, dtype=np.int64).reshape(-1)


def checked_rle(rle, caller="coco_mask.checked_rle"):
    """(size [h, w], counts) of an RLE, checked: h * w at most ``MAX_PIXELS`` and runs that add up
    to exactly h * w pixels. A corrupt RLE raises ``DataFormatError`` naming ``caller``."""
    h, w = rle_size(rle)
    if h * w > MAX_PIXELS:
        raise DataFormatError(f"{caller}: RLE size {[h, w]} has {h * w} pixels, more than MAX_PIXELS = "
                              f"{MAX_PIXELS}; the size is corrupt (or raise coco_mask.MAX_PIXELS)")
    counts = rle_counts(rle)
    if (counts.size and counts.max() > h * w) or counts.sum() != h * w:      # max first: no overflowing sum
        raise DataFormatError(f"{caller}: the RLE runs add up to {counts.sum()} pixels but size {[h, w]} "
                              f"has {h * w}; the RLE is corrupt or belongs to another image size")
    return [h, w], counts


def rle_to_mask(rle):
    """The (h, w) uint8 mask of an RLE (compressed or uncompressed counts), checked by ``checked_rle``."""
    (h, w), counts = checked_rle(rle, "coco_mask.rle_to_mask")
    values = np.arange(counts.size, dtype=np.uint8) % 2
    return np.repeat(values, counts).reshape(w, h).T


def rle_size(rle):
    """[h, w] of an RLE: two integers >= 0."""
    _check_rle(rle)
    size = rle["size"]
    if not (isinstance(size, (list, tuple)) and len(size) == 2 and all(is_integer(s) and s >= 0 for s in size)):
        raise DataFormatError(f"coco_mask: an RLE's 'size' must be [h, w], two integers >= 0, got {str(size)[:40]}")
    return [int(size[0]), int(size[1])]


def area(rle):
    """Number of foreground pixels: the sum of the odd-indexed runs."""
    return int(rle_counts(rle)[1::2].sum())


def to_bbox(rle):
    """[x, y, w, h] of the mask's bounding box, as float64, following pycocotools' ``rleToBbox``.

    Each run of ones gives its first and last pixel; a run that wraps from one column to the next
    covers every row, so the box spans the full height. An empty mask gives [0, 0, 0, 0].
    """
    h = rle_size(rle)[0]
    counts = rle_counts(rle)
    m = counts.size // 2 * 2                       # ignore a trailing run of zeros
    if m == 0:
        return np.zeros(4)
    ends = np.cumsum(counts[:m])
    pixel = ends - np.arange(m) % 2                # first pixel of a run of ones, then its last pixel
    x, y = pixel // h, pixel % h
    xs, xe, ys, ye = x.min(), x.max(), y.min(), y.max()
    if np.any(x[1::2] > x[0::2]):
        ys, ye = 0, h - 1
    return np.array([xs, ys, xe - xs + 1, ye - ys + 1], dtype=np.float64)


# --------------------------------------------------------------------------- polygons
_UPSAMPLE = 5  # pycocotools rasterises on a 5x finer grid


def _edge_points(x, y):
    """Integer points stepping along each edge of a closed polygon (vertices x, y on the fine grid),
    one per unit along the edge's longer axis, in traversal order (pycocotools' ``rleFrPoly``)."""
    xs, ys = x[:-1], y[:-1]
    xe, ye = x[1:], y[1:]
    dx, dy = np.abs(xe - xs), np.abs(ye - ys)
    along_x = dx >= dy
    flip = np.where(along_x, xs > xe, ys > ye)            # walk each edge from its smaller end
    x0, x1 = np.where(flip, xe, xs), np.where(flip, xs, xe)
    y0, y1 = np.where(flip, ye, ys), np.where(flip, ys, ye)
    steps = np.where(along_x, dx, dy)
    rise = np.where(along_x, y1 - y0, x1 - x0).astype(np.float64)
    slope = np.divide(rise, steps, out=np.zeros_like(rise), where=steps > 0)  # a repeated vertex: 0 steps
    edge = np.repeat(np.arange(steps.size), steps + 1)
    d = np.arange(edge.size) - np.repeat(np.cumsum(steps + 1) - (steps + 1), steps + 1)
    t = np.where(flip[edge], steps[edge] - d, d)
    along = along_x[edge]
    straight = t + np.where(along, x0[edge], y0[edge])
    sloped = (np.where(along, y0[edge], x0[edge]) + slope[edge] * t + 0.5).astype(np.int64)
    return np.where(along, straight, sloped), np.where(along, sloped, straight)


def _polygon_mask(polygon, h, w):
    """Rasterise one polygon [x1, y1, x2, y2, ...] (its vertices) exactly as pycocotools' ``rleFrPoly``.

    The boundary is traced on a 5x upsampled grid; wherever it crosses the centre line of a pixel
    column, the first pixel row below the crossing toggles inside/outside. Each column is then
    filled by a running parity of those toggles (column-major, so one cumulative sum does it all).
    """
    xy = np.asarray(polygon, dtype=np.float64).reshape(-1, 2)
    x = (_UPSAMPLE * xy[:, 0] + 0.5).astype(np.int64)     # C's (int) cast truncates toward zero
    y = (_UPSAMPLE * xy[:, 1] + 0.5).astype(np.int64)
    u, v = _edge_points(np.append(x, x[0]), np.append(y, y[0]))
    moved = np.flatnonzero(u[1:] != u[:-1]) + 1           # steps that change the fine column
    column = np.where(u[moved] < u[moved - 1], u[moved], u[moved] - 1).astype(np.float64)
    column = (column + 0.5) / _UPSAMPLE - 0.5
    on_centre = (np.floor(column) == column) & (column >= 0) & (column <= w - 1)
    row = (np.minimum(v[moved], v[moved - 1]) + 0.5) / _UPSAMPLE - 0.5
    row = np.ceil(np.clip(row, 0, h))
    toggles = column[on_centre].astype(np.int64) * h + row[on_centre].astype(np.int64)
    parity = np.cumsum(np.bincount(toggles, minlength=h * w + 1)[:h * w]) % 2
    return parity.astype(np.uint8).reshape(w, h).T


def from_polygons(polygons, h, w):
    """One RLE for the union of COCO polygons (a list of [x1, y1, x2, y2, ...] vertex lists, or a single
    such list), rasterised at size (h, w) pixel-exactly as pycocotools' ``frPyObjects`` + ``merge``.

    Pixel (row r, column c) covers [c, c+1) x [r, r+1); it is inside when its centre, quantised to
    pycocotools' 1/5-pixel grid, lies inside the polygon (even-odd rule).
    """
    if len(polygons) and np.isscalar(polygons[0]):
        polygons = [polygons]
    mask = np.zeros((h, w), dtype=np.uint8)
    for polygon in polygons:
        if len(polygon) < 6 or len(polygon) % 2:
            raise DataFormatError(f"coco_mask.from_polygons: a polygon needs an even number (>= 6) of "
                             f"coordinates [x1, y1, x2, y2, ...], got {len(polygon)}")
        mask |= _polygon_mask(polygon, h, w)
    return encode(mask)


def segmentation_to_rle(segmentation, h, w):
    """Any COCO segmentation (polygons, uncompressed RLE or compressed RLE) as an RLE dict
    (pycocotools' ``annToRLE``). Uncompressed RLE is compressed; compressed RLE is returned as is."""
    if isinstance(segmentation, list):
        return from_polygons(segmentation, h, w)
    if isinstance(segmentation.get("counts"), list):
        return {"size": rle_size(segmentation), "counts": counts_to_string(rle_counts(segmentation))}
    return segmentation


# --------------------------------------------------------------------------- IoU
def iou(dt, gt, iscrowd):
    """(len(dt), len(gt)) IoU matrix between detections and ground truths, as pycocotools' ``iou``.

    ``dt`` and ``gt`` are both lists of RLE dicts, or both (n, 4) arrays of [x, y, w, h] boxes.
    For a ground truth marked crowd (``iscrowd[j]`` true) the "IoU" is intersection / area(detection):
    a detection lying inside a crowd region counts as a match however small it is.
    """
    iscrowd = np.asarray(iscrowd, dtype=bool).reshape(-1)
    if len(gt) != iscrowd.size:
        raise ValueError(f"coco_mask.iou: iscrowd has {iscrowd.size} flags for {len(gt)} ground truths")
    if len(dt) == 0 or len(gt) == 0:
        return np.zeros((len(dt), len(gt)))
    if isinstance(dt[0], dict) != isinstance(gt[0], dict):
        raise TypeError("coco_mask.iou: dt and gt must both be lists of RLEs or both arrays of boxes")
    if isinstance(dt[0], dict):
        inter, area_dt, area_gt = _mask_overlaps(dt, gt)
    else:
        inter, area_dt, area_gt = _box_overlaps(np.asarray(dt, dtype=np.float64).reshape(-1, 4),
                                                np.asarray(gt, dtype=np.float64).reshape(-1, 4))
    union = np.where(iscrowd[None, :], area_dt[:, None], area_dt[:, None] + area_gt[None, :] - inter)
    return np.divide(inter, union, out=np.zeros_like(inter), where=union > 0)


def _box_overlaps(dt, gt):
    """Intersection areas and box areas of [x, y, w, h] boxes."""
    lo = np.maximum(dt[:, None, :2], gt[None, :, :2])
    hi = np.minimum(dt[:, None, :2] + dt[:, None, 2:], gt[None, :, :2] + gt[None, :, 2:])
    inter = np.clip(hi - lo, 0, None).prod(axis=2)
    return inter, dt[:, 2] * dt[:, 3], gt[:, 2] * gt[:, 3]


def _mask_overlaps(dt, gt):
    """Intersection areas (one matrix product of the flattened masks) and mask areas."""
    sizes = {tuple(rle_size(r)) for r in list(dt) + list(gt)}
    if len(sizes) != 1:
        raise ValueError(f"coco_mask.iou: all masks must have the same size, got sizes {sorted(sizes)}")
    h, w = sizes.pop()
    dtype = np.float32 if h * w < 2 ** 24 else np.float64   # sums of 0/1 stay exact below 2^24 in float32
    flat_dt = np.stack([rle_to_mask(r).ravel() for r in dt]).astype(dtype)
    flat_gt = np.stack([rle_to_mask(r).ravel() for r in gt]).astype(dtype)
    inter = (flat_dt @ flat_gt.T).astype(np.float64)
    return inter, flat_dt.sum(axis=1, dtype=np.float64), flat_gt.sum(axis=1, dtype=np.float64)
