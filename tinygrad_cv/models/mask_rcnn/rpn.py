"""The region proposal network: anchors, the RPN head, and turning its outputs into proposals.

Every cell of the stride-8 feature map carries one anchor per (scale, ratio); with the feature
pyramid, every cell of level l carries one anchor per ratio at that level's scale. The head looks at
a 3 x 3 window of features around the cell and says, for each of its anchors, how likely it covers an
object (one logit) and how to move it onto that object (four deltas); on a pyramid the same head
(the same weights) runs on every level. Proposals are the anchors moved by their deltas, best scores
first, with near-duplicates removed by non-maximum suppression.
"""
import numpy as np

from ... import backend
from ... import functional as F
from ... import nn
from ...ops.boxes import clip_boxes, decode_boxes, generate_anchors, padded_nms


def make_anchors(config):
    """All anchors, (A, 4) as (x1, y1, x2, y2) pixels: ``level_anchors`` concatenated, finest level first."""
    return np.concatenate(level_anchors(config))


def level_anchors(config):
    """The anchors of each feature level, a list of (A_l, 4) arrays.

    Single level: one array of H * W * S * R anchors, ordered by row, column, scale, ratio (the order
    of the RPN head's outputs), centred on the cells. FPN: level l's H_l * W_l * R anchors of side
    anchor_scales[l], as torchvision's AnchorGenerator (``pyramid_anchors``)."""
    if config.fpn:
        return pyramid_anchors(config.anchor_scales, config.anchor_ratios, [(s, s) for s in config.level_sizes],
                               config.image_size)
    size = config.feature_size
    scales = config.anchor_scales
    per_scale = generate_anchors(scales, config.anchor_ratios, [(size, size)] * len(scales),
                                 [config.backbone_stride] * len(scales))
    cells = [a.reshape(size * size, len(config.anchor_ratios), 4) for a in per_scale]
    return [np.stack(cells, axis=1).reshape(-1, 4)]


def pyramid_anchors(sizes, aspect_ratios, feature_shapes, image_size):
    """torchvision's AnchorGenerator with one size per level: a list of (H_l * W_l * R, 4) float64 arrays.

    Level l's cell (i, j) carries, per aspect ratio r = height / width (torchvision's convention, where
    ``generate_anchors`` takes width / height), the box of width s / sqrt(r) and height s sqrt(r),
    s = sizes[l], its half-sides rounded to whole pixels, centred on (j * stride, i * stride) with
    stride = image_size // W_l (the top-left corner of the cell, where a stride-2 convolution with
    'same' padding centres its window). Ordered by row, column, ratio.
    """
    h_ratios = np.sqrt(np.asarray(aspect_ratios, dtype=np.float64))
    anchors = []
    for size, (height, width) in zip(sizes, feature_shapes):
        ws, hs = size / h_ratios, size * h_ratios
        base = np.round(np.stack([-ws, -hs, ws, hs], axis=1) / 2)                      # (R, 4)
        sy, sx = np.meshgrid(np.arange(height) * (image_size // height), np.arange(width) * (image_size // width),
                             indexing="ij")
        shifts = np.stack([sx, sy, sx, sy], axis=-1).reshape(-1, 1, 4)
        anchors.append((shifts + base[None]).reshape(-1, 4))
    return anchors


class RPNHead(nn.Module):
    """3 x 3 convolution + ReLU shared by all anchors, then two 1 x 1 convolutions: an objectness
    logit per anchor (A channels) and four box deltas per anchor (4A channels)."""

    def __init__(self, in_channels, channels, anchors_per_cell):
        super().__init__()
        self.anchors_per_cell = anchors_per_cell
        self.conv = nn.Conv2d(in_channels, channels, 3, padding=1)
        self.objectness = nn.Conv2d(channels, anchors_per_cell, 1)
        self.deltas = nn.Conv2d(channels, 4 * anchors_per_cell, 1)
        for layer in (self.conv, self.objectness, self.deltas):   # torchvision's initialisation
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.zeros_(layer.bias)

    def forward(self, features):
        """features (N, C, H, W) -> objectness logits (N, H*W*A) and deltas (N, H*W*A, 4)."""
        n, _, height, width = features.shape
        hidden = F.relu(self.conv(features))
        logits = self.objectness(hidden).permute(0, 2, 3, 1).reshape(n, -1)
        deltas = self.deltas(hidden).reshape(n, self.anchors_per_cell, 4, height, width)
        return logits, deltas.permute(0, 3, 4, 1, 2).reshape(n, -1, 4)


def _top_per_level(xp, logits, level_sizes, k):
    """Indices (N, sum of min(k, A_l)) of the k highest logits of each image within each level, best first
    (equal logits in anchor order), and the level (0, 1, ...) of each column."""
    top, levels, start = [], [], 0
    for level, size in enumerate(level_sizes):
        n = min(k, size)
        top.append(start + xp.argsort(-logits[:, start:start + size], axis=1, kind="stable")[:, :n])
        levels.append(np.full(n, level, dtype=np.int32))
        start += size
    return xp.concatenate(top, axis=1), np.concatenate(levels)


def propose(anchors, logits, deltas, config, post_nms_top_n, level_sizes=None):
    """Proposals of fixed size: boxes (N, P, 4) as (x1, y1, x2, y2) and ``valid`` (N, P), P = post_nms_top_n:
    row i holds image i's proposals, best score first, and ``valid[i, j]`` is False in the slots after its
    last one (an image may have fewer). Fixed shapes keep it on the device: nothing is read back.

    For each image and each feature level (``level_sizes``: its anchors' count per level, in order;
    default one level): take the rpn_pre_nms_top_n anchors with the highest objectness, move them by
    their deltas, clip them to the image, leave out those thinner than min_box_size, and run NMS at
    rpn_nms_threshold within each level (the level acting as a category, so that boxes of different
    levels never suppress each other); then keep the best post_nms_top_n of the image, all levels
    together (torchvision's ``filter_proposals``). ``logits`` (N, A) and ``deltas`` (N, A, 4) are arrays
    of the model's device (no gradient flows through proposals); ``anchors`` (A, 4) a host array.
    """
    xp = backend.array_module(logits)
    n_images, n_anchors = logits.shape
    top, level = _top_per_level(xp, logits, level_sizes or [n_anchors], config.rpn_pre_nms_top_n)
    scores = xp.take_along_axis(logits, top, axis=1)
    boxes = decode_boxes(xp.asarray(anchors)[top], xp.take_along_axis(deltas, top[..., None], axis=1),
                         config.box_std)
    boxes = clip_boxes(boxes, config.image_size, config.image_size)
    width, height = boxes[..., 2] - boxes[..., 0], boxes[..., 3] - boxes[..., 1]
    big = (width >= config.min_box_size) & (height >= config.min_box_size)
    groups = xp.broadcast_to(xp.asarray(level), top.shape)
    index, valid = padded_nms(boxes, scores, big, groups, config.rpn_nms_threshold, post_nms_top_n)
    return xp.take_along_axis(boxes, index[..., None], axis=1), valid


def compact_proposals(boxes, valid):
    """Padded proposals (``propose``) as host rows (P, 5) of (image index, x1, y1, x2, y2), image by image,
    best first: the valid slots only (one read back, of the boxes with their flags)."""
    xp = backend.array_module(boxes)
    rows = backend.as_host(xp.concatenate([boxes, valid[..., None].astype(boxes.dtype)], axis=-1))
    image, slot = np.nonzero(rows[..., 4])
    return np.column_stack([image, rows[image, slot, :4]]).reshape(-1, 5)
