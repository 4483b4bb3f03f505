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

The package is split by role: ``geometry`` (the transforms as matrices), ``sampling`` (warping a
sample through a matrix) and ``recipes`` (lighting, ``Compose``, ``aug_transforms``, ``Normalize``).
"""
from .geometry import (DIHEDRAL, Dihedral, Flip, Geometric, Perspective, RandomCrop, Resize, Rotate,  # noqa: F401
                       Zoom, homography)
from .recipes import (IMAGENET_STATS, Compose, Lighting, Normalize, aug_transforms,  # noqa: F401
                      valid_transforms)
from .sampling import (BOX_SLACK, PAD_MODES, TILE_PIXELS, boxes_from_masks, check_sample,  # noqa: F401
                       pixel_matrix, sample_bilinear, sample_nearest, source_coordinates, transform_boxes,
                       warp_sample)
