"""RoIAlign and RoIPool: a fixed-size feature grid for every box, whatever the box's size.

Boxes ("regions of interest") come as a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or as a list
of per-image Tensor[L, 4]; coordinates are in image pixels and ``spatial_scale`` maps them onto the
feature map (1/stride). Both ops follow torchvision's CPU kernels exactly.

RoIAlign. Each ROI is cut into output_size bins; each bin averages grid_h x grid_w bilinear samples
at regularly spaced points, with grid = sampling_ratio, or ceil(roi_size / output_size) when
sampling_ratio <= 0. There is no rounding anywhere, which is the whole point: RoIPool's quantised
bins shift features by up to a feature cell, a whole 16 pixels at stride 16.

Bilinear weights factor into a row weight times a column weight, and so does the bin average, so
the op is a *separable resampling*: for ROI k on image b,

    out[k, c] = A_y[k] @ input[b, c] @ A_x[k]^T

where A_y[k] (out_h x H) holds, for each output row, the average over its sample rows of the
linear-interpolation weights (A_x[k] likewise for columns). Forward is two matrix products per
ROI group, and backward is their transpose, grad_input[b, c] += A_y[k]^T @ grad[k, c] @ A_x[k],
which adds grad * weight / count into each sample's four neighbours exactly as torchvision's
scatter does. The cost is O(K * out_h * H * W * C) multiply-adds (dense BLAS), memory O(K * out_h * C * W)
per group of ROIs.
"""
from __future__ import annotations

import math
import numbers
from typing import Sequence

import numpy as np

from .. import backend
from ..autograd import Function
from ..backend import acc_dtype, deferred, launch
from ..tensor import Tensor
from ._util import pair

_MAX_INTERMEDIATE = 2 ** 24  # elements of the (rois x out_h) x (C x W) product held at once


# --------------------------------------------------------------------------- argument checks
def _check_scale(fn, spatial_scale):
    """spatial_scale maps image pixels onto the feature map (1 / stride): a finite positive number."""
    if not isinstance(spatial_scale, numbers.Real) or isinstance(spatial_scale, bool) or \
            not math.isfinite(spatial_scale) or spatial_scale <= 0:
        raise ValueError(f"{fn}: spatial_scale must be a finite positive number (the feature map's size over the "
                         f"image's, e.g. 1/16), got {spatial_scale!r}")
    return float(spatial_scale)


def _rois(boxes, x, fn):
    """Boxes in either accepted form as a float64 (K, 5) array of (batch_index, x1, y1, x2, y2) on
    ``x``'s device, after checking shapes, finiteness, x2 >= x1, y2 >= y1 and the batch indices. On a
    device the values are checked without a read back (``backend.deferred``: a bad box raises at the
    next read, as a CUDA device-side assert), and meanwhile a non-finite coordinate is read as 0 and a
    batch index out of range as the nearest one."""
    xp = x.xp
    if isinstance(boxes, (list, tuple)):
        parts = []
        for i, b in enumerate(boxes):
            b = xp.asarray(b.data if isinstance(b, Tensor) else b, dtype=np.float64)
            if b.ndim != 2 or b.shape[1] != 4:
                raise ValueError(f"{fn}: boxes[{i}] must have shape (L, 4) as (x1, y1, x2, y2), got {b.shape}")
            parts.append(xp.concatenate([xp.full((len(b), 1), float(i)), b], axis=1))
        rois = xp.concatenate(parts) if parts else xp.zeros((0, 5))
    else:
        rois = xp.asarray(boxes.data if isinstance(boxes, Tensor) else boxes, dtype=np.float64)
        if rois.ndim != 2 or rois.shape[1] != 5:
            raise ValueError(f"{fn}: boxes must be a Tensor[K, 5] of (batch_index, x1, y1, x2, y2) or a list "
                             f"of per-image Tensor[L, 4], got shape {rois.shape}")
    index, reversed_ = rois[:, 0], (rois[:, 3] < rois[:, 1]) | (rois[:, 4] < rois[:, 2])
    bad_index = (index != xp.floor(index)) | (index < 0) | (index >= x.shape[0])
    not_finite = ~xp.isfinite(rois)
    deferred.check(not_finite.any(), lambda: ValueError(f"{fn}: boxes contain NaN or infinite coordinates"))
    deferred.check(reversed_.any(), lambda: ValueError(
        f"{fn}: box {int(xp.flatnonzero(reversed_)[0])} has x2 < x1 or y2 < y1: "
        f"{backend.as_host(rois[xp.flatnonzero(reversed_)[0], 1:]).tolist()}; "
        f"boxes must be (x1, y1, x2, y2) with x1 <= x2 and y1 <= y2"))
    deferred.check(bad_index.any(), lambda: ValueError(
        f"{fn}: batch indices must be integers in [0, {x.shape[0]}) for an input of shape {x.shape}, "
        f"got {sorted(set(backend.as_host(index).tolist()))[:10]}"))
    if x.device != "cpu":  # the verdicts come at the next read back: until then the kernels read in bounds
        rois = xp.where(not_finite, 0.0, rois)
        rois[:, 0] = xp.clip(rois[:, 0], 0, x.shape[0] - 1)
    return rois


def _check_sampling_ratio(fn, sampling_ratio):
    if not isinstance(sampling_ratio, numbers.Integral) or isinstance(sampling_ratio, bool):
        raise TypeError(f"{fn}: sampling_ratio must be an int (any value <= 0 means adaptive, "
                        f"ceil(roi_size / output_size) samples per bin, as torchvision), got {sampling_ratio!r}")


def _check_input(x, fn):
    if not isinstance(x, Tensor):
        raise TypeError(f"{fn}: input must be a Tensor, got {type(x).__name__}")
    if x.ndim != 4:
        raise ValueError(f"{fn}: input must have shape (N, C, H, W), got {x.shape}")
    if x.dtype.kind != "f":
        raise TypeError(f"{fn}: input must be floating point, got {x.dtype}")


def _roi_groups(xp, batch_index, rois_per_group):
    """(image, indices of its ROIs) for each image, its ROIs cut into groups of at most ``rois_per_group``."""
    for b in backend.as_host(xp.unique(batch_index)).astype(int).tolist():
        rows = xp.flatnonzero(batch_index == b)
        for start in range(0, len(rows), rois_per_group):
            yield b, rows[start:start + rois_per_group]


# --------------------------------------------------------------------------- RoIAlign
def _axis_weights(xp, start, end, bins, length, sampling_ratio, aligned):
    """A[k, p, j]: weight of pixel j (of ``length`` along one axis) in output bin p of ROI k.

    ROI k spans [start_k, end_k) in feature-map pixels. Bin p gets ``grid`` sample points
    start + p * bin + (i + 0.5) * bin / grid, i < grid, each spread over its two neighbouring pixels
    by linear interpolation, and the average is taken (weights divided by grid). torchvision's
    border rules: a sample beyond [-1, length] contributes nothing, one in [-1, 0] is clamped to 0,
    and one at or past length - 1 takes the last pixel whole.
    """
    size = end - start
    if not aligned:
        size = xp.maximum(size, 1.0)                 # legacy mode: every ROI is at least 1x1
    bin_size = size / bins
    grid = xp.full(size.shape, sampling_ratio) if sampling_ratio > 0 else xp.ceil(size / bins)
    grid_max = max(int(grid.max()) if grid.size else 0, 1)
    k, p, i = xp.arange(len(size))[:, None, None], xp.arange(bins)[None, :, None], xp.arange(grid_max)
    per_grid = xp.maximum(grid, 1)[:, None, None]
    pos = start[:, None, None] + p * bin_size[:, None, None] + (i + 0.5) * bin_size[:, None, None] / per_grid
    used = (i < grid[:, None, None]) & (pos >= -1) & (pos <= length)
    pos = xp.maximum(pos, 0.0)
    low = xp.floor(pos).astype(np.int64)
    at_end = low >= length - 1
    low = xp.where(at_end, length - 1, low)
    high = xp.where(at_end, length - 1, low + 1)
    frac = xp.where(at_end, 0.0, pos - low)
    weights = xp.zeros((len(size), bins, length))
    k, p = xp.broadcast_to(k, pos.shape), xp.broadcast_to(p, pos.shape)
    backend.add_at(xp, weights, (k, p, low), (1 - frac) * used / per_grid)
    backend.add_at(xp, weights, (k, p, high), frac * used / per_grid)
    return weights


def roi_align_weights(xp, rois, feature_shape, output_size, spatial_scale, sampling_ratio, aligned):
    """The row and column interpolation matrices A_y (K, out_h, H) and A_x (K, out_w, W), float64."""
    offset = 0.5 if aligned else 0.0                 # aligned: pixel centres sit at half-integers
    coords = rois[:, 1:] * spatial_scale - offset
    height, width = feature_shape
    a_y = _axis_weights(xp, coords[:, 1], coords[:, 3], output_size[0], height, sampling_ratio, aligned)
    a_x = _axis_weights(xp, coords[:, 0], coords[:, 2], output_size[1], width, sampling_ratio, aligned)
    return a_y, a_x


def _weights_as(dtype, *args):
    """``roi_align_weights(*args)`` in the dtype the products are computed in."""
    return tuple(a.astype(dtype) for a in roi_align_weights(*args))


def _group_size(output_h, channels, width):
    return max(1, _MAX_INTERMEDIATE // max(output_h * channels * width, 1))


def roi_align_forward(xp, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
    """RoIAlign of an (N, C, H, W) array: (K, C, out_h, out_w), out[k, c] = A_y[k] @ x[b_k, c] @ A_x[k]^T."""
    _, c, h, w = x.shape
    out_h, out_w = output_size
    dtype = acc_dtype(x.dtype)
    a_y, a_x = _weights_as(dtype, xp, rois, (h, w), output_size, spatial_scale, sampling_ratio, aligned)
    out = xp.zeros((len(rois), c, out_h, out_w), dtype=dtype)
    for b, rows in _roi_groups(xp, rois[:, 0], _group_size(out_h, c, w)):
        feature = x[b].astype(dtype, copy=False).transpose(1, 0, 2).reshape(h, c * w)      # (H, C*W)
        rows_mixed = (a_y[rows].reshape(-1, h) @ feature).reshape(len(rows), out_h * c, w)  # (k, out_h*C, W)
        pooled = rows_mixed @ a_x[rows].transpose(0, 2, 1)                                  # (k, out_h*C, out_w)
        out[rows] = pooled.reshape(len(rows), out_h, c, out_w).transpose(0, 2, 1, 3)
    return out.astype(x.dtype, copy=False)


def roi_align_backward(xp, grad, rois, input_shape, output_size, spatial_scale, sampling_ratio, aligned):
    """Gradient of RoIAlign w.r.t. its input: grad_x[b, c] = sum over ROIs k of b of A_y[k]^T @ grad[k, c] @ A_x[k]."""
    n, c, h, w = input_shape
    out_h, out_w = output_size
    dtype = acc_dtype(grad.dtype)
    a_y, a_x = _weights_as(dtype, xp, rois, (h, w), output_size, spatial_scale, sampling_ratio, aligned)
    grad_x = xp.zeros((n, h, c * w), dtype=dtype)
    for b, rows in _roi_groups(xp, rois[:, 0], _group_size(out_h, c, w)):
        g = grad[rows].astype(dtype, copy=False).transpose(0, 2, 1, 3).reshape(len(rows), out_h * c, out_w)
        spread = (g @ a_x[rows]).reshape(-1, c * w)                                   # (k*out_h, C*W)
        grad_x[b] += a_y[rows].reshape(-1, h).T @ spread                              # (H, C*W)
    return grad_x.reshape(n, h, c, w).transpose(0, 2, 1, 3).astype(grad.dtype)


class RoIAlign(Function):
    """out[k, c] = A_y[k] x[b_k, c] A_x[k]^T;  dx[b, c] = sum_k A_y[k]^T dout[k, c] A_x[k]  (boxes get no gradient).

    On 'cuda' and 'emu' the CUDA kernels in backend/kernels/roi_align.cu run both passes (one thread
    per output, atomic adds backward; coordinates in float32 for float16/float32 inputs)."""
    def forward(ctx, x, rois, output_size, spatial_scale, sampling_ratio, aligned):
        ctx.save(rois)
        ctx.input_shape = x.shape
        ctx.params = (output_size, spatial_scale, sampling_ratio, aligned)
        if ctx.device != "cpu":
            return launch.roi_align(x, rois, *ctx.params)
        return roi_align_forward(ctx.xp, x, rois, *ctx.params)

    def backward(ctx, grad):
        (rois,) = ctx.saved
        if ctx.device != "cpu":
            return launch.roi_align_backward(grad, rois, ctx.input_shape, *ctx.params[1:])
        return roi_align_backward(ctx.xp, grad, rois, ctx.input_shape, *ctx.params)


def roi_align(input: Tensor, boxes: Tensor | Sequence[Tensor], output_size: int | tuple[int, int],
              spatial_scale: float = 1.0, sampling_ratio: int = -1, aligned: bool = False) -> Tensor:
    """torchvision.ops.roi_align: (K, C, out_h, out_w) features of the K boxes.

    ``aligned=True`` shifts the boxes by -0.5 feature pixel, so that a box (0, 0, 1, 1) at
    spatial_scale 1 is centred on pixel (0, 0)'s centre; ``aligned=False`` is the legacy mode, which
    also makes every ROI at least 1 x 1. Coordinate arithmetic is done in float64 whatever the input
    dtype; float16 inputs are resampled in float32.
    """
    _check_input(input, "roi_align")
    output_size = pair(output_size, "roi_align", "output_size", 1)
    _check_sampling_ratio("roi_align", sampling_ratio)
    spatial_scale = _check_scale("roi_align", spatial_scale)
    rois = _rois(boxes, input, "roi_align")
    return RoIAlign.apply(input, rois=rois, output_size=output_size, spatial_scale=spatial_scale,
                          sampling_ratio=int(sampling_ratio), aligned=bool(aligned))


# --------------------------------------------------------------------------- RoIPool
def _round_half_away(xp, v):
    """C's round(): halves go away from zero (NumPy's round goes to even)."""
    return xp.sign(v) * xp.floor(xp.abs(v) + 0.5)


def _pool_bins(xp, start, end, bins, length):
    """Integer bin bounds [lo, hi) (K, bins) along one axis, torchvision's quantised RoIPool rules:
    the ROI is rounded to whole cells and made at least one cell long, bin p spans
    [floor(p * s), ceil((p + 1) * s)) cells from the ROI start (s = roi_length / bins), clipped to the map."""
    start, end = _round_half_away(xp, start), _round_half_away(xp, end)
    bin_size = (xp.maximum(end - start + 1, 1) / bins)[:, None]
    p = xp.arange(bins)
    lo = xp.clip(xp.floor(p * bin_size) + start[:, None], 0, length).astype(np.int64)
    hi = xp.clip(xp.ceil((p + 1) * bin_size) + start[:, None], 0, length).astype(np.int64)
    return lo, hi


def _bin_cells(xp, lo, hi, length):
    """Cell indices (K, bins, B) covering each bin, padded to the longest bin B, and which are real."""
    offsets = xp.arange(max(int((hi - lo).max()) if hi.size else 0, 1))
    cells = lo[..., None] + offsets
    return xp.minimum(cells, length - 1), cells < hi[..., None]


def roi_pool_forward(xp, x, rois, output_size, spatial_scale):
    """RoIPool: (K, C, out_h, out_w) maxima and the flat (H*W) index of each maximum (-1 for an empty bin)."""
    n, c, h, w = x.shape
    coords = rois[:, 1:] * spatial_scale
    rows, rows_real = _bin_cells(xp, *_pool_bins(xp, coords[:, 1], coords[:, 3], output_size[0], h), h)  # type: ignore[call-arg]
    cols, cols_real = _bin_cells(xp, *_pool_bins(xp, coords[:, 0], coords[:, 2], output_size[1], w), w)  # type: ignore[call-arg]
    batch = rois[:, 0].astype(np.int64)
    # values[k, c, ph, i, pw, j] = x[b_k, c, rows[k, ph, i], cols[k, pw, j]]
    values = x[batch[:, None, None, None, None, None], xp.arange(c)[:, None, None, None, None],
               rows[:, None, :, :, None, None], cols[:, None, None, None, :, :]]
    real = rows_real[:, None, :, :, None, None] & cols_real[:, None, None, None, :, :]
    values = xp.where(real, values, -xp.inf).transpose(0, 1, 2, 4, 3, 5)
    values = values.reshape(values.shape[:4] + (values.shape[4] * values.shape[5],))  # (K, C, out_h, out_w, B_h*B_w)
    best = values.argmax(axis=-1)                                      # first maximum in row-major order
    k = xp.arange(len(rois))[:, None, None, None]
    ph, pw = xp.arange(output_size[0])[:, None], xp.arange(output_size[1])
    argmax = rows[k, ph, best // cols.shape[-1]] * w + cols[k, pw, best % cols.shape[-1]]
    empty = ~(rows_real.any(axis=-1)[:, :, None] & cols_real.any(axis=-1)[:, None, :])[:, None]
    out = xp.where(empty, x.dtype.type(0), xp.take_along_axis(values, best[..., None], axis=-1)[..., 0])
    return out.astype(x.dtype, copy=False), xp.where(empty, -1, argmax)


class RoIPool(Function):
    """out[k, c, bin] = max of x[b_k, c] over the bin's cells; the gradient goes to the arg-max cell."""
    def forward(ctx, x, rois, output_size, spatial_scale):
        out, argmax = roi_pool_forward(ctx.xp, x, rois, output_size, spatial_scale)
        ctx.save(rois[:, 0].astype(np.int64), argmax)
        ctx.input_shape = x.shape
        return out

    def backward(ctx, grad):
        batch, argmax = ctx.saved
        xp = ctx.xp
        n, c, h, w = ctx.input_shape
        grad_x = xp.zeros((n, c, h * w), dtype=grad.dtype)
        hit = argmax >= 0
        k, ch = xp.nonzero(hit)[:2]
        backend.add_at(xp, grad_x, (batch[k], ch, argmax[hit]), grad[hit])
        return grad_x.reshape(n, c, h, w)


def roi_pool(input: Tensor, boxes: Tensor | Sequence[Tensor], output_size: int | tuple[int, int],
             spatial_scale: float = 1.0) -> Tensor:
    """torchvision.ops.roi_pool: max over quantised bins (Fast R-CNN). Kept for the lesson that
    shows why RoIAlign replaced it; use ``roi_align`` in models."""
    _check_input(input, "roi_pool")
    output_size = pair(output_size, "roi_pool", "output_size", 1)
    spatial_scale = _check_scale("roi_pool", spatial_scale)
    rois = _rois(boxes, input, "roi_pool")
    return RoIPool.apply(input, rois=rois, output_size=output_size, spatial_scale=spatial_scale)


# --------------------------------------------------------------------------- multi-scale RoIAlign
def _check_scales(spatial_scales, n_levels, fn):
    """Per-level scales 2^-k, finest first, each level half the previous one's; returns [k_min, ..., k_max]."""
    scales = list(spatial_scales) if isinstance(spatial_scales, (list, tuple)) else None
    if scales is None or len(scales) != n_levels:
        raise ValueError(f"{fn}: spatial_scales must be a list with one scale per feature level ({n_levels}), "
                         f"got {spatial_scales!r}")
    levels = []
    for scale in scales:
        _check_scale(fn, scale)
        level = -math.log2(scale)
        if level != round(level):
            raise ValueError(f"{fn}: spatial_scales must be powers of 2 (1/4, 1/8, ...), got {scales}")
        levels.append(int(round(level)))
    if levels != list(range(levels[0], levels[0] + n_levels)):
        raise ValueError(f"{fn}: spatial_scales must halve from each level to the next, finest first "
                         f"(e.g. [1/4, 1/8, 1/16, 1/32]), got {scales}")
    return levels


def roi_levels(xp, rois, k_min, k_max, canonical_scale=224, canonical_level=4):
    """The pyramid level index (0 = the finest, level k_min) each (K, 5) ROI is pooled from, as
    torchvision's LevelMapper (Lin et al. 2017, eq. 1): a box of side s = sqrt(w h) goes to level
    k = floor(canonical_level + log2(s / canonical_scale) + 1e-6), clamped to [k_min, k_max]; a box of
    the canonical size (ImageNet's 224) to canonical_level, one twice as small one level finer."""
    side = xp.sqrt((rois[:, 3] - rois[:, 1]) * (rois[:, 4] - rois[:, 2]))
    side = xp.maximum(side, 1e-12 * canonical_scale)                # an empty box: the finest level, not log 0
    k = xp.floor(canonical_level + xp.log2(side / canonical_scale) + 1e-6)
    return (xp.clip(k, k_min, k_max) - k_min).astype(np.int64)


class MultiScaleRoIAlign(Function):
    """out[rows_l] = RoIAlign(x_l, rois[rows_l]) for each level l, rows_l the ROIs mapped to level l;
    dx_l = RoIAlign's adjoint of dout[rows_l] (zero for a level no ROI maps to).

    On the CPU each level pools its own rows. On a device, where picking the rows would read their count
    back, every level pools every ROI and the output keeps each row from its own level (``xp.where``), and
    in backward each level takes the gradient of its own rows only (the others' zeroed): the same numbers,
    for L times the pooling work."""
    def forward(ctx, *features, rois, levels, output_size, spatial_scales, sampling_ratio, aligned):
        xp = ctx.xp
        ctx.shapes, ctx.params = [x.shape for x in features], (output_size, sampling_ratio, aligned)
        ctx.save(rois, levels)
        ctx.scales = spatial_scales
        out = xp.zeros((len(rois), features[0].shape[1]) + output_size, dtype=features[0].dtype)
        for level, (x, scale) in enumerate(zip(features, spatial_scales)):
            if ctx.device != "cpu":
                pooled = launch.roi_align(x, rois, output_size, scale, sampling_ratio, aligned)
                out = xp.where((levels == level)[:, None, None, None], pooled, out)
                continue
            rows = xp.flatnonzero(levels == level)
            if len(rows):
                out[rows] = roi_align_forward(xp, x, rois[rows], output_size, scale, sampling_ratio, aligned)
        return out

    def backward(ctx, grad):
        rois, levels = ctx.saved
        output_size, sampling_ratio, aligned = ctx.params
        grads = []
        for level, (shape, scale) in enumerate(zip(ctx.shapes, ctx.scales)):
            if ctx.device != "cpu":
                own = ctx.xp.where((levels == level)[:, None, None, None], grad, 0)
                grads.append(launch.roi_align_backward(own, rois, shape, scale, sampling_ratio, aligned))
                continue
            rows = ctx.xp.flatnonzero(levels == level)
            grads.append(roi_align_backward(ctx.xp, grad[rows], rois[rows], shape, output_size, scale,
                                            sampling_ratio, aligned) if len(rows)
                         else ctx.xp.zeros(shape, dtype=grad.dtype))
        return tuple(grads)


def multi_scale_roi_align(features, boxes, output_size, spatial_scales, sampling_ratio=2, canonical_scale=224,
                          canonical_level=4, aligned=False):
    """torchvision.ops.MultiScaleRoIAlign as a function: RoIAlign of every box on the pyramid level
    that suits its size (``roi_levels``). Returns (K, C, out_h, out_w), row k for the k-th box given.

    ``features``: the levels, (N, C, H_l, W_l) Tensors, finest first; ``spatial_scales``: their
    scales (1/4, 1/8, ...: powers of 2, each level half the previous). torchvision's module infers
    the scales from the feature and image sizes; here they are given. ``boxes`` as for ``roi_align``
    (a list of per-image (L, 4) boxes, or a (K, 5) Tensor with the image index first), in image
    pixels. ``aligned`` as roi_align's (torchvision's module always uses False). Every level gets
    a gradient (zero for a level no box maps to).
    """
    fn = "multi_scale_roi_align"
    if not isinstance(features, (list, tuple)) or not features:
        raise TypeError(f"{fn}: features must be a non-empty list of (N, C, H, W) Tensors, finest level first, "
                        f"got {type(features).__name__}")
    for i, x in enumerate(features):
        _check_input(x, f"{fn}: features[{i}]")
        if x.shape[:2] != features[0].shape[:2] or x.dtype != features[0].dtype or x.device != features[0].device:
            raise ValueError(f"{fn}: features[{i}] is {x.shape} {x.dtype} on {x.device}, but features[0] is "
                             f"{features[0].shape} {features[0].dtype} on {features[0].device}; every level "
                             f"needs the same batch size, channels, dtype and device")
    levels = _check_scales(spatial_scales, len(features), fn)
    output_size = pair(output_size, fn, "output_size", 1)
    _check_sampling_ratio(fn, sampling_ratio)
    if not isinstance(canonical_scale, numbers.Real) or isinstance(canonical_scale, bool) or \
            not math.isfinite(canonical_scale) or canonical_scale <= 0:
        raise ValueError(f"{fn}: canonical_scale must be a finite positive number (the side, in image pixels, "
                         f"of a box pooled from canonical_level), got {canonical_scale!r}")
    if not isinstance(canonical_level, numbers.Integral) or isinstance(canonical_level, bool):
        raise TypeError(f"{fn}: canonical_level must be an int (the level of a canonical_scale box), "
                        f"got {canonical_level!r}")
    rois = _rois(boxes, features[0], fn)
    mapped = roi_levels(features[0].xp, rois, levels[0], levels[-1], float(canonical_scale), int(canonical_level))
    return MultiScaleRoIAlign.apply(*features, rois=rois, levels=mapped, output_size=output_size,
                                    spatial_scales=tuple(2.0 ** -k for k in levels),
                                    sampling_ratio=int(sampling_ratio), aligned=bool(aligned))
