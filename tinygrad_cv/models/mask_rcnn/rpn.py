"""The region proposal network: anchors, the RPN head, and turning its outputs into proposals.

Every cell of the stride-8 feature map carries one anchor per (scale, ratio). The head looks at a
3 x 3 window of features around the cell and says, for each of its anchors, how likely it covers an
object (one logit) and how to move it onto that object (four deltas). Proposals are the anchors
moved by their deltas, best scores first, with near-duplicates removed by non-maximum suppression.
"""
import numpy as np

from ... import functional as F
from ... import nn
from ...ops.boxes import batched_nms, clip_boxes, decode_boxes, generate_anchors, remove_small_boxes
from .targets import rank_within_groups


def make_anchors(config):
    """All anchors of the single feature level, (H * W * S * R, 4) as (x1, y1, x2, y2) pixels, ordered
    by row, column, scale, ratio: the order of the RPN head's outputs."""
    size = config.feature_size
    scales = config.anchor_scales
    per_scale = generate_anchors(scales, config.anchor_ratios, [(size, size)] * len(scales),
                                 [config.backbone_stride] * len(scales))
    cells = [a.reshape(size * size, len(config.anchor_ratios), 4) for a in per_scale]
    return np.stack(cells, axis=1).reshape(-1, 4)


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


def propose(anchors, logits, deltas, config, post_nms_top_n):
    """Proposals (P, 5) as (image index, x1, y1, x2, y2), at most ``post_nms_top_n`` per image.

    For each image: take the rpn_pre_nms_top_n anchors with the highest objectness, move them by
    their deltas, clip them to the image, drop those thinner than min_box_size, and run NMS at
    rpn_nms_threshold. All images go through one NMS call, the image index acting as a category so
    that boxes of different images never suppress each other. ``logits`` (N, A) and ``deltas``
    (N, A, 4) are arrays (no gradient flows through proposals).
    """
    n_images, n_anchors = logits.shape
    k = min(config.rpn_pre_nms_top_n, n_anchors)
    top = np.argpartition(-logits, k - 1, axis=1)[:, :k]
    scores = np.take_along_axis(logits, top, axis=1).reshape(-1)
    boxes = decode_boxes(anchors[top], np.take_along_axis(deltas, top[..., None], axis=1), config.box_std)
    boxes = clip_boxes(boxes.reshape(-1, 4), config.image_size, config.image_size)
    image = np.repeat(np.arange(n_images), k)
    big = remove_small_boxes(boxes, config.min_box_size)
    boxes, scores, image = boxes[big], scores[big], image[big]
    keep = batched_nms(boxes, scores, image, config.rpn_nms_threshold)   # best score first
    keep = keep[rank_within_groups(image[keep], np.arange(len(keep))) < post_nms_top_n]
    return np.column_stack([image[keep], boxes[keep]])
