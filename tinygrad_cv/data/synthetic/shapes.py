"""COCO-format "shapes": coloured squares, circles and triangles on a textured background.

    images/shapes_{i:05d}.png
    annotations/instances.json   COCO instances: images, annotations (segmentation as compressed
                                 RLE, area, bbox [x, y, w, h], iscrowd 0), categories 1..3 =
                                 square, circle, triangle

One to four shapes per image, of radius 0.09 to 0.2 times the image size (uniformly), or, with
``object_sizes=(smallest, largest)``, of widths from ``smallest`` to ``largest`` pixels drawn
log-uniformly (as many objects between 8 and 16 pixels as between 50 and 100: the wide size range
where a feature pyramid matters). Shapes may overlap, but every shape keeps at least two thirds of its
pixels visible (a placement that would hide more is tried elsewhere); the instance masks are what
stays visible, so occlusions are resolved in the masks, and the boxes are those of the visible
pixels.
"""
import json
from pathlib import Path

import numpy as np

from ..coco_mask import encode, to_bbox
from ..image_io import write_image, write_text
from .draw import Canvas, disk, fractal_noise, polygon, rectangle, textured
from .output import is_complete, mark_complete, prepare

SHAPE_CATEGORIES = ({"id": 1, "name": "square", "supercategory": "shape"},
                    {"id": 2, "name": "circle", "supercategory": "shape"},
                    {"id": 3, "name": "triangle", "supercategory": "shape"})
MAX_HIDDEN = 1 / 3
"""The largest fraction of a shape's pixels that later shapes may cover."""


def shape_alpha(canvas, category, cx, cy, radius, angle):
    """Alpha of a square (side 1.6 r, tilted by up to ~17 degrees), a circle (radius r) or an
    equilateral triangle (circumradius 1.2 r) centred on (cx, cy)."""
    if category == 1:
        return rectangle(canvas, cx, cy, 1.6 * radius, 1.6 * radius, 0.3 * np.sin(angle))
    if category == 2:
        return disk(canvas, cx, cy, radius)
    corners = angle + np.array([0, 2, 4]) * np.pi / 3
    return polygon(canvas, np.stack([cx + 1.2 * radius * np.cos(corners), cy + 1.2 * radius * np.sin(corners)], 1))


def _vivid_color(rng, background):
    """A saturated colour at least 0.35 away (Euclidean, RGB in [0, 1]) from the background's mean."""
    while True:
        color = rng.random(3).astype(np.float32)
        color[rng.integers(3)] = rng.uniform(0.0, 0.15)             # saturated: one channel low
        if np.linalg.norm(color - background) > 0.35:
            return color


def _radius(rng, size, object_sizes):
    """A shape's radius in pixels: uniform in [0.09, 0.2] x size, or half a width log-uniform in object_sizes."""
    if object_sizes is None:
        return rng.uniform(0.09, 0.2) * size
    return 0.5 * np.exp(rng.uniform(np.log(object_sizes[0]), np.log(object_sizes[1])))


def _check_object_sizes(object_sizes, size):
    """None, or (smallest, largest) as floats with 2 <= smallest <= largest <= 0.8 size."""
    if object_sizes is None:
        return None
    try:
        low, high = (float(v) for v in object_sizes)
    except (TypeError, ValueError):
        low = high = float("nan")
    if not 2 <= low <= high <= 0.8 * size:
        raise ValueError(f"make_shapes: object_sizes must be (smallest, largest) widths in pixels with "
                         f"2 <= smallest <= largest <= 0.8 * size ({0.8 * size:g}), got {object_sizes!r}")
    return low, high


def draw_shapes(rng, size, object_sizes=None):
    """One image: (size, size, 3) uint8; its instances, [{"category": 1..3, "area": pixels of the
    whole shape}, ...]; and the (size, size) owner map (0 = background, k = instance k, 1-based).
    ``object_sizes``: see the module docstring."""
    canvas = Canvas(size, size, owner=0)
    low, high = rng.uniform(0.1, 0.9, (2, 3)).astype(np.float32) * 0.6 + 0.2
    t = ((canvas.x + canvas.y) / (2 * size))[..., None]
    canvas.paint(1.0, textured(low * (1 - t) + high * t, fractal_noise(rng, size, size, 4, 3), 0.4))
    background = canvas.image.mean(axis=(0, 1))
    wanted = rng.integers(1, 5)
    instances, visible = [], np.zeros(0)
    for _ in range(40):                                         # placement attempts
        if len(instances) == wanted:
            break
        radius = _radius(rng, size, object_sizes)
        cx, cy = rng.uniform(radius, size - radius, 2)
        category = int(rng.integers(1, 4))
        view = canvas.around(cx, cy, 1.7 * radius)
        alpha = shape_alpha(view, category, cx, cy, radius, rng.uniform(0, 2 * np.pi))
        covered = np.bincount(view.owner[alpha >= 0.5], minlength=len(instances) + 1)[1:]
        if np.any(visible - covered < (1 - MAX_HIDDEN) * np.array([i["area"] for i in instances])):
            continue
        view.paint(alpha, textured(_vivid_color(rng, background), fractal_noise(rng, view.height, view.width, 3, 2),
                                   0.15), len(instances) + 1)
        instances.append({"category": category, "area": int(np.sum(alpha >= 0.5))})
        visible = np.bincount(canvas.owner.ravel(), minlength=len(instances) + 1)[1:]
    canvas.image += rng.normal(0, 0.01, canvas.image.shape).astype(np.float32)
    return canvas.to_uint8(), instances, canvas.owner


def coco_annotations(instances, owner, image_id, first_id):
    """COCO annotations of one image's instances, from its owner map (the visible pixels)."""
    annotations = []
    for k, instance in enumerate(instances, start=1):
        rle = encode(owner == k)
        annotations.append({"id": first_id + len(annotations), "image_id": image_id,
                            "category_id": instance["category"],
                            "segmentation": rle, "area": int(np.sum(owner == k)),
                            "bbox": [float(v) for v in to_bbox(rle)], "iscrowd": 0})
    return annotations


def make_shapes(out, n=500, size=128, seed=0, progress=None, object_sizes=None):
    """Write ``n`` shapes images of ``size`` pixels and their COCO instances file to ``out``;
    return ``out`` as a Path. Image i depends only on (seed, i) (and object_sizes).
    ``progress`` wraps the loop over the images (e.g. ``tinygrad_cv.train.progress_bar``, which the command line
    passes); None: no wrapper. ``object_sizes`` (smallest, largest) in pixels: the wide size range of
    the module docstring; None: the default sizes."""
    object_sizes = _check_object_sizes(object_sizes, size)
    params = {"kind": "shapes", "n": int(n), "size": int(size), "seed": int(seed)}
    if object_sizes is not None:
        params["object_sizes"] = list(object_sizes)
    if is_complete(out, params):
        return Path(out)
    out = prepare(out, ["images", "annotations"], stale=["images/shapes_*.png", "annotations/instances.json"])
    images, annotations = [], []
    for i in (progress or iter)(range(n)):
        image, instances, owner = draw_shapes(np.random.default_rng([seed, i]), size, object_sizes)
        name = f"shapes_{i:05d}.png"
        write_image(out / "images" / name, image)
        images.append({"id": i + 1, "file_name": name, "height": size, "width": size})
        annotations += coco_annotations(instances, owner, i + 1, len(annotations) + 1)
    coco = {"info": {"description": "tinygrad_cv synthetic shapes", "version": "1.0"},
            "images": images, "annotations": annotations, "categories": list(SHAPE_CATEGORIES)}
    write_text(out / "annotations" / "instances.json", json.dumps(coco))
    mark_complete(out, params)
    return out
