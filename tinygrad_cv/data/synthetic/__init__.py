"""Synthetic datasets written in the real formats, so the same readers serve a real download:

    make_planet(out, n, size, seed)   Planet-like tiles: train-jpg/ + train_v2.csv (17 tags)
    make_camvid(out, n, size, seed)   CamVid-like frames: images/, labels/*_P.png, codes.txt, valid.txt
    make_shapes(out, n, size, seed)   COCO shapes: images/ + annotations/instances.json

Each returns its output folder. Image i depends only on (seed, i), so a run is reproducible; a
folder already holding the same dataset is returned at once. From the shell:

    python -m tinygrad_cv.data.synthetic planet --out DIR --n 1000 --size 128 --seed 0
"""
from .camvid import CAMVID_CODES, make_camvid  # noqa: F401
from .planet import PLANET_TAGS, make_planet  # noqa: F401
from .shapes import SHAPE_CATEGORIES, make_shapes  # noqa: F401

GENERATORS = {"planet": make_planet, "camvid": make_camvid, "shapes": make_shapes}
